package integrity_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/integrity"
)

// referenceLeaf is the leaf as the format defines it, written plainly:
// the hash chains already stored were computed this way, so Leaf must
// give the same bytes for every event.
func referenceLeaf(ev *audit.Event, erased map[string][]byte) []byte {
	h := sha256.New()
	h.Write([]byte("vigil-leaf/1"))
	lp := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	lp([]byte(ev.Tenant))
	lp([]byte(ev.ID))
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(ev.Time.UnixNano()))
	h.Write(ts[:])
	for _, f := range integrity.Fields {
		lp([]byte(f))
		if orig, ok := erased[f]; ok && integrity.IsErased(ev, f) {
			lp(orig)
			continue
		}
		v := integrity.Value(ev, f)
		sum := sha256.Sum256(v)
		lp(sum[:])
	}
	return h.Sum(nil)
}

// randomEvent fills some of ev's fields, some with long values (beyond
// Leaf's stack buffer) and an IPv6 address now and then.
func randomEvent(r *rand.Rand, i int) audit.Event {
	pick := func(s string) string {
		switch r.IntN(4) {
		case 0:
			return ""
		case 1:
			return strings.Repeat(s, 40+r.IntN(40))
		}
		return fmt.Sprintf("%s%d", s, r.IntN(1000))
	}
	ev := audit.Event{ID: fmt.Sprintf("e%d", i), Tenant: pick("t"), Time: time.Unix(0, r.Int64()),
		Action: pick("auth.login."), Outcome: audit.Outcome(pick("o")), Reason: pick("r"),
		Actor:   audit.Actor{ID: pick("a"), Type: pick("user"), Email: pick("m@x"), Name: pick("n")},
		Target:  audit.Target{Type: pick("doc"), ID: pick("d"), Name: pick("dn")},
		Context: audit.Context{UserAgent: pick("Mozilla/5.0 "), SessionID: pick("s"), RequestID: pick("rq"), AuthMethod: pick("pw"), DeviceID: pick("dev")}}
	switch r.IntN(3) {
	case 0:
		ev.Context.IP = netip.AddrFrom4([4]byte{byte(r.IntN(256)), 2, 3, byte(r.IntN(256))})
	case 1:
		ev.Context.IP = netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", r.IntN(65536)))
	}
	if r.IntN(2) == 0 {
		ev.ReceivedAt = time.Unix(0, r.Int64())
	}
	if r.IntN(2) == 0 {
		ev.Metadata = map[string]any{"k": pick("v"), "n": float64(r.IntN(9))}
		ev.Enrichment.Network = &audit.Network{ASN: uint32(r.IntN(70000))}
		ev.Risk = &audit.Risk{Score: r.IntN(100)}
		ev.Context.Geo = &audit.ClientGeo{Country: pick("FR")}
	}
	return ev
}

// TestLeafMatchesTheFormat: Leaf gives the reference leaf for random
// events, erased fields (with their kept hash) included.
func TestLeafMatchesTheFormat(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		ev := randomEvent(r, i)
		var erased map[string][]byte
		if i%3 == 0 {
			erased = map[string][]byte{}
			for _, f := range integrity.Erasable {
				if r.IntN(2) == 0 {
					erased[f] = integrity.FieldHash(&ev, f)
					integrity.Erase(&ev, f)
				}
			}
		}
		if got, want := integrity.Leaf(&ev, erased), referenceLeaf(&ev, erased); !bytes.Equal(got, want) {
			t.Fatalf("event %d: leaf %x, want %x (%+v)", i, got, want, ev)
		}
	}
}

func BenchmarkLeaf(b *testing.B) {
	ev := sample()
	b.ReportAllocs()
	for b.Loop() {
		integrity.Leaf(&ev, nil)
	}
}

func BenchmarkReferenceLeaf(b *testing.B) {
	ev := sample()
	b.ReportAllocs()
	for b.Loop() {
		referenceLeaf(&ev, nil)
	}
}
