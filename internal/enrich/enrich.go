// Package enrich runs Vigil's enrichers — geo, network and user agent — over
// accepted events. Every enricher runs on every event: what an event is
// enriched with depends on the event and the data files only, never on
// how busy the machine is, so detection on it is reproducible.
//
// Enrichment never rejects an event: an enricher that cannot answer leaves
// its fields empty, and an enricher that fails or panics is counted in
// vigil_enrich_errors_total and logged, while the event goes on. The
// adapters live in sub-packages (geoip, iprep, useragent); internal/app
// builds them from configuration and hands them to New in order.
package enrich

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/enrich/watch"
)

// DefaultBudget is the per-event time budget when Options.Budget is 0.
const DefaultBudget = 2 * time.Millisecond

// errorLogInterval limits the log lines about one failing enricher: the
// metric counts every failure, the log shows one per interval.
const errorLogInterval = time.Minute

// DBStatus describes one data file of an enricher (see watch.Status).
type DBStatus = watch.Status

// StatusReporter is an optional capability of an audit.Enricher: it tells
// which data files it has loaded, for GET /v1/status and `vigil config check`.
type StatusReporter interface {
	Status() []DBStatus
}

// Options configures a Pipeline.
type Options struct {
	// Enrichers run in this order on every event. Later enrichers see the
	// fields earlier ones set. Typical: iprep (network), geoip, useragent.
	Enrichers []audit.Enricher
	// Budget is the time one event's enrichment is expected to take at
	// most, DefaultBudget when 0. An event that takes longer is counted in
	// vigil_enrich_slow_total; no enricher is ever skipped for time,
	// because that would make an event's enrichment (and the findings on
	// it) depend on machine load. The work per event is bounded by the
	// enrichers instead (the user-agent parser reads at most
	// useragent.MaxLength bytes; lookups are in memory).
	Budget time.Duration
	// Logger receives one line per failing enricher per minute; nil discards.
	Logger *slog.Logger
	// Registerer receives the pipeline's metrics; nil means no metrics.
	Registerer prometheus.Registerer
	// Now is the clock used to measure the budget; time.Now when nil.
	Now func() time.Time
}

// Pipeline applies enrichers to events. It implements audit.Enricher, so
// it can be handed to the stream consumer and the risk endpoint as one.
// It is safe for concurrent use.
type Pipeline struct {
	enrichers []audit.Enricher
	budget    time.Duration
	log       *slog.Logger
	now       func() time.Time

	errs    []prometheus.Counter // per enricher, nil without a registry
	slow    prometheus.Counter
	seconds prometheus.Histogram

	mu      sync.Mutex
	lastLog []time.Time // per enricher, when an error was last logged
}

var _ audit.Enricher = (*Pipeline)(nil)

// New returns a Pipeline. It fails when an enricher is nil, two enrichers
// share a name, or metrics cannot be registered.
func New(o Options) (*Pipeline, error) {
	p := &Pipeline{enrichers: o.Enrichers, budget: o.Budget, log: o.Logger, now: o.Now}
	if p.budget <= 0 {
		p.budget = DefaultBudget
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.log = p.log.With("component", "enrich")
	if p.now == nil {
		p.now = time.Now
	}
	seen := map[string]bool{}
	for i, e := range o.Enrichers {
		if e == nil {
			return nil, fmt.Errorf("enrich: enricher %d is nil", i)
		}
		if seen[e.Name()] {
			return nil, fmt.Errorf("enrich: two enrichers are named %q", e.Name())
		}
		seen[e.Name()] = true
	}
	p.lastLog = make([]time.Time, len(o.Enrichers))
	if err := p.register(o.Registerer); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Pipeline) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_enrich_errors_total",
		Help: "Enricher failures (errors and panics); the events went on without that enrichment.",
	}, []string{"enricher"})
	p.slow = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_enrich_slow_total",
		Help: "Events whose enrichment took longer than the budget (every enricher still ran).",
	})
	p.seconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "vigil_enrich_event_seconds",
		Help:    "Time spent enriching one event.",
		Buckets: prometheus.ExponentialBuckets(250e-9, 4, 10), // 250ns … 65ms
	})
	if err := errors.Join(reg.Register(errs), reg.Register(p.slow), reg.Register(p.seconds)); err != nil {
		return fmt.Errorf("enrich: register metrics: %w", err)
	}
	for _, e := range p.enrichers {
		p.errs = append(p.errs, errs.WithLabelValues(e.Name()))
	}
	return nil
}

// Name implements audit.Enricher.
func (p *Pipeline) Name() string { return "enrich" }

// Enrich runs every enricher on e, in order. It always returns nil:
// failures are counted and logged, never passed to the caller, because
// enrichment must not fail an event. The error result exists to satisfy
// audit.Enricher.
func (p *Pipeline) Enrich(ctx context.Context, e *audit.Event) error {
	start := p.now()
	for i, en := range p.enrichers {
		if err := safeEnrich(ctx, en, e); err != nil {
			p.fail(ctx, i, e, err)
		}
	}
	if p.seconds != nil {
		took := p.now().Sub(start)
		p.seconds.Observe(took.Seconds())
		if took > p.budget {
			p.slow.Inc()
		}
	}
	return nil
}

// EnrichBatch enriches each event in turn.
func (p *Pipeline) EnrichBatch(ctx context.Context, events []*audit.Event) {
	for _, e := range events {
		_ = p.Enrich(ctx, e)
	}
}

// EnrichRecords enriches the events of stream records in place.
func (p *Pipeline) EnrichRecords(ctx context.Context, recs []audit.Record) {
	for i := range recs {
		_ = p.Enrich(ctx, &recs[i].Event)
	}
}

// Lookup returns what Vigil would attach to an event from ip with user
// agent ua: the function behind `vigil enrich 203.0.113.7 --ua '…'`. An
// invalid ip (the zero Addr) enriches the user agent only.
func (p *Pipeline) Lookup(ctx context.Context, ip netip.Addr, ua string) audit.Enrichment {
	e := audit.Event{Context: audit.Context{IP: ip.Unmap().WithZone(""), UserAgent: ua}}
	_ = p.Enrich(ctx, &e)
	return e.Enrichment
}

// Status reports the data files of every enricher that has any, in
// enricher order. It is what GET /v1/status (from the background readiness
// check) and `vigil config check` show.
func (p *Pipeline) Status() []DBStatus {
	var out []DBStatus
	for _, e := range p.enrichers {
		if r, ok := e.(StatusReporter); ok {
			out = append(out, r.Status()...)
		}
	}
	return out
}

// safeEnrich runs one enricher and turns a panic into an error, so that a
// bug in one enricher cannot take down ingestion.
func safeEnrich(ctx context.Context, en audit.Enricher, e *audit.Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return en.Enrich(ctx, e)
}

func (p *Pipeline) fail(ctx context.Context, i int, e *audit.Event, err error) {
	if p.errs != nil {
		p.errs[i].Inc()
	}
	now := p.now()
	p.mu.Lock()
	quiet := now.Sub(p.lastLog[i]) < errorLogInterval && !p.lastLog[i].IsZero()
	if !quiet {
		p.lastLog[i] = now
	}
	p.mu.Unlock()
	if quiet {
		return
	}
	p.log.LogAttrs(ctx, slog.LevelWarn, "enricher failed; event continues without its fields",
		slog.String("enricher", p.enrichers[i].Name()), slog.String("event_id", e.ID),
		slog.String("tenant_id", e.Tenant), slog.String("error", err.Error()))
}
