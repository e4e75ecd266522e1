package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/internal/audit"
)

// Result statuses of one event.
const (
	StatusAccepted  = "accepted"
	StatusDuplicate = "duplicate"
	StatusRejected  = "rejected"
)

// EventResult is what became of one event of a request.
type EventResult struct {
	Index  int
	Status string
	ID     string
	Err    error // set when Status is rejected
}

// Result is what became of a request's events.
type Result struct {
	Accepted, Duplicates, Rejected int
	Results                        []EventResult
}

// TenantExists reports whether a tenant exists; ingestion for an unknown
// tenant is rejected per event.
type TenantExists func(ctx context.Context, tenant string) (bool, error)

// Options configures a Service.
type Options struct {
	// Stream is where accepted events are durably appended. Required.
	Stream audit.EventStream
	// TenantExists checks operator-named tenants. Required.
	TenantExists TenantExists
	// Now is the receive clock; time.Now when nil.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// Registerer receives the ingest metrics; nil registers none.
	Registerer prometheus.Registerer
	// Admission, when set, may refuse a request's valid events per tenant
	// before they are appended (rate limits, backlog shares).
	Admission Admission
	// MaxEventAge is how long before its receive time an event may be
	// dated, DefaultMaxEventAge when 0. Every distinct day of event time is
	// a storage partition, so this bounds what one request can create.
	MaxEventAge time.Duration
	// TenantEventAge returns a tenant's own override of MaxEventAge (0 for
	// none), which an operator sets to let the tenant backfill history. Nil
	// means no tenant has one. It is called once per tenant per request,
	// so it should be cached.
	TenantEventAge func(ctx context.Context, tenant string) (time.Duration, error)
}

// Admission decides whether a request's valid events may be appended. It
// is where per-tenant quotas plug in; Ingest only counts and reports.
type Admission interface {
	// Admit is asked before the append with the number of valid events per
	// tenant. A non-nil error fails the whole request: nothing is appended
	// and Ingest returns the error unchanged. After a nil error, Settle
	// follows exactly once.
	Admit(ctx context.Context, counts map[string]int) error
	// Settle reports what the append did with admitted events: per tenant,
	// how many were new (not duplicates) and the highest Seq among them.
	// appended is nil when the append failed.
	Settle(counts map[string]int, appended map[string]Appended)
}

// Appended is what one append stored for one tenant.
type Appended struct {
	// N is the number of new events; Last the highest Seq among them.
	N    int
	Last uint64
}

// DefaultMaxEventAge is Options.MaxEventAge when 0: a quarter, enough for
// delayed deliveries and replays after an outage.
const DefaultMaxEventAge = 90 * 24 * time.Hour

// Service normalises, validates and durably appends events.
type Service struct {
	stream  audit.EventStream
	exists  TenantExists
	maxAge  time.Duration
	ageOf   func(ctx context.Context, tenant string) (time.Duration, error)
	now     func() time.Time
	log     *slog.Logger
	ids     audit.IDGenerator
	metrics *metrics
	quota   Admission
}

type metrics struct {
	events     *prometheus.CounterVec
	rejects    *prometheus.CounterVec
	batchSize  prometheus.Histogram
	commitTime prometheus.Histogram
}

// New returns a ready Service.
func New(opts Options) (*Service, error) {
	if opts.Stream == nil || opts.TenantExists == nil {
		return nil, errors.New("ingest: Stream and TenantExists are required")
	}
	s := &Service{stream: opts.Stream, exists: opts.TenantExists, now: opts.Now, log: opts.Logger, quota: opts.Admission,
		maxAge: opts.MaxEventAge, ageOf: opts.TenantEventAge}
	if s.maxAge <= 0 {
		s.maxAge = DefaultMaxEventAge
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingest_events_total", Help: "Events received, by result (accepted, duplicate, rejected).",
		}, []string{"result"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingest_rejects_total", Help: "Rejected events by error code and field (a field of the event schema, or \"other\" for unknown ones).",
		}, []string{"code", "field"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_ingest_batch_size", Help: "Events per ingest request.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_ingest_commit_seconds", Help: "Time to durably append one request's events.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14),
		}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{m.events, m.rejects, m.batchSize, m.commitTime} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register ingest metrics: %w", err)
			}
		}
	}
	s.metrics = m
	return s, nil
}

