package detect_test

import (
	"bytes"
	"context"
	"maps"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/mock"
)

// TestStagedCheckpointsGiveTheSameFindings: saves staged by
// PrepareCheckpoint and run late, as the pipeline's store stage runs them
// behind detection, give the findings of synchronous checkpoints, with the
// profile cap forcing evictions. A profile must not be evicted while a
// save that holds it is pending (the engine would read an older one back),
// and a save must carry the profile's bytes as they were when prepared,
// though later events rewrite them in place.
func TestStagedCheckpointsGiveTheSameFindings(t *testing.T) {
	const actors = 120
	recs := travellers(actors)
	run := func(staged bool) ([]audit.Finding, int) {
		store := mock.NewStateStore()
		e := newEngine(t, detect.Options{StateStore: store, MaxProfiles: 40})
		var all []audit.Finding
		var pending []func(context.Context) error
		fewest := actors
		for i, n := 0, 0; i < len(recs); i, n = i+50, n+1 {
			fs, err := e.Process(t.Context(), clone(recs[i:min(i+50, len(recs))]))
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, fs...)
			if !staged {
				if err := e.Checkpoint(t.Context()); err != nil {
					t.Fatal(err)
				}
				continue
			}
			save, err := e.PrepareCheckpoint(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			pending = append(pending, save)
			if n%3 == 2 { // the store stage catches up now and then
				for _, s := range pending {
					if err := s(t.Context()); err != nil {
						t.Fatal(err)
					}
				}
				pending = pending[:0]
			}
			fewest = min(fewest, detect.ProfilesInMemory(e))
		}
		for _, s := range pending {
			if err := s(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		fs, err := e.Flush(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return detect.Latest(append(all, fs...)), fewest
	}
	want, _ := run(false)
	got, fewest := run(true)
	if fewest > 40 {
		t.Fatalf("staged checkpoints never evicted a profile (at least %d in memory, cap 40): the test does not exercise eviction", fewest)
	}
	if a, b := asJSON(t, got), asJSON(t, want); a != b {
		t.Fatalf("staged checkpoints change the findings (%d findings, want %d; compare their content)", len(got), len(want))
	}
}

// TestStagedSaveHoldsThePreparedState: a save run after more events were
// evaluated writes the state as it was when prepared, byte for byte what a
// synchronous checkpoint at that point writes.
func TestStagedSaveHoldsThePreparedState(t *testing.T) {
	recs := travellers(30)
	half := len(recs) / 2
	sync := mock.NewStateStore()
	a := newEngine(t, detect.Options{StateStore: sync})
	if _, err := a.Process(t.Context(), clone(recs[:half])); err != nil {
		t.Fatal(err)
	}
	if err := a.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	staged := mock.NewStateStore()
	b := newEngine(t, detect.Options{StateStore: staged})
	if _, err := b.Process(t.Context(), clone(recs[:half])); err != nil {
		t.Fatal(err)
	}
	save, err := b.PrepareCheckpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Process(t.Context(), clone(recs[half:])); err != nil {
		t.Fatal(err)
	}
	if err := save(t.Context()); err != nil {
		t.Fatal(err)
	}
	want, got := scan(t, sync), scan(t, staged)
	if len(want) < 30 {
		t.Fatalf("the synchronous checkpoint saved %d keys; the stream does not test what it should", len(want))
	}
	if !maps.EqualFunc(got, want, bytes.Equal) {
		for k, v := range want {
			if !bytes.Equal(got[k], v) {
				t.Errorf("%s: the staged save holds %d bytes that differ from the prepared state's %d", k, len(got[k]), len(v))
			}
		}
		t.Fatalf("the staged save holds %d keys, the prepared state %d", len(got), len(want))
	}
}

func scan(t *testing.T, s audit.StateStore) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if err := s.ScanState(t.Context(), "detect", func(k string, v []byte) error {
		out[k] = v
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
