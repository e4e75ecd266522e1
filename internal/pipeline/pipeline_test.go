package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/memstream"
	"github.com/vigilhq/vigil/internal/pipeline"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// recorder is a Detector that records calls, can be told to fail, and
// raises one finding per event of action "x.finding".
type recorder struct {
	mu          sync.Mutex
	calls       []string
	seen        []uint64
	failProcess int
}

func (r *recorder) Process(_ context.Context, recs []*audit.Record) ([]audit.Finding, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failProcess > 0 {
		r.failProcess--
		return nil, errors.New("detector hiccup")
	}
	r.calls = append(r.calls, "process")
	var out []audit.Finding
	for _, rec := range recs {
		r.seen = append(r.seen, rec.Seq)
		if rec.Event.Enrichment.UserAgent == nil {
			return nil, errors.New("event reached detection unenriched")
		}
		if rec.Event.Action == "x.finding" {
			out = append(out, audit.Finding{ID: "f-" + rec.Event.ID, Tenant: rec.Event.Tenant, RuleID: "r", Severity: audit.SeverityLow,
				Status: audit.StatusOpen, GroupKey: rec.Event.ID, Evidence: []string{rec.Event.ID}, Count: 1,
				FirstSeen: rec.Event.Time, LastSeen: rec.Event.Time, CreatedAt: rec.Event.Time, UpdatedAt: rec.Event.Time})
		}
	}
	return out, nil
}

func (r *recorder) Checkpoint(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "checkpoint")
	return nil
}

// orderStream records commits next to the detector's calls.
type orderStream struct {
	*memstream.Stream
	rec *recorder
}

func (s orderStream) Commit(ctx context.Context, consumer string, seq uint64) error {
	s.rec.mu.Lock()
	s.rec.calls = append(s.rec.calls, "commit")
	s.rec.mu.Unlock()
	return s.Stream.Commit(ctx, consumer, seq)
}

type uaEnricher struct{}

func (uaEnricher) Name() string { return "ua" }
func (uaEnricher) Enrich(_ context.Context, e *audit.Event) error {
	e.Enrichment.UserAgent = &audit.UserAgent{Class: audit.UAClassBrowser}
	return nil
}

