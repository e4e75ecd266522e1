package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/pipeline"
	"github.com/vigilhq/vigil/internal/rules"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// stateSaves is the detection state store of a running node: the node's
// SQLite database, whose SaveState fails while told to.
type stateSaves struct {
	*sqlite.DB
	mu sync.Mutex
	// failFirst fails that many saves, then lets them through; after
	// okThen saves have succeeded (when > 0), every later save fails with
	// err.
	failFirst, okThen, ok, failed int
	err                           error
	// With gate set, the save after blockAfter successful ones waits for
	// gate to close; entered closes when it starts waiting.
	gate, entered chan struct{}
	blockAfter    int
}

func (s *stateSaves) SaveState(ctx context.Context, ns string, puts map[string][]byte, dels []string) error {
	s.mu.Lock()
	fail := s.failFirst > 0 || (s.okThen > 0 && s.ok >= s.okThen)
	if s.failFirst > 0 {
		s.failFirst--
	}
	if fail {
		s.failed++
	}
	block := s.gate != nil && s.ok == s.blockAfter
	if block && s.entered != nil {
		close(s.entered)
		s.entered = nil
	}
	s.mu.Unlock()
	if block {
		<-s.gate
	}
	if fail {
		if s.err != nil {
			return s.err
		}
		return &audit.Error{Code: audit.EUNAVAILABLE, Message: "disk full"}
	}
	if err := s.DB.SaveState(ctx, ns, puts, dels); err != nil {
		return err
	}
	s.mu.Lock()
	s.ok++
	s.mu.Unlock()
	return nil
}

func (s *stateSaves) counts() (ok, failed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok, s.failed
}

// streamStart is when the generated stream begins.
var streamStart = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// runningNode is a node whose pipeline runs (Run) with a checkpoint staged
// after every batch, in batches of 400.
type runningNode struct {
	*node
	saves  *stateSaves
	eng    *detect.Engine
	cancel context.CancelFunc
	done   chan error
}

func startRunning(t *testing.T, dir string, saves *stateSaves) *runningNode {
	t.Helper()
	db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	saves.DB = db
	n := &runningNode{saves: saves, done: make(chan error, 1)}
	eng, err := detect.New(detect.Options{Rules: rules.MustBuiltin(), StateStore: n.saves})
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Options{Stream: db.Stream(), Events: db.Events(), Findings: db, Incidents: db,
		Detector: eng, Enricher: uaEnricher{}, BatchSize: 400, CheckpointEvery: time.Nanosecond,
		// The wall clock stays before the stream's events, so the
		// detector releases the events it holds only when told (Flush),
		// at the same points in every run.
		Now: func() time.Time { return streamStart }})
	if err != nil {
		t.Fatal(err)
	}
	n.node, n.eng = &node{db: db, p: p}, eng
	ctx, cancel := context.WithCancel(t.Context())
	n.cancel = cancel
	go func() { n.done <- p.Run(ctx) }()
	return n
}

// feed appends the chunks, then has the detector evaluate every event it
// holds and waits until their findings are stored.
func (n *runningNode) feed(t *testing.T, chunks ...[]*audit.Event) {
	t.Helper()
	n.add(t, chunks...)
	n.flush(t)
}

func (n *runningNode) add(t *testing.T, chunks ...[]*audit.Event) {
	t.Helper()
	for _, evs := range chunks {
		if _, err := n.db.Stream().Append(t.Context(), evs); err != nil {
			t.Fatal(err)
		}
	}
}