// Ingest checks each decoded item against the caller and the catalog and
// appends the good ones in one durable append. The error is non-nil only
// when the append itself failed (nothing of the request was stored then);
// per-event problems are in the results.
func (s *Service) Ingest(ctx context.Context, p audit.Principal, items []Item) (*Result, error) {
	return s.ingest(ctx, p, items, false)
}

// Record appends a record Vigil writes itself (the read-audit vigil.search
// and vigil.export, attributed to the reading key p) exactly as Ingest
// would, except that the reserved vigil. namespace, which Ingest refuses
// to every client, is allowed. It is not reachable from a request body.
func (s *Service) Record(ctx context.Context, p audit.Principal, ev *audit.Event) (*Result, error) {
	return s.ingest(ctx, p, []Item{{Event: ev}}, true)
}

func (s *Service) ingest(ctx context.Context, p audit.Principal, items []Item, own bool) (*Result, error) {
	now := s.now().UTC()
	res := &Result{Results: make([]EventResult, len(items))}
	good := make([]*audit.Event, 0, len(items))
	goodIdx := make([]int, 0, len(items))
	known := map[string]bool{}
	ages := map[string]time.Duration{}
	for i, it := range items {
		r := EventResult{Index: it.Index}
		err := it.Err
		if err == nil {
			err = s.admit(ctx, p, it.Event, now, known, own)
		} else if it.Event != nil {
			err = s.withValidation(ctx, p, it.Event, err, now, known, own)
		}
		if err == nil {
			err = s.checkAge(ctx, it.Event, now, ages)
		}
		if err != nil {
			r.Status, r.Err = StatusRejected, err
			if it.Event != nil {
				r.ID = it.Event.ID
			}
			res.Results[i] = r
			continue
		}
		r.ID = it.Event.ID
		res.Results[i] = r
		good = append(good, it.Event)
		goodIdx = append(goodIdx, i)
	}
	s.metrics.batchSize.Observe(float64(len(items)))
	if len(good) > 0 {
		var counts map[string]int
		if s.quota != nil {
			counts = make(map[string]int, 1)
			for _, ev := range good {
				counts[ev.Tenant]++
			}
			if err := s.quota.Admit(ctx, counts); err != nil {
				return nil, err
			}
		}
		start := time.Now()
		appended, err := s.stream.Append(ctx, good)
		if s.quota != nil {
			s.quota.Settle(counts, tally(good, appended, err))
		}
		if err != nil {
			return nil, fmt.Errorf("append %d events: %w", len(good), err)
		}
		s.metrics.commitTime.Observe(time.Since(start).Seconds())
		for j, ar := range appended {
			if ar.Duplicate {
				res.Results[goodIdx[j]].Status = StatusDuplicate
			} else {
				res.Results[goodIdx[j]].Status = StatusAccepted
			}
		}
	}
	for _, r := range res.Results {
		switch r.Status {
		case StatusAccepted:
			res.Accepted++
		case StatusDuplicate:
			res.Duplicates++
		default:
			res.Rejected++
			s.metrics.rejects.WithLabelValues(rejectCode(r.Err), rejectField(r.Err)).Inc()
		}
	}
	s.metrics.events.WithLabelValues(StatusAccepted).Add(float64(res.Accepted))
	s.metrics.events.WithLabelValues(StatusDuplicate).Add(float64(res.Duplicates))
	s.metrics.events.WithLabelValues(StatusRejected).Add(float64(res.Rejected))
	return res, nil
}

