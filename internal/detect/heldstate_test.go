package detect_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/mock"
)

// arrivingStream is a stream as a live consumer sees it: each event
// arrives up to the lateness after its time, one event in ten shares its
// time with the one before (so release order falls back on ids), and the
// records are numbered in arrival order.
func arrivingStream(n int, seed uint64, lateness time.Duration) []*audit.Record {
	rng := rand.New(rand.NewPCG(seed, 7))
	recs := clone(genStream(n, 300, seed))
	for i := 1; i < len(recs); i++ {
		if rng.IntN(10) == 0 {
			recs[i].Event.Time = recs[i-1].Event.Time
		}
	}
	at := make(map[*audit.Record]time.Time, len(recs))
	for _, r := range recs {
		at[r] = r.Event.Time.Add(time.Duration(rng.Int64N(int64(lateness))))
	}
	slices.SortStableFunc(recs, func(a, b *audit.Record) int { return at[a].Compare(at[b]) })
	for i, r := range recs {
		r.Seq = uint64(i + 1)
	}
	return recs
}

// heldKeys lists the keys of the persisted held events in store.
func heldKeys(t *testing.T, store audit.StateStore) (rows, single []string) {
	t.Helper()
	err := store.ScanState(context.Background(), "detect", func(key string, _ []byte) error {
		switch {
		case strings.HasPrefix(key, "hb/"):
			rows = append(rows, key)
		case strings.HasPrefix(key, "h/"):
			single = append(single, key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows, single
}

// A consumer that checkpoints after every batch and now and then crashes
// (losing what the engine did since its last checkpoint, and handing the
// records after the engine's position again) gets the findings of one
// uninterrupted run, although at every checkpoint most events are still
// held for event-time order and some of a persisted row's events have been
// released since. With a small reorder buffer, events are also released
// early, one at a time, among others of the same time.
func TestCrashesWhileEventsAreHeldGiveSameFindings(t *testing.T) {
	const lateness, batch = 2 * time.Minute, 61
	for _, maxHeld := range []int{0, 40} {
		t.Run(fmt.Sprint("max_held=", maxHeld), func(t *testing.T) {
			recs := arrivingStream(8000, 3, lateness)
			opts := detect.Options{AllowedLateness: lateness, MaxHeld: maxHeld}
			want := asJSON(t, run(t, newEngine(t, opts), clone(recs), batch))

			store := mock.NewStateStore()
			opts.StateStore = store
			e := newEngine(t, opts)
			crashes := map[int]bool{5: true, 17: true, 18: true, 40: true, 77: true, 101: true}
			var got []audit.Finding
			c := clone(recs)
			maxRows, maxHeldNow, restored := 0, 0, 0
			for pos, bi := 0, 0; pos < len(c); bi++ {
				n := min(batch, len(c)-pos)
				fs, err := e.Process(t.Context(), c[pos:pos+n])
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, fs...)
				pos += n
				if crashes[bi] {
					e = newEngine(t, opts)
					pos = int(e.Position())
					restored = max(restored, e.Held())
					c = clone(recs) // the records as the stream hands them again
					continue
				}
				if err := e.Checkpoint(t.Context()); err != nil {
					t.Fatal(err)
				}
				rows, _ := heldKeys(t, store)
				maxRows, maxHeldNow = max(maxRows, len(rows)), max(maxHeldNow, e.Held())
			}
			fs, err := e.Flush(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if g := asJSON(t, append(got, fs...)); g != want {
				t.Fatalf("findings differ from the uninterrupted run:\n%s", cmp.Diff(want, g))
			}
			if maxHeldNow < 100 || restored < 100 {
				t.Fatalf("at most %d events held at a checkpoint and %d restored: the crashes did not test held events", maxHeldNow, restored)
			}
			// A row is deleted once all of its events are released.
			if maxRows > 60 {
				t.Errorf("%d rows of held events at once for at most %d events held", maxRows, maxHeldNow)
			}
			if err := e.Checkpoint(t.Context()); err != nil {
				t.Fatal(err)
			}
			if rows, single := heldKeys(t, store); len(rows)+len(single) != 0 {
				t.Errorf("after the flush the store still has rows of held events: %v %v", rows, single)
			}
			t.Logf("%d findings; at most %d events held in %d rows; %d restored after a crash", len(detect.Latest(got)), maxHeldNow, maxRows, restored)
		})
	}
}

// State written by older versions restores: each held event in a row of
// its own (h/<tenant>|<seq>|<id>), or rows of held events as plain JSON.
// Those events are held again, evaluated once, and their rows deleted when
// they are released.
func TestHeldEventsInOlderFormsRestore(t *testing.T) {
	for _, form := range []string{"one row per event", "uncompressed rows"} {
		t.Run(form, func(t *testing.T) { heldOlderFormRestores(t, form == "one row per event") })
	}
}

func heldOlderFormRestores(t *testing.T, perEvent bool) {
	const lateness, batch = 2 * time.Minute, 50
	recs := arrivingStream(3000, 4, lateness)
	opts := detect.Options{AllowedLateness: lateness}
	want := asJSON(t, run(t, newEngine(t, opts), clone(recs), batch))

	store := mock.NewStateStore()
	opts.StateStore = store
	c := clone(recs)
	half := len(c) / 2
	e := newEngine(t, opts)
	var got []audit.Finding
	for pos := 0; pos < half; pos += batch {
		fs, err := e.Process(t.Context(), c[pos:min(pos+batch, half)])
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fs...)
	}
	if err := e.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Rewrite the rows as the older version wrote them.
	rows, _ := heldKeys(t, store)
	if len(rows) == 0 {
		t.Fatal("no held events at the checkpoint")
	}
	puts, held := map[string][]byte{}, 0
	for _, k := range rows {
		v, err := store.GetState(t.Context(), "detect", k)
		if err != nil {
			t.Fatal(err)
		}
		if v, err = detect.HeldRowJSON(v); err != nil {
			t.Fatal(err)
		}
		var entries []struct {
			Seq   uint64          `json:"seq"`
			Event json.RawMessage `json:"event"`
		}
		if err := json.Unmarshal(v, &entries); err != nil {
			t.Fatal(err)
		}
		held += len(entries)
		if !perEvent {
			puts[k] = v
			continue
		}
		for _, en := range entries {
			var ev audit.Event
			if err := json.Unmarshal(en.Event, &ev); err != nil {
				t.Fatal(err)
			}
			puts[fmt.Sprintf("h/%s|%020d|%s", ev.Tenant, en.Seq, ev.ID)] = en.Event
		}
	}
	var dels []string
	if perEvent {
		dels = rows
	}
	if err := store.SaveState(t.Context(), "detect", puts, dels); err != nil {
		t.Fatal(err)
	}

	e = newEngine(t, opts)
	if e.Held() != held {
		t.Fatalf("%d events held after the restore, want %d", e.Held(), held)
	}
	got = append(got, run(t, e, c[half:], batch)...)
	if g := asJSON(t, got); g != want {
		t.Fatalf("findings differ from the uninterrupted run:\n%s", cmp.Diff(want, g))
	}
	if err := e.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	if rows, single := heldKeys(t, store); len(rows)+len(single) != 0 {
		t.Errorf("after the flush the store still has held events: %v %v", rows, single)
	}
}
