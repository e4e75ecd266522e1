package detect

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
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

// TestFindingFactsMatchNaive checks the incrementally kept facts of an open
// finding (most events of one value, the smallest values listed) against a
// recount of FVals, kept live and derived again as after a restore.
func TestFindingFactsMatchNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	ks := &keyState{fDerived: true}
	restored := &keyState{}
	for i := range 20000 {
		v := fmt.Sprintf("10.%d.%d.%d", r.IntN(4), r.IntN(40), r.IntN(50))
		ks.absorb(v, false)
		if i%997 == 0 {
			// A restore: FVals come back from JSON, the derived facts do not.
			restored = &keyState{FVals: maps.Clone(ks.FVals), FValsCapped: ks.FValsCapped}
			restored.deriveFacts()
		}
		if i%101 != 0 {
			continue
		}
		var wantMax int32
		var all []string
		for v, c := range ks.FVals {
			wantMax = max(wantMax, c)
			all = append(all, v)
		}
		slices.Sort(all)
		wantLow := all[:min(len(all), factValues)]
		if ks.fMax != wantMax || !slices.Equal(ks.fLow, wantLow) {
			t.Fatalf("after %d values: max %d low %v, want %d %v", i+1, ks.fMax, ks.fLow, wantMax, wantLow)
		}
	}
	if len(ks.FVals) != maxFindingValues || !ks.FValsCapped {
		t.Fatalf("FVals holds %d values (capped %v); the test meant to reach the cap of %d", len(ks.FVals), ks.FValsCapped, maxFindingValues)
	}
	var all []string
	for v := range restored.FVals {
		all = append(all, v)
	}
	slices.Sort(all)
	if !slices.Equal(restored.fLow, all[:factValues]) {
		t.Fatalf("derived after restore: %v, want %v", restored.fLow, all[:factValues])
	}
}
