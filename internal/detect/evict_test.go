package detect_test

import (
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/mock"
)

// TestEvictedProfilesGiveTheSameFindings: the in-memory profile cap only
// trades memory for store reads. An engine that must evict profiles at
// every checkpoint (cap 40, for 120 actors) raises exactly the findings
// of one that keeps every profile in memory. It did not: an evicted
// profile was reloaded only while memory was at the cap, and eviction
// leaves it at 90 %, so an evicted actor's next login was judged as a
// first login (no new-location) and overwrote their stored history.
func TestEvictedProfilesGiveTheSameFindings(t *testing.T) {
	const actors = 120
	recs := travellers(actors)
	run := func(opts detect.Options) []audit.Finding {
		opts.StateStore = mock.NewStateStore()
		e := newEngine(t, opts)
		var all []audit.Finding
		for i := 0; i < len(recs); i += 50 {
			fs, err := e.Process(t.Context(), clone(recs[i:min(i+50, len(recs))]))
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, fs...)
			if err := e.Checkpoint(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		fs, err := e.Flush(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return detect.Latest(append(all, fs...))
	}
	count := func(fs []audit.Finding, rule string) int {
		n := 0
		for _, f := range fs {
			if f.RuleID == rule {
				n++
			}
		}
		return n
	}
	want := run(detect.Options{})
	t.Logf("rules: %v", ruleSet(want))
	if n := count(want, "new-location"); n < 10 {
		t.Fatalf("with every profile in memory: %d new-location findings for %d travellers; the stream does not test what it should", n, actors)
	}
	got := run(detect.Options{MaxProfiles: 40})
	if a, b := asJSON(t, got), asJSON(t, want); a != b {
		t.Fatalf("findings differ when profiles are evicted: new-location %d, want %d; %d findings, want %d",
			count(got, "new-location"), count(want, "new-location"), len(got), len(want))
	}
}
