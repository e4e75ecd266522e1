package client

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// ulidAlphabet is Crockford's base32, which ULIDs use.
const ulidAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// idGenerator makes ULIDs: 48 bits of Unix milliseconds, then 80 random
// bits, written as 26 base32 characters. Within one millisecond (or if the
// clock steps back) the random part is incremented instead of redrawn, so
// one generator's ids are strictly increasing. Safe for concurrent use.
type idGenerator struct {
	mu   sync.Mutex
	ms   uint64
	rnd  [10]byte // big-endian 80-bit random part
	init bool
}

func (g *idGenerator) newID(now time.Time) string {
	ms := uint64(max(now.UnixMilli(), 0)) & (1<<48 - 1)
	var b [16]byte
	g.mu.Lock()
	if g.init && ms <= g.ms {
		if !increment(g.rnd[:]) { // 2^80 ids in one millisecond: borrow the next one
			g.ms++
		}
	} else {
		_, _ = rand.Read(g.rnd[:]) // crypto/rand.Read never fails (Go 1.24+)
		g.rnd[0] &= 0x7f           // leave headroom so increments rarely overflow
		g.ms, g.init = ms, true
	}
	binary.BigEndian.PutUint64(b[:8], g.ms<<16)
	copy(b[6:], g.rnd[:])
	g.mu.Unlock()
	return encodeULID(&b)
}

// increment adds one to a big-endian number, reporting false on overflow.
func increment(b []byte) bool {
	for i := len(b) - 1; i >= 0; i-- {
		b[i]++
		if b[i] != 0 {
			return true
		}
	}
	return false
}

// encodeULID writes 128 bits as 26 base32 digits, most significant first
// (the first digit carries the top 3 bits).
func encodeULID(b *[16]byte) string {
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = ulidAlphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}