// tally sums an append's new events per tenant for Admission.Settle.
func tally(good []*audit.Event, appended []audit.AppendResult, err error) map[string]Appended {
	if err != nil {
		return nil
	}
	out := make(map[string]Appended, 1)
	for i, ar := range appended {
		if ar.Duplicate {
			continue
		}
		t := out[good[i].Tenant]
		t.N++
		t.Last = max(t.Last, ar.Seq)
		out[good[i].Tenant] = t
	}
	return out
}

// withValidation adds to the decoder's problems with an event (decoded
// only in part) those validation finds, so the client learns every problem
// at once; a field the decoder already named is not named twice.
func (s *Service) withValidation(ctx context.Context, p audit.Principal, ev *audit.Event, decodeErr error, now time.Time, known map[string]bool, own bool) error {
	id := ev.ID
	verr := s.admit(ctx, p, ev, now, known, own)
	ev.ID = id // a rejected event keeps the client's id, not an assigned one
	if audit.ErrorCode(decodeErr) != audit.EINVALID || audit.ErrorCode(verr) != audit.EINVALID {
		return decodeErr
	}
	problems := audit.ErrorProblems(decodeErr)
	named := make(map[string]bool, len(problems))
	for _, pr := range problems {
		named[pr.Field] = true
	}
	for _, pr := range audit.ErrorProblems(verr) {
		if !named[pr.Field] {
			problems = append(problems, pr)
		}
	}
	return audit.Invalid(problems)
}

// admit resolves the tenant, normalises and validates one event and assigns
// its id and receive time.
func (s *Service) admit(ctx context.Context, p audit.Principal, ev *audit.Event, now time.Time, known map[string]bool, own bool) error {
	switch {
	case !p.Operator() && ev.Tenant == "":
		ev.Tenant = p.Tenant
	case !p.Operator() && ev.Tenant != p.Tenant:
		return &audit.Error{Code: audit.EFORBIDDEN, Field: "tenant", Message: "this key may not write to another tenant"}
	case p.Operator() && ev.Tenant == "":
		return audit.FieldErrorf("tenant", "tenant is required with an operator key")
	}
	ev.Normalize(now)
	validate := ev.Validate
	if own {
		validate = ev.ValidateOwn
	}
	if err := validate(now); err != nil {
		return err
	}
	if p.Operator() {
		ok, seen := known[ev.Tenant]
		if !seen {
			var err error
			if ok, err = s.exists(ctx, ev.Tenant); err != nil {
				return fmt.Errorf("look up tenant %s: %w", ev.Tenant, err)
			}
			known[ev.Tenant] = ok
		}
		if !ok {
			return &audit.Error{Code: audit.ENOTFOUND, Field: "tenant", Message: fmt.Sprintf("tenant %q does not exist", ev.Tenant)}
		}
	}
	if ev.ID == "" {
		ev.ID = s.ids.New(now)
	}
	ev.ReceivedAt = now
	return nil
}

// checkAge rejects an event dated further back than its tenant may (the
// future is bounded by audit.MaxFutureSkew in Validate). ages caches each
// tenant's allowance for the request.
func (s *Service) checkAge(ctx context.Context, ev *audit.Event, now time.Time, ages map[string]time.Duration) error {
	age, ok := ages[ev.Tenant]
	if !ok {
		age = s.maxAge
		if s.ageOf != nil {
			own, err := s.ageOf(ctx, ev.Tenant)
			if err != nil {
				return fmt.Errorf("look up event age of tenant %s: %w", ev.Tenant, err)
			}
			if own > 0 {
				age = own
			}
		}
		ages[ev.Tenant] = age
	}
	if ev.Time.Before(now.Add(-age)) {
		return audit.FieldErrorf("time", "time %s is older than the tenant's allowed age of %s; an operator can allow a backfill with the tenant's max_event_age_days",
			ev.Time.Format(time.RFC3339), fmtAge(age))
	}
	return nil
}

// fmtAge writes an allowance in days when it is whole days.
func fmtAge(d time.Duration) string {
	switch {
	case d == 24*time.Hour:
		return "1 day"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}
