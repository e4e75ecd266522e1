package pipeline_test

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/memstream"
	"github.com/vigilhq/vigil/internal/pipeline"
	"github.com/vigilhq/vigil/internal/rules"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// clock is a settable wall clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// waitFindings polls the store until it holds want findings of rule (or
// fails after a generous deadline).
func waitFindings(t *testing.T, db *sqlite.DB, rule string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		page, err := db.SearchFindings(t.Context(), audit.FindingFilter{Tenant: "acme", RuleID: rule})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Findings) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s findings stored, want %d", len(page.Findings), rule, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunEvaluatesHeldEventsOnceCaughtUp: the engine holds a quiet
// tenant's latest events for event-time order; once the pipeline has
// caught up and the wall clock is the allowed lateness past them, they are
// evaluated and their findings stored. Flush does it at once. Each stored
// finding update's latency runs from its evidence's receipt, the wait in
// the hold included.
func TestRunEvaluatesHeldEventsOnceCaughtUp(t *testing.T) {
	for _, flush := range []bool{false, true} {
		t.Run(fmt.Sprint("flush=", flush), func(t *testing.T) {
			reg := prometheus.NewRegistry()
			h := heldSetup(t, pipeline.Options{CheckpointEvery: 10 * time.Millisecond, Registerer: reg})
			db, eng, p, wall, at := h.db, h.eng, h.p, h.wall, h.at
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			defer func() { cancel(); <-done }()

			waitStored(t, db, 20)
			if n := eng.Held(); n == 0 {
				t.Fatal("the quiet tenant's events were evaluated before the lateness passed")
			}
			stored := at.Add(time.Minute)
			if flush {
				if err := p.Flush(t.Context()); err != nil {
					t.Fatal(err)
				}
			} else {
				stored = at.Add(3 * time.Minute)
				wall.set(stored)
			}
			waitFindings(t, db, "brute-force", 1)
			if n := eng.Held(); n != 0 {
				t.Fatalf("%d events still held", n)
			}
			// Every event was received at `at` and every finding stored at
			// `stored` by the pipeline's clock.
			updates := counter(t, reg, "vigil_pipeline_findings_total")
			count, sum := histogram(t, reg, "vigil_finding_latency_seconds")
			if updates == 0 || float64(count) != updates {
				t.Fatalf("finding latency observed %d times for %v finding updates", count, updates)
			}
			if want := stored.Sub(at).Seconds() * float64(count); math.Abs(sum-want) > 1e-6 {
				t.Fatalf("finding latency sum %v s over %d updates, want %v s", sum, count, want)
			}
		})
	}
}

// held is a pipeline with the built-in rules on a real store, the
// allowed lateness at 2 minutes and a settable wall clock a minute past
// at, whose stream holds 20 failed logins on one account from at on: a
// brute force that stays held until the clock is the lateness past it.
type held struct {
	db   *sqlite.DB
	eng  *detect.Engine
	st   *memstream.Stream
	p    *pipeline.Pipeline
	wall *clock
	at   time.Time
}

// heldSetup builds a held pipeline; opts adds to the options it sets, and
// wrap, when given, wraps the stream the pipeline reads.
func heldSetup(t *testing.T, opts pipeline.Options, wrap ...func(audit.EventStream) audit.EventStream) held {
	t.Helper()
	return heldSetupLateness(t, opts, 2*time.Minute, nil, wrap...)
}

