package audit

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// crockford is the ULID alphabet.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// IDGenerator makes ULIDs: 48 bits of millisecond time and 80 random bits,
// 26 characters of Crockford base32, sortable by time. Within one
// millisecond the random part increases monotonically, so ids from one
// generator sort in generation order. Safe for concurrent use.
type IDGenerator struct {
	mu      sync.Mutex
	lastMS  uint64
	hi      uint16 // top 16 bits of the random part
	lo      uint64 // low 64 bits of the random part
	entropy [10]byte
}

// New returns a ULID for time t.
func (g *IDGenerator) New(t time.Time) string {
	ms := uint64(t.UnixMilli())
	g.mu.Lock()
	if ms <= g.lastMS {
		ms = g.lastMS
		g.lo++
		if g.lo == 0 {
			g.hi++
		}
	} else {
		_, _ = rand.Read(g.entropy[:])
		g.hi = binary.BigEndian.Uint16(g.entropy[:2])
		g.lo = binary.BigEndian.Uint64(g.entropy[2:])
		g.lastMS = ms
	}
	hi, lo := g.hi, g.lo
	g.mu.Unlock()

	var b [16]byte
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	binary.BigEndian.PutUint16(b[6:], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return encodeULID(b)
}

func encodeULID(b [16]byte) string {
	var out [26]byte
	// 128 bits → 26 base32 digits (the first carries 3 bits).
	var acc uint64
	var bits uint
	j := 25
	for i := 15; i >= 0; i-- {
		acc |= uint64(b[i]) << bits
		bits += 8
		for bits >= 5 && j >= 0 {
			out[j] = crockford[acc&31]
			acc >>= 5
			bits -= 5
			j--
		}
	}
	for j >= 0 {
		out[j] = crockford[acc&31]
		acc >>= 5
		j--
	}
	return string(out[:])
}
