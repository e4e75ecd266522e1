package detect_test

import (
	"context"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/mock"
)

// scoreProbe is a login the risk endpoint might score.
func scoreProbe() *audit.Event {
	return &audit.Event{Tenant: "t1", Action: audit.ActionLoginSuccess, Time: time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC),
		Actor: audit.Actor{ID: "u1"}, Context: audit.Context{IP: mustAddr("192.0.2.1")}}
}

// TestScoreDoesNotWaitForABatch: while one Process call evaluates thousands of
// held events, risk scores are answered (the release lets readers in
// between evaluations) instead of waiting for the whole batch.
func TestScoreDoesNotWaitForABatch(t *testing.T) {
	e := newEngine(t, detect.Options{})
	recs := genStream(8000, 500, 5)
	done := make(chan error, 1)
	go func() {
		_, err := e.Process(context.Background(), recs)
		done <- err
	}()
	// Held is read under the same lock as a score. Below its peak and
	// above where the batch leaves it, it shows a release part-way: a
	// reader got in between two evaluations. (A flag set around Process
	// could count scores answered before the batch took the lock.)
	peak := 0
	var seen []int
	for finished := false; !finished; {
		h := e.Held()
		peak = max(peak, h)
		if h < peak {
			e.ScoreContext(t.Context(), scoreProbe())
			seen = append(seen, h)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		default:
		}
	}
	final, during := e.Held(), 0
	for _, h := range seen {
		if h > final {
			during++
		}
	}
	if during < 10 {
		t.Fatalf("%d risk scores answered while held events were released (held: peak %d, final %d)", during, peak, final)
	}
	t.Logf("%d scores answered during the release", during)
}

// TestScoreDoesNotWaitForABatchIntake: a batch whose events are all held
// for event-time order (none evaluated yet) still lets risk scores in while
// it takes its records in, instead of holding the engine for the whole
// batch.
func TestScoreDoesNotWaitForABatchIntake(t *testing.T) {
	e := newEngine(t, detect.Options{AllowedLateness: 48 * time.Hour, MaxHeld: 1 << 20})
	recs := genStream(40000, 500, 7)
	done := make(chan error, 1)
	go func() {
		_, err := e.Process(context.Background(), recs)
		done <- err
	}()
	// Position is read under the same lock as a score: it shows a record
	// other than the first and the last only if the intake let readers in
	// part-way.
	during := 0
	for last := recs[len(recs)-1].Seq; ; {
		pos := e.Position()
		if pos >= last {
			break
		}
		if pos > 0 {
			e.ScoreContext(t.Context(), scoreProbe())
			during++
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := e.Held(); n != len(recs) {
		t.Fatalf("%d of %d events held: the test needs them all held", n, len(recs))
	}
	if during < 10 {
		t.Fatalf("%d risk scores answered while the batch was taken in", during)
	}
	t.Logf("%d scores answered during the intake", during)
}

// blockingStore holds SaveState until released.
type blockingStore struct {
	*mock.StateStore
	entered, release chan struct{}
}

func (s *blockingStore) SaveState(ctx context.Context, ns string, puts map[string][]byte, dels []string) error {
	close(s.entered)
	<-s.release
	return s.StateStore.SaveState(ctx, ns, puts, dels)
}

// TestScoreDoesNotWaitForACheckpoint: a checkpoint whose store write
// hangs (a slow disk) does not hold the risk endpoint up.
func TestScoreDoesNotWaitForACheckpoint(t *testing.T) {
	store := &blockingStore{StateStore: mock.NewStateStore(), entered: make(chan struct{}), release: make(chan struct{})}
	e := newEngine(t, detect.Options{StateStore: store})
	if _, err := e.Process(t.Context(), genStream(2000, 100, 6)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Checkpoint(context.Background()) }()
	<-store.entered
	scored := make(chan audit.Risk, 1)
	go func() { scored <- e.ScoreContext(context.Background(), scoreProbe()) }()
	select {
	case <-scored:
	case err := <-done:
		t.Fatalf("the checkpoint ended (%v) before a score was answered", err)
	case <-time.After(time.Minute):
		t.Fatal("a risk score waited for the checkpoint's store write")
	}
	close(store.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