func setup(t *testing.T, det *recorder) (*pipeline.Pipeline, orderStream, *sqlite.DB) {
	t.Helper()
	db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := orderStream{Stream: memstream.New(memstream.Options{}), rec: det}
	p, err := pipeline.New(pipeline.Options{Stream: st, Events: db.Events(), Findings: db, Detector: det, Enricher: uaEnricher{}, BatchSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	return p, st, db
}

func appendEvents(t *testing.T, st audit.EventStream, n int, action string) {
	t.Helper()
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	var evs []*audit.Event
	for i := range n {
		evs = append(evs, &audit.Event{ID: fmt.Sprintf("%s-%d", action, i), Tenant: "acme", Action: action, Time: at.Add(time.Duration(i) * time.Second),
			ReceivedAt: at, Actor: audit.Actor{ID: "u"}})
	}
	if _, err := st.Append(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
}

func TestDrainStoresEnrichesDetectsAndCommits(t *testing.T) {
	det := &recorder{}
	p, st, db := setup(t, det)
	appendEvents(t, st, 20, "x.plain")
	appendEvents(t, st, 3, "x.finding")
	appendEvents(t, st, 1, "vigil.search") // stored, never evaluated
	if err := p.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	page, err := db.Events().SearchEvents(t.Context(), audit.EventFilter{Tenant: "acme", Limit: 100})
	if err != nil || len(page.Events) != 24 {
		t.Fatalf("stored %d events, %v", len(page.Events), err)
	}
	if page.Events[0].Enrichment.UserAgent == nil {
		t.Fatal("stored event lacks enrichment")
	}
	fs, err := db.SearchFindings(t.Context(), audit.FindingFilter{Tenant: "acme"})
	if err != nil || len(fs.Findings) != 3 {
		t.Fatalf("findings: %d, %v", len(fs.Findings), err)
	}
	off, _ := st.Offset(t.Context(), pipeline.Consumer)
	if off != 24 {
		t.Fatalf("offset %d, want 24", off)
	}
	if len(det.seen) != 23 {
		t.Fatalf("detector saw %d records, want the 23 that are not Vigil's own read audit", len(det.seen))
	}
	// The detector's state is made durable before the position that covers it.
	last := det.calls[len(det.calls)-2:]
	if last[0] != "checkpoint" || last[1] != "commit" {
		t.Fatalf("calls end with %v, want checkpoint then commit", last)
	}
	for i, s := range det.seen {
		if s != uint64(i+1) {
			t.Fatalf("detector saw seq %d at position %d: not in stream order", s, i)
		}
	}
}

func TestRunRetriesAFailingBatchWithoutLosingIt(t *testing.T) {
	det := &recorder{failProcess: 2}
	p, st, db := setup(t, det)
	appendEvents(t, st, 5, "x.plain")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		page, _ := db.Events().SearchEvents(t.Context(), audit.EventFilter{Tenant: "acme", Limit: 100})
		if len(page.Events) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("events not stored after detector failures")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if off, _ := st.Offset(t.Context(), pipeline.Consumer); off != 5 {
		t.Fatalf("offset after shutdown %d, want 5", off)
	}
	if len(det.seen) != 5 {
		t.Fatalf("detector saw %d events; a failed batch must be retried whole, once it succeeds", len(det.seen))
	}
}

// flakyFindings fails its first UpsertFindings calls, as a full disk would.
type flakyFindings struct {
	*sqlite.DB
	mu    sync.Mutex
	fails int
}

func (f *flakyFindings) UpsertFindings(ctx context.Context, fs []audit.Finding) error {
	f.mu.Lock()
	fail := f.fails > 0
	if fail {
		f.fails--
	}
	f.mu.Unlock()
	if fail {
		return &audit.Error{Code: audit.EUNAVAILABLE, Message: "disk full"}
	}
	return f.DB.UpsertFindings(ctx, fs)
}

// TestRunRetriesAFailedStoreWithItsFindings: when the findings of a batch
// cannot be stored, the batch is stored again later with the same findings.
// Detection has already seen its events (and would skip them if they came
// back), so the findings must not be recomputed — they are kept.
func TestRunRetriesAFailedStoreWithItsFindings(t *testing.T) {
	det := &recorder{}
	db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := orderStream{Stream: memstream.New(memstream.Options{}), rec: det}
	ff := &flakyFindings{DB: db, fails: 3}
	p, err := pipeline.New(pipeline.Options{Stream: st, Events: db.Events(), Findings: ff, Detector: det, Enricher: uaEnricher{}, BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	appendEvents(t, st, 6, "x.finding")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fs, err := db.SearchFindings(t.Context(), audit.FindingFilter{Tenant: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		if len(fs.Findings) == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 6 findings stored after the store recovered", len(fs.Findings))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if off, _ := st.Offset(t.Context(), pipeline.Consumer); off != 6 {
		t.Fatalf("offset after shutdown %d, want 6", off)
	}
	if len(det.seen) != 6 {
		t.Fatalf("detector saw %d events, want each of the 6 once", len(det.seen))
	}
}

// TestFindingsOnlyUnderItsOwnConsumer: a pipeline named as a consumer of
// its own, storing findings only (partitioned detection's installation
// pipeline), keeps its position apart from the main pipeline's and stores
// no event, while the main pipeline over the same stream stores them all.
func TestFindingsOnlyUnderItsOwnConsumer(t *testing.T) {
	db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := memstream.New(memstream.Options{})
	appendEvents(t, st, 5, "x.plain")
	appendEvents(t, st, 2, "x.finding")
	// The main pipeline's position exists, so the stream keeps what it
	// has not read.
	if err := st.Commit(t.Context(), pipeline.Consumer, 0); err != nil {
		t.Fatal(err)
	}
	side, err := pipeline.New(pipeline.Options{Stream: st, Consumer: "installation", FindingsOnly: true,
		Events: db.Events(), Findings: db, Detector: &recorder{}, Enricher: uaEnricher{}, BatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := side.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	if page, err := db.Events().SearchEvents(t.Context(), audit.EventFilter{Tenant: "acme", Limit: 100}); err != nil || len(page.Events) != 0 {
		t.Fatalf("a findings-only pipeline stored %d events (%v)", len(page.Events), err)
	}
	if fs, err := db.SearchFindings(t.Context(), audit.FindingFilter{Tenant: "acme"}); err != nil || len(fs.Findings) != 2 {
		t.Fatalf("a findings-only pipeline stored %d findings (%v), want 2", len(fs.Findings), err)
	}
	if off, _ := st.Offset(t.Context(), "installation"); off != 7 {
		t.Errorf("its consumer's position is %d, want 7", off)
	}
	if off, _ := st.Offset(t.Context(), pipeline.Consumer); off != 0 {
		t.Errorf("it moved the main pipeline's position to %d", off)
	}
	main, err := pipeline.New(pipeline.Options{Stream: st, Events: db.Events(), Findings: db, Detector: &recorder{}, Enricher: uaEnricher{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := main.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	if page, err := db.Events().SearchEvents(t.Context(), audit.EventFilter{Tenant: "acme", Limit: 100}); err != nil || len(page.Events) != 7 {
		t.Fatalf("the main pipeline stored %d events (%v), want 7", len(page.Events), err)
	}
}

// actionDetector evaluates only one action (audit.ActionFilter) and
// records whether each event it was given had been enriched.
type actionDetector struct {
	action   string
	enriched map[string]bool
}

func (d *actionDetector) Evaluates(action string) bool     { return action == d.action }
func (d *actionDetector) Checkpoint(context.Context) error { return nil }
func (d *actionDetector) Process(_ context.Context, recs []*audit.Record) ([]audit.Finding, error) {
	for _, r := range recs {
		d.enriched[r.Event.ID] = r.Event.Enrichment.UserAgent != nil
	}
	return nil, nil
}

// TestFindingsOnlyEnrichesWhatItsDetectorEvaluates: a findings-only
// pipeline enriches only the events of actions its detector evaluates (the
// others are stored by another pipeline, enriched there); a pipeline that
// stores events enriches them all.
func TestFindingsOnlyEnrichesWhatItsDetectorEvaluates(t *testing.T) {
	db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, findingsOnly := range []bool{true, false} {
		st := memstream.New(memstream.Options{})
		appendEvents(t, st, 3, "x.plain")
		appendEvents(t, st, 2, "x.finding")
		det := &actionDetector{action: "x.finding", enriched: map[string]bool{}}
		p, err := pipeline.New(pipeline.Options{Stream: st, FindingsOnly: findingsOnly, Consumer: fmt.Sprint("c", findingsOnly),
			Events: db.Events(), Findings: db, Detector: det, Enricher: uaEnricher{}})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Drain(t.Context()); err != nil {
			t.Fatal(err)
		}
		for id, enriched := range det.enriched {
			want := !findingsOnly || strings.HasPrefix(id, "x.finding")
			if enriched != want {
				t.Errorf("findings only %v: event %s enriched %v, want %v", findingsOnly, id, enriched, want)
			}
		}
		if len(det.enriched) != 5 {
			t.Errorf("findings only %v: the detector saw %d events, want 5", findingsOnly, len(det.enriched))
		}
	}
}
