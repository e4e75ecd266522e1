package pipeline_test

import (
	"context"
	"slices"
	"sort"
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

// heldDetector is a detector that says it holds events for event-time order.
type heldDetector struct {
	audit.Detector
	hold time.Duration
}

func (h heldDetector) AllowedLateness() time.Duration { return h.hold }

// TestFindingLatencyBucketsResolveTheHold: with a detector that holds
// events for two minutes, the finding-latency histogram has its doubling
// steps twice, from 1 ms and from the hold up, so a latency of the hold
// plus a few hundred milliseconds falls in a bucket well under a second
// wide instead of one of 65-131 s.
func TestFindingLatencyBucketsResolveTheHold(t *testing.T) {
	bounds := func(det audit.Detector) []float64 {
		db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		reg := prometheus.NewRegistry()
		if _, err := pipeline.New(pipeline.Options{Stream: memstream.New(memstream.Options{}), Events: db.Events(), Findings: db, Detector: det, Registerer: reg}); err != nil {
			t.Fatal(err)
		}
		var out []float64
		for _, b := range family(t, reg, "vigil_finding_latency_seconds").GetMetric()[0].GetHistogram().GetBucket() {
			out = append(out, b.GetUpperBound())
		}
		return out
	}
	plain := bounds(nil)
	if len(plain) != 19 || plain[0] != 0.001 || plain[18] != 0.001*(1<<18) {
		t.Fatalf("buckets without a hold: %v", plain)
	}
	held := bounds(heldDetector{hold: 2 * time.Minute})
	for i := 1; i < len(held); i++ {
		if held[i] <= held[i-1] {
			t.Fatalf("buckets not increasing at %d: %v", i, held)
		}
	}
	// 120.3 s lies between two neighbouring bounds less than 0.3 s apart.
	i := sort.SearchFloat64s(held, 120.3)
	if i == 0 || i == len(held) || held[i]-held[i-1] > 0.3 || held[i-1] < 120 {
		t.Fatalf("120.3 s falls between %v and %v: %v", held[max(i-1, 0)], held[min(i, len(held)-1)], held)
	}
	for _, b := range plain {
		if !slices.Contains(held, b) || !slices.Contains(held, 120+b) {
			t.Fatalf("bucket %v, or the hold plus it, missing: %v", b, held)
		}
	}
}
