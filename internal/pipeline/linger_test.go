package pipeline_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/memstream"
	"github.com/vigilhq/vigil/internal/pipeline"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// lingering runs a pipeline with Options.Linger of an hour, far longer than
// any test waits: whatever it reads promptly, it read without lingering.
func lingering(t *testing.T, batch int) (*pipeline.Pipeline, *memstream.Stream, *recorder, func()) {
	t.Helper()
	db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	det := &recorder{}
	st := memstream.New(memstream.Options{})
	p, err := pipeline.New(pipeline.Options{Stream: st, Events: db.Events(), Findings: db, Detector: det,
		Enricher: uaEnricher{}, BatchSize: batch, Linger: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return after its context ended: shutdown must cut a linger short")
		}
	}
	return p, st, det, stop
}

func (r *recorder) batches() (seen, processed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.calls {
		if c == "process" {
			processed++
		}
	}
	return len(r.seen), processed
}

// waitSeen waits until the detector has seen n records, for at most 30s
// (against a linger of an hour).
func waitSeen(t *testing.T, det *recorder, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if seen, _ := det.batches(); seen >= n {
			return
		}
		if time.Now().After(deadline) {
			seen, _ := det.batches()
			t.Fatalf("the detector saw %d records, want %d", seen, n)
		}
	}
}

func appendOne(t *testing.T, st audit.EventStream, i int) {
	t.Helper()
	at := time.Now().UTC().Add(-time.Hour)
	if _, err := st.Append(t.Context(), []*audit.Event{{ID: fmt.Sprintf("e-%d", i), Tenant: "acme", Action: "x.plain",
		Time: at.Add(time.Duration(i) * time.Millisecond), ReceivedAt: at, Actor: audit.Actor{ID: "u"}}}); err != nil {
		t.Fatal(err)
	}
}

// TestLingerGathersATrickleIntoOneBatch: once the pipeline has caught up,
// records appended one by one wait for the linger and are read as one
// batch; Flush cuts the linger short; and the first record after an idle
// spell is read at once.
func TestLingerGathersATrickleIntoOneBatch(t *testing.T) {
	p, st, det, stop := lingering(t, 100)
	defer stop()
	appendOne(t, st, 0)
	waitSeen(t, det, 1) // the first read after an idle spell does not linger
	for i := 1; i <= 10; i++ {
		appendOne(t, st, i)
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if seen, _ := det.batches(); seen != 1 {
		t.Fatalf("the detector saw %d records within the linger after a small read, want 1", seen)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush during a linger of an hour: %v", err)
	}
	if seen, processed := det.batches(); seen != 11 || processed != 2 {
		t.Fatalf("after Flush the detector saw %d records in %d batches, want 11 in 2", seen, processed)
	}
	if b, err := p.Backlog(t.Context()); err != nil || b != 0 {
		t.Fatalf("%d records not stored after Flush (%v)", b, err)
	}
	// Caught up and idle again: the next record is read at once.
	appendOne(t, st, 11)
	waitSeen(t, det, 12)
}

// TestLingerNeverDelaysABacklog: full batches are read back to back; only a
// read that found less than a batch lingers, after its records are handled.
func TestLingerNeverDelaysABacklog(t *testing.T) {
	_, st, det, stop := lingering(t, 7)
	defer stop()
	appendEvents(t, st, 30, "x.plain")
	waitSeen(t, det, 30)
	if _, processed := det.batches(); processed != 5 {
		t.Fatalf("30 records in batches of 7 took %d reads, want 5", processed)
	}
}
