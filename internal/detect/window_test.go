package detect

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestWindowCountsMatchNaive slides random events through a window and
// checks its counters (count, distinct, max per value; inline slot and
// map modes) against a recount of the window's entries, including after a
// reset for reuse.
func TestWindowCountsMatchNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ks := &keyState{}
	for round := range 3 {
		ts := int64(0)
		for i := range 3000 {
			ts += int64(r.IntN(4000))
			v := ""
			if r.IntN(4) > 0 {
				v = fmt.Sprint("v", r.IntN(1+round*3)) // round 0: one value only
			}
			ks.add(entry{T: ts, ID: fmt.Sprint(i), V: v, M: r.IntN(2) == 0}, time.Minute, 50)
			per := map[string]int32{}
			var maxPer int32
			count, matched := 0, 0
			for _, en := range ks.Entries {
				count++
				if en.M {
					matched++
				}
				if en.V != "" {
					per[en.V]++
					maxPer = max(maxPer, per[en.V])
				}
			}
			if ks.count != count || ks.matched != matched || ks.distinctCount() != len(per) || ks.maxPerValue() != maxPer {
				t.Fatalf("round %d event %d: count %d/%d matched %d/%d distinct %d/%d max %d/%d", round, i,
					ks.count, count, ks.matched, matched, ks.distinctCount(), len(per), ks.maxPerValue(), maxPer)
			}
			n := 0
			ks.values(func(v string) { n++; _ = per[v] })
			if n != len(per) {
				t.Fatalf("values visited %d, want %d", n, len(per))
			}
		}
		ks.reset()
	}
}