func (n *runningNode) flush(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := n.p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func (n *runningNode) stop(t *testing.T) error {
	t.Helper()
	n.cancel()
	err := <-n.done
	if cerr := n.db.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	return err
}

func chunksOf(n, size int) [][]*audit.Event {
	g := newStreamGen(streamStart, 7)
	var chunks [][]*audit.Event
	for range n {
		evs := make([]*audit.Event, size)
		for i := range evs {
			evs[i] = g.next()
		}
		chunks = append(chunks, evs)
	}
	return chunks
}

// The restart tests below release held events at the same points in every
// run: after the fifth of seven chunks, the sixth and the seventh.

// uninterrupted returns the findings and incidents of a pipeline that runs
// through the chunks without stopping.
func uninterrupted(t *testing.T, chunks [][]*audit.Event) (findings, incidents map[string]string) {
	t.Helper()
	n := startRunning(t, t.TempDir(), &stateSaves{})
	n.feed(t, chunks[:5]...)
	n.feed(t, chunks[5])
	n.feed(t, chunks[6])
	findings, incidents = n.stored(t)
	if err := n.stop(t); err != nil {
		t.Fatal(err)
	}
	if len(findings) == 0 || len(incidents) == 0 {
		t.Fatalf("the stream raised %d findings and %d incidents; the test needs both", len(findings), len(incidents))
	}
	return findings, incidents
}

// resume starts a pipeline again on dir, where one stopped once the first
// five chunks were appended (before releasing the events held after them
// when release is set), feeds the last two, and checks that everything
// stored equals what an uninterrupted run stored.
func resume(t *testing.T, dir string, chunks [][]*audit.Event, release bool, wantF, wantI map[string]string) {
	t.Helper()
	n := startRunning(t, dir, &stateSaves{})
	if release {
		n.flush(t)
	}
	n.feed(t, chunks[5])
	n.feed(t, chunks[6])
	gotF, gotI := n.stored(t)
	if err := n.stop(t); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(wantF, gotF); d != "" {
		t.Errorf("findings differ (-uninterrupted +restarted):\n%s", d)
	}
	if d := cmp.Diff(wantI, gotI); d != "" {
		t.Errorf("incidents differ (-uninterrupted +restarted):\n%s", d)
	}
}

// TestStagedCheckpointsMatchAnUninterruptedRun: a running pipeline stages
// its checkpoints (the detector state is captured on the detect stage and
// saved by the store stage after the events it covers). Stopped mid-stream
// — once cleanly, once with every save after the fifth failing, as a disk
// that fills up — and started again on the same data directory, it stores
// exactly the findings and incidents of a pipeline that never stopped: the
// state saved always matches the position committed with it.
func TestStagedCheckpointsMatchAnUninterruptedRun(t *testing.T) {
	chunks := chunksOf(7, 1500)
	wantF, wantI := uninterrupted(t, chunks)
	for _, tc := range []struct {
		name  string
		saves *stateSaves
	}{
		// Three saves fail first: the store stage retries them.
		{"clean stop", &stateSaves{failFirst: 3}},
		{"saves fail from the sixth", &stateSaves{okThen: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			first := startRunning(t, dir, tc.saves)
			if tc.saves.okThen == 0 {
				first.feed(t, chunks[:5]...)
			} else {
				// A failing save stalls the store stage (it retries
				// until the disk recovers): nothing after it is stored,
				// so only wait for the failures.
				first.add(t, chunks[:5]...)
				deadline := time.Now().Add(time.Minute)
				for _, failed := first.saves.counts(); failed < 3; _, failed = first.saves.counts() {
					if time.Now().After(deadline) {
						t.Fatalf("%d saves failed in a minute", failed)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			ok, failed := first.saves.counts()
			if err := first.stop(t); err != nil {
				t.Fatal(err)
			}
			if ok < 5 || failed < 3 {
				t.Fatalf("%d saves succeeded and %d failed before the stop; the test needs at least 5 and 3", ok, failed)
			}
			if tc.saves.okThen > 0 {
				db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: dir})
				if err != nil {
					t.Fatal(err)
				}
				off, err := db.Stream().Offset(t.Context(), pipeline.Consumer)
				db.Close()
				if err != nil {
					t.Fatal(err)
				}
				if off >= 5*1500 {
					t.Fatalf("committed offset %d after the saves failed: a position beyond the last saved state was committed", off)
				}
				t.Logf("the restart replays from %d", off)
			}
			resume(t, dir, chunks, tc.saves.okThen > 0, wantF, wantI)
		})
	}
}

// TestStagedCheckpointFencedStopsTheRun: when the store stage's save finds
// that another node runs the pipeline now, Run stops with ErrFenced rather
// than retrying or detecting further.
func TestStagedCheckpointFencedStopsTheRun(t *testing.T) {
	fenced := &audit.Error{Code: audit.EUNAVAILABLE, Err: audit.ErrFenced, Message: "fenced by a newer node"}
	n := startRunning(t, t.TempDir(), &stateSaves{okThen: 1, err: fenced})
	if _, err := n.db.Stream().Append(t.Context(), chunksOf(1, 2000)[0]); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-n.done:
		if !errors.Is(err, audit.ErrFenced) {
			t.Fatalf("Run returned %v, want ErrFenced", err)
		}
		n.done <- err
	case <-time.After(time.Minute):
		t.Fatal("Run did not stop within a minute of being fenced")
	}
	if err := n.stop(t); !errors.Is(err, audit.ErrFenced) {
		t.Fatal(fmt.Errorf("stop: %w", err))
	}
}

// TestFlushCoversWhatWasAppendedBeforeIt: Flush evaluates the events
// appended before it was called, held ones included, even when the running
// loop had just found the stream empty. It used to act on a request that
// arrived between that read and its check, leaving the new events held.
func TestFlushCoversWhatWasAppendedBeforeIt(t *testing.T) {
	n := startRunning(t, t.TempDir(), &stateSaves{})
	defer n.stop(t)
	g := newStreamGen(streamStart, 3)
	for i := range 40 {
		evs := make([]*audit.Event, 30)
		for j := range evs {
			evs[j] = g.next()
		}
		// Let the loop go idle, so it races the request.
		time.Sleep(time.Duration(i%4) * time.Millisecond)
		n.feed(t, evs)
		if held := n.eng.Held(); held != 0 {
			t.Fatalf("round %d: %d events still held after Flush returned", i, held)
		}
		if b, err := n.p.Backlog(t.Context()); err != nil || b != 0 {
			t.Fatalf("round %d: %d events not stored after Flush returned (%v)", i, b, err)
		}
	}
}

// TestCheckpointPreparedAtShutdownIsSaved: a checkpoint the detect stage
// prepared but could not hand to the store stage before the pipeline
// stopped (the store stage was busy saving the one before) is saved before
// the final checkpoint, which holds only what changed after it; otherwise
// the state saved would miss a batch's changes while the position committed
// covers it.
func TestCheckpointPreparedAtShutdownIsSaved(t *testing.T) {
	chunks := chunksOf(7, 1500)
	wantF, wantI := uninterrupted(t, chunks)
	dir := t.TempDir()
	saves := &stateSaves{gate: make(chan struct{}), entered: make(chan struct{}), blockAfter: 3}
	entered := saves.entered
	first := startRunning(t, dir, saves)
	first.add(t, chunks[:5]...)
	select {
	case <-entered:
	case <-time.After(time.Minute):
		t.Fatal("the fourth save never started")
	}
	// The store stage is stuck in the fourth save; detection hands it one
	// more batch, prepares the next checkpoint and waits to hand it over.
	time.Sleep(300 * time.Millisecond)
	first.cancel()
	time.Sleep(100 * time.Millisecond)
	close(saves.gate)
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	resume(t, dir, chunks, true, wantF, wantI)
}
