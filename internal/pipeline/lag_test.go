package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/memstream"
	"github.com/vigilhq/vigil/internal/pipeline"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// family gathers the registry, as a scrape would, and returns the metric
// family name.
func family(t *testing.T, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	t.Fatalf("metric %s is not registered", name)
	return nil
}

// gauge reads one unlabelled gauge.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return family(t, reg, name).GetMetric()[0].GetGauge().GetValue()
}

// TestLagIsRightFromTheFirstScrapeAfterRestart: a backlog left by the
// previous run (30 appended, 10 committed) shows before the new pipeline
// has handled a batch, in both stages and under the old metric name.
func TestLagIsRightFromTheFirstScrapeAfterRestart(t *testing.T) {
	db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := memstream.New(memstream.Options{})
	appendEvents(t, st, 30, "x.plain")
	if err := st.Commit(t.Context(), pipeline.Consumer, 10); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	p, err := pipeline.New(pipeline.Options{Stream: st, Events: db.Events(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"vigil_pipeline_detect_lag_events", "vigil_pipeline_store_lag_events", "vigil_pipeline_lag_events"} {
		if got := gauge(t, reg, name); got != 20 {
			t.Errorf("%s before the first batch = %v, want 20 (30 appended, 10 committed)", name, got)
		}
	}
	if err := p.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"vigil_pipeline_detect_lag_events", "vigil_pipeline_store_lag_events", "vigil_pipeline_lag_events"} {
		if got := gauge(t, reg, name); got != 0 {
			t.Errorf("%s after draining = %v, want 0", name, got)
		}
	}
}

// blockedEvents is an EventStore whose inserts wait until released, so the
// store stage falls behind detection.
type blockedEvents struct {
	audit.EventStore
	release chan struct{}
}

func (b blockedEvents) InsertEvents(ctx context.Context, evs []audit.Event) error {
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.EventStore.InsertEvents(ctx, evs)
}

// TestStoreLagTracksSearchability: while storing is stuck, detection runs
// ahead; the store lag (what is not yet searchable) keeps counting the
// events the detect lag no longer does. Backlog, what readiness reports,
// is the store lag, and reaches 0 once the events are searchable, before
// any checkpoint commits them.
func TestStoreLagTracksSearchability(t *testing.T) {
	db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := memstream.New(memstream.Options{})
	appendEvents(t, st, 20, "x.plain")
	reg := prometheus.NewRegistry()
	ev := blockedEvents{EventStore: db.Events(), release: make(chan struct{})}
	p, err := pipeline.New(pipeline.Options{Stream: st, Events: ev, Registerer: reg, BatchSize: 7, CheckpointEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := p.Backlog(t.Context()); err != nil || n != 20 {
		t.Fatalf("Backlog before the run = %d, %v; want 20", n, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for gauge(t, reg, "vigil_pipeline_detect_lag_events") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("detection did not run ahead of the blocked store stage")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := gauge(t, reg, "vigil_pipeline_store_lag_events"); got != 20 {
		t.Errorf("store lag with nothing stored = %v, want 20", got)
	}
	close(ev.release)
	for gauge(t, reg, "vigil_pipeline_store_lag_events") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("store lag did not reach 0 once storing resumed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n, err := p.Backlog(t.Context()); err != nil || n != 0 {
		t.Errorf("Backlog once everything is stored = %d, %v; want 0", n, err)
	}
	if off, err := st.Offset(t.Context(), pipeline.Consumer); err != nil || off != 0 {
		t.Errorf("committed offset %d, %v: a checkpoint ran, so the test does not tell the store position from the committed one", off, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