// heldSetupLateness is heldSetup with an engine holding events lateness;
// detector, when given, wraps the engine the pipeline runs.
func heldSetupLateness(t *testing.T, opts pipeline.Options, lateness time.Duration, detector func(*detect.Engine) audit.Detector,
	wrap ...func(audit.EventStream) audit.EventStream) held {
	t.Helper()
	db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	eng, err := detect.New(detect.Options{Rules: rules.MustBuiltin(), StateStore: db, AllowedLateness: lateness})
	if err != nil {
		t.Fatal(err)
	}
	h := held{db: db, eng: eng, st: memstream.New(memstream.Options{}), at: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	h.wall = &clock{t: h.at.Add(time.Minute)}
	opts.Stream, opts.Events, opts.Findings, opts.Detector = h.st, db.Events(), db, eng
	if detector != nil {
		opts.Detector = detector(eng)
	}
	for _, w := range wrap {
		opts.Stream = w(opts.Stream)
	}
	opts.Enricher, opts.Now = uaEnricher{}, h.wall.now
	if h.p, err = pipeline.New(opts); err != nil {
		t.Fatal(err)
	}
	var evs []*audit.Event
	for i := range 20 {
		ev := &audit.Event{ID: fmt.Sprintf("bf%02d", i), Tenant: "acme", Action: audit.ActionLoginFailure, Reason: "invalid_password",
			Time: h.at.Add(time.Duration(i) * time.Second), ReceivedAt: h.at, Actor: audit.Actor{ID: "victim@example.com"}}
		ev.Context.IP = netipAddr(t, "198.51.100.9")
		ev.Normalize(ev.Time)
		evs = append(evs, ev)
	}
	if _, err := h.st.Append(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	return h
}

func waitStored(t *testing.T, db *sqlite.DB, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		page, err := db.Events().SearchEvents(t.Context(), audit.EventFilter{Tenant: "acme", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events stored, want %d", len(page.Events), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func netipAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// counter sums a counter over its labels.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	v := 0.0
	for _, m := range family(t, reg, name).GetMetric() {
		v += m.GetCounter().GetValue()
	}
	return v
}

// histogram reads an unlabelled histogram's count and sum.
func histogram(t *testing.T, reg *prometheus.Registry, name string) (uint64, float64) {
	t.Helper()
	ms := family(t, reg, name).GetMetric()
	if len(ms) != 1 {
		t.Fatalf("histogram %s has %d series, want 1", name, len(ms))
	}
	h := ms[0].GetHistogram()
	return h.GetSampleCount(), h.GetSampleSum()
}

// TestQuietTenantIsEvaluatedWhileAnotherTrickles: a pipeline that has
// caught up but never reads nothing — another tenant sends all the time,
// and the linger gathers its events into small batches — still evaluates a
// quiet tenant's held events once the wall clock is the allowed lateness
// past them.
func TestQuietTenantIsEvaluatedWhileAnotherTrickles(t *testing.T) {
	h := heldSetup(t, pipeline.Options{Linger: 20 * time.Millisecond, Registerer: prometheus.NewRegistry()})
	db, eng, p, wall, at := h.db, h.eng, h.p, h.wall, h.at
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	trickled := trickle(ctx, h, 0)
	defer func() { cancel(); <-done; <-trickled }()

	waitStored(t, db, 20)
	if n := eng.Held(); n == 0 {
		t.Fatal("the quiet tenant's events were evaluated before the lateness passed")
	}
	wall.set(at.Add(3 * time.Minute))
	waitFindings(t, db, "brute-force", 1)
}

// trickle appends an event of tenant "other", stamped with the wall
// clock, every 2 ms until ctx ends, moving the clock on by step after each;
// the channel it returns is closed when it has stopped.
func trickle(ctx context.Context, h held, step time.Duration) <-chan struct{} {
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for i := 0; ctx.Err() == nil; i++ {
			ev := &audit.Event{ID: fmt.Sprintf("o%06d", i), Tenant: "other", Action: "document.viewed",
				Time: h.wall.now(), ReceivedAt: h.wall.now(), Actor: audit.Actor{ID: "reader@example.com"}}
			ev.Normalize(ev.Time)
			if _, err := h.st.Append(ctx, []*audit.Event{ev}); err != nil {
				return
			}
			if step > 0 {
				h.wall.set(h.wall.now().Add(step))
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return stopped
}

// waitSpy records how long each Wait of the pipeline may last.
type waitSpy struct {
	audit.EventStream
	mu    sync.Mutex
	waits []time.Duration
}

func (w *waitSpy) Wait(ctx context.Context, after uint64) error {
	if d, ok := ctx.Deadline(); ok {
		w.mu.Lock()
		w.waits = append(w.waits, time.Until(d))
		w.mu.Unlock()
	}
	return w.EventStream.Wait(ctx, after)
}

func (w *waitSpy) last() (time.Duration, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.waits) == 0 {
		return 0, 0
	}
	return w.waits[len(w.waits)-1], len(w.waits)
}

// TestCaughtUpPipelineWakesWhenHeldEventsFallDue: a pipeline with nothing
// to read waits for new events at most until the oldest held event falls
// due (its time plus the allowed lateness), not a whole idle period, so a
// quiet tenant's findings are stored as soon as the lateness allows.
func TestCaughtUpPipelineWakesWhenHeldEventsFallDue(t *testing.T) {
	spy := &waitSpy{}
	h := heldSetup(t, pipeline.Options{CheckpointEvery: time.Hour, Registerer: prometheus.NewRegistry()},
		func(s audit.EventStream) audit.EventStream { spy.EventStream = s; return spy })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitStored(t, h.db, 20)

	// The first held event (at h.at) falls due 2 minutes and a millisecond
	// later; the wall clock stands 300 ms before that.
	due, ok := h.eng.NextDue()
	if want := h.at.Add(2*time.Minute + time.Millisecond); !ok || !due.Equal(want) {
		t.Fatalf("NextDue = %v, %v; want %v", due, ok, want)
	}
	h.wall.set(due.Add(-300 * time.Millisecond))
	_, n := spy.last()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if d, m := spy.last(); m > n+1 {
			// A wait that began after the clock moved: until the event
			// falls due, not the idle second.
			if d > 700*time.Millisecond {
				t.Fatalf("the caught-up pipeline waits %v with a held event due in 300 ms", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pipeline did not wait again")
		}
	}
	// All twenty fall due (the last one 19 s after the first): the finding.
	h.wall.set(h.at.Add(3 * time.Minute))
	waitFindings(t, h.db, "brute-force", 1)
	if due, ok := h.eng.NextDue(); ok || h.eng.Held() != 0 {
		t.Fatalf("nothing should be held, yet NextDue = %v, %v (%d held)", due, ok, h.eng.Held())
	}
}

// countingEngine counts the pipeline's wall-clock evaluations of held
// events (Advance); every other method is the engine's.
type countingEngine struct {
	*detect.Engine
	advances atomic.Int64
}

func (c *countingEngine) Advance(ctx context.Context, now time.Time) ([]audit.Finding, error) {
	c.advances.Add(1)
	return c.Engine.Advance(ctx, now)
}

// readSpy counts the pipeline's reads that found records.
type readSpy struct {
	audit.EventStream
	reads atomic.Int64
}

func (r *readSpy) Read(ctx context.Context, after uint64, max int) ([]audit.Record, error) {
	recs, err := r.EventStream.Read(ctx, after, max)
	if len(recs) > 0 {
		r.reads.Add(1)
	}
	return recs, err
}

// TestShortLatenessIsEvaluatedAtItsPace: while reads keep finding a few
// events (caught up, never idle), held events are evaluated by the wall
// clock at a pace set by the allowed lateness — after every read when it
// is a millisecond — not once a second, which would make a short hold a
// second long.
func TestShortLatenessIsEvaluatedAtItsPace(t *testing.T) {
	spy := &readSpy{}
	var eng *countingEngine
	h := heldSetupLateness(t, pipeline.Options{Linger: 10 * time.Millisecond, CheckpointEvery: time.Hour, Registerer: prometheus.NewRegistry()},
		time.Millisecond, func(e *detect.Engine) audit.Detector { eng = &countingEngine{Engine: e}; return eng },
		func(s audit.EventStream) audit.EventStream { spy.EventStream = s; return spy })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.p.Run(ctx) }()
	// Each of the other tenant's events is held: its front does not move
	// past it by the lateness until the wall clock does.
	trickled := trickle(ctx, h, 10*time.Millisecond)
	defer func() { cancel(); <-done; <-trickled }()
	waitStored(t, h.db, 20)

	r0, a0 := spy.reads.Load(), eng.advances.Load()
	for spy.reads.Load() < r0+30 {
		time.Sleep(5 * time.Millisecond)
	}
	reads, advances := spy.reads.Load()-r0, eng.advances.Load()-a0
	// One evaluation per read that found events (the count may trail by
	// the read in flight); at a second's pace it would be one or two.
	if advances < reads*2/3 {
		t.Fatalf("%d wall-clock evaluations over %d reads that found events, want about one per read", advances, reads)
	}
}
