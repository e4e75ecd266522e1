package httpapi

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
	"github.com/vigilhq/vigil/internal/ingest"
)

// Names of the limits a 429 answer names in error.limit.
const (
	LimitKeyRequestRate          = "key_request_rate"
	LimitTenantRequestRate       = "tenant_request_rate"
	LimitTenantEventRate         = "tenant_event_rate"
	LimitTenantBacklogShare      = "tenant_backlog_share"
	LimitTenantConcurrentQueries = "tenant_concurrent_queries"
	LimitTenantConcurrentExports = "tenant_concurrent_exports"
	LimitConcurrentQueries       = "concurrent_queries"
	LimitConcurrentExports       = "concurrent_exports"
	LimitIngestConcurrency       = "ingest_concurrency"
	LimitIngestBacklog           = "ingest_backlog"
)

// TenantLimits are one tenant's limits. Zero turns a limit off.
type TenantLimits struct {
	// RequestRate is authenticated requests per second over all the
	// tenant's keys; RequestBurst how many may come at once.
	RequestRate  float64
	RequestBurst int
	// EventRate is valid events per second the tenant may append (through
	// any key, operator keys included); EventBurst how many at once. A
	// request larger than EventBurst is charged EventBurst.
	EventRate  float64
	EventBurst int
	// BacklogShare is how many of the tenant's accepted events may wait for
	// the pipeline at once. A request is refused only while the tenant has
	// events waiting, so one batch larger than the share still passes.
	BacklogShare int
	// ConcurrentQueries and ConcurrentExports bound the tenant's reads in
	// progress at once.
	ConcurrentQueries int
	ConcurrentExports int
}

// LimiterOptions configures a Limiter.
type LimiterOptions struct {
	// Tenant is the default for every tenant.
	Tenant TenantLimits
	// Tenants overrides Tenant for the named tenants (whole values: the
	// caller merges them with the default).
	Tenants map[string]TenantLimits
	// KeyRequestRate and KeyRequestBurst limit requests per API key, of
	// every kind; 0 is no limit.
	KeyRequestRate  float64
	KeyRequestBurst int
	// ConcurrentQueries and ConcurrentExports bound reads in progress on the
	// whole server; 0 is no limit.
	ConcurrentQueries int
	ConcurrentExports int
	// MaxTracked bounds the rate-limit state kept per kind (keys, tenants);
	// default 10,000. Beyond it, idle entries are dropped first (losing
	// nothing: an idle bucket is full), then arbitrary ones.
	MaxTracked int
	// Committed returns the stream position the pipeline processing
	// tenant's events has committed: the tenant's events at or below it no
	// longer count against its backlog share. Without it backlog shares
	// are not enforced.
	Committed func(ctx context.Context, tenant string) (uint64, error)
	// Registerer receives vigil_limit_hits_total; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Limiter enforces fairness between tenants and keys: token-bucket
// request and event rates, per-tenant shares of the ingest backlog, and
// concurrency limits for queries and exports. It implements
// ingest.Admission for the event limits. All its state is bounded: rate
// buckets by MaxTracked, backlog accounting by the tenants with events
// waiting (64 entries each), concurrency counts by the reads in progress.
type Limiter struct {
	opts LimiterOptions
	now  func() time.Time
	hits *prometheus.CounterVec

	mu                 sync.Mutex
	keyReq, tenantReq  *buckets
	tenantEvents       *buckets
	backlog            map[string]*tenantBacklog
	queries, exports   map[string]int // running, by tenant ("" for operators)
	nQueries, nExports int
}

var _ ingest.Admission = (*Limiter)(nil)

// NewLimiter returns a Limiter.
func NewLimiter(opts LimiterOptions) (*Limiter, error) {
	if opts.MaxTracked <= 0 {
		opts.MaxTracked = 10_000
	}
	l := &Limiter{opts: opts, now: opts.Now,
		keyReq: newBuckets(opts.MaxTracked), tenantReq: newBuckets(opts.MaxTracked), tenantEvents: newBuckets(opts.MaxTracked),
		backlog: map[string]*tenantBacklog{}, queries: map[string]int{}, exports: map[string]int{},
	}
	if l.now == nil {
		l.now = time.Now
	}
	l.hits = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_limit_hits_total",
		Help: "Requests answered 429, by the limit they hit."}, []string{"limit"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(l.hits); err != nil {
			return nil, fmt.Errorf("register limit metrics: %w", err)
		}
	}
	return l, nil
}

// tenant returns the limits of one tenant.
func (l *Limiter) tenant(id string) TenantLimits {
	if t, ok := l.opts.Tenants[id]; ok {
		return t
	}
	return l.opts.Tenant
}

func (l *Limiter) refuse(limit string, wait time.Duration, format string, args ...any) error {
	l.hits.WithLabelValues(limit).Inc()
	return &httpx.LimitError{Limit: limit, RetryAfter: wait, Message: fmt.Sprintf(format, args...)}
}

// Refused counts a 429 decided elsewhere (ingest concurrency, the global
// backlog) and returns its error.
func (l *Limiter) Refused(limit string, format string, args ...any) error {
	return l.refuse(limit, time.Second, format, args...)
}

// Request charges one request to its key and, for a tenant key, to its
// tenant. Nothing is charged when either is over its rate.
func (l *Limiter) Request(p audit.Principal) error {
	now := l.now()
	t := l.tenant(p.Tenant)
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.Tenant != "" && t.RequestRate > 0 {
		if wait := l.tenantReq.wait(p.Tenant, t.RequestRate, t.RequestBurst, 1, now); wait > 0 {
			return l.refuse(LimitTenantRequestRate, wait, "tenant %s is over its rate of %g requests per second", p.Tenant, t.RequestRate)
		}
	}
	if l.opts.KeyRequestRate > 0 {
		if wait := l.keyReq.wait(p.KeyID, l.opts.KeyRequestRate, l.opts.KeyRequestBurst, 1, now); wait > 0 {
			return l.refuse(LimitKeyRequestRate, wait, "key %s is over its rate of %g requests per second", p.KeyID, l.opts.KeyRequestRate)
		}
		l.keyReq.take(p.KeyID, 1)
	}
	if p.Tenant != "" && t.RequestRate > 0 {
		l.tenantReq.take(p.Tenant, 1)
	}
	return nil
}

// serverWriteKey marks a context whose ingest is the server's own record
// (a read audit): it is counted in backlog shares but never refused.
type serverWriteKey struct{}

func serverWrite(ctx context.Context) context.Context {
	return context.WithValue(ctx, serverWriteKey{}, true)
}

// ServerWrite marks ctx for the server's own records made outside a
// request (the retention job's): counted in backlog shares, never refused.
func ServerWrite(ctx context.Context) context.Context { return serverWrite(ctx) }

// Admit implements ingest.Admission: every tenant of the request must be
// within its event rate and its backlog share, or nothing is charged.
func (l *Limiter) Admit(ctx context.Context, counts map[string]int) error {
	exempt, _ := ctx.Value(serverWriteKey{}).(bool)
	// The committed positions, read before the lock: per tenant, since
	// with partitioned detection each tenant's events have their own
	// pipeline (the tenants of one request are few).
	var committed map[string]uint64
	if !exempt && l.opts.Committed != nil {
		for tenant := range counts {
			if l.tenant(tenant).BacklogShare > 0 {
				if c, err := l.opts.Committed(ctx, tenant); err == nil {
					if committed == nil {
						committed = map[string]uint64{}
					}
					committed[tenant] = c
				}
			}
		}
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !exempt {
		for tenant, n := range counts {
			t := l.tenant(tenant)
			if t.EventRate > 0 {
				if wait := l.tenantEvents.wait(tenant, t.EventRate, t.EventBurst, n, now); wait > 0 {
					return l.refuse(LimitTenantEventRate, wait, "tenant %s is over its rate of %g events per second", tenant, t.EventRate)
				}
			}
			if c, ok := committed[tenant]; t.BacklogShare > 0 && ok {
				if waiting := l.backlogOf(tenant, c); waiting > 0 && waiting+n > t.BacklogShare {
					return l.refuse(LimitTenantBacklogShare, time.Second,
						"tenant %s has %d events waiting to be processed, its share of the backlog is %d", tenant, waiting, t.BacklogShare)
				}
			}
		}
	}
	for tenant, n := range counts {
		if t := l.tenant(tenant); t.EventRate > 0 && !exempt {
			l.tenantEvents.take(tenant, n)
		}
		b := l.backlog[tenant]
		if b == nil {
			b = &tenantBacklog{}
			l.backlog[tenant] = b
		}
		b.pending += n
	}
	return nil
}

// Settle implements ingest.Admission.
func (l *Limiter) Settle(counts map[string]int, appended map[string]ingest.Appended) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for tenant, n := range counts {
		b := l.backlog[tenant]
		if b == nil {
			continue
		}
		b.pending -= n
		if a := appended[tenant]; a.N > 0 {
			b.add(a.Last, a.N)
		}
		if b.pending == 0 && len(b.segs) == 0 {
			delete(l.backlog, tenant)
		}
	}
}

// backlogOf is how many of tenant's events wait beyond committed (or are
// being appended); it forgets what the pipeline has committed.
func (l *Limiter) backlogOf(tenant string, committed uint64) int {
	b := l.backlog[tenant]
	if b == nil {
		return 0
	}
	b.release(committed)
	n := b.pending
	for _, s := range b.segs {
		n += s.n
	}
	if n == 0 {
		delete(l.backlog, tenant)
	}
	return n
}

// Acquire takes a query or export slot for the principal's tenant
// (operators count only against the server-wide bound) and returns its
// release.
func (l *Limiter) Acquire(p audit.Principal, export bool) (release func(), err error) {
	t := l.tenant(p.Tenant)
	l.mu.Lock()
	defer l.mu.Unlock()
	running, n := l.queries, &l.nQueries
	global, perTenant := l.opts.ConcurrentQueries, t.ConcurrentQueries
	globalName, tenantName, what := LimitConcurrentQueries, LimitTenantConcurrentQueries, "queries"
	if export {
		running, n = l.exports, &l.nExports
		global, perTenant = l.opts.ConcurrentExports, t.ConcurrentExports
		globalName, tenantName, what = LimitConcurrentExports, LimitTenantConcurrentExports, "exports"
	}
	if p.Tenant != "" && perTenant > 0 && running[p.Tenant] >= perTenant {
		return nil, l.refuse(tenantName, time.Second, "tenant %s already runs %d %s at once, its limit", p.Tenant, running[p.Tenant], what)
	}
	if global > 0 && *n >= global {
		return nil, l.refuse(globalName, time.Second, "the server already runs %d %s at once, its limit", *n, what)
	}
	running[p.Tenant]++
	*n++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			*n--
			if running[p.Tenant]--; running[p.Tenant] <= 0 {
				delete(running, p.Tenant)
			}
		})
	}, nil
}

// tenantBacklog is one tenant's events waiting for the pipeline: pending
// are being appended; segs are appended, each up to a stream position.
type tenantBacklog struct {
	pending int
	segs    []segment
}

type segment struct {
	last uint64
	n    int
}

// maxSegments bounds a tenant's accounting. Beyond it the two oldest
// segments merge, freed when the later of them is committed: the count
// stays exact, only its release can come a little late.
const maxSegments = 64

func (b *tenantBacklog) add(last uint64, n int) {
	if len(b.segs) == maxSegments {
		b.segs[1] = segment{last: max(b.segs[0].last, b.segs[1].last), n: b.segs[0].n + b.segs[1].n}
		b.segs = append(b.segs[:0], b.segs[1:]...)
	}
	b.segs = append(b.segs, segment{last: last, n: n})
}

func (b *tenantBacklog) release(committed uint64) {
	kept := b.segs[:0]
	for _, s := range b.segs {
		if s.last > committed {
			kept = append(kept, s)
		}
	}
	b.segs = kept
}

// buckets are token buckets by id, at most max of them.
type buckets struct {
	m   map[string]*bucket
	max int
}

type bucket struct {
	tokens float64
	at     time.Time
	rate   float64
	burst  float64
}

func newBuckets(max int) *buckets { return &buckets{m: map[string]*bucket{}, max: max} }

// wait refills id's bucket to now and returns how long until n tokens are
// there (0: they are); it takes nothing. burst < 1 means 1; n is capped at
// the burst so that a large request is possible at all.
func (bs *buckets) wait(id string, rate float64, burst, n int, now time.Time) time.Duration {
	fb := math.Max(float64(burst), 1)
	b := bs.m[id]
	if b == nil {
		bs.evict(now)
		b = &bucket{tokens: fb, at: now}
		bs.m[id] = b
	}
	b.rate, b.burst = rate, fb
	if el := now.Sub(b.at).Seconds(); el > 0 {
		b.tokens = math.Min(fb, b.tokens+el*rate)
		b.at = now
	}
	need := math.Min(float64(n), fb)
	if b.tokens >= need {
		return 0
	}
	return time.Duration((need - b.tokens) / rate * float64(time.Second))
}

// take removes n tokens (capped at the burst) from a bucket wait has just
// refilled.
func (bs *buckets) take(id string, n int) {
	if b := bs.m[id]; b != nil {
		b.tokens -= math.Min(float64(n), b.burst)
	}
}

// evict makes room for one more bucket: first every full (idle) bucket,
// which a new one would equal; then, if still full, a tenth of the rest.
func (bs *buckets) evict(now time.Time) {
	if len(bs.m) < bs.max {
		return
	}
	for id, b := range bs.m {
		if b.tokens+now.Sub(b.at).Seconds()*b.rate >= b.burst {
			delete(bs.m, id)
		}
	}
	for id := range bs.m {
		if len(bs.m) < bs.max-bs.max/10 {
			break
		}
		delete(bs.m, id)
	}
}

// readKind says which concurrency limit a route's reads count against.
var readKind = map[string]string{
	"GET /v1/events":        "query",
	"POST /v1/query":        "query",
	"GET /v1/actors/{id}":   "query",
	"GET /v1/sessions/{id}": "query",
	"GET /v1/ips/{ip}":      "query",
	"GET /v1/findings":      "query",
	"POST /v1/export":       "export",
	// A backtest replays up to weeks of history: it counts as an export.
	"POST /v1/rules/{rule}/backtest": "export",
	"GET /v1/rules/suggestions":      "export",
}

// limited charges an authenticated request to its key's and tenant's
// request rates and, for a query or export route, holds a concurrency slot
// while it runs.
func (a *API) limited(pattern string, h func(w http.ResponseWriter, r *http.Request, p audit.Principal) error) func(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	kind := readKind[pattern]
	return func(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
		if err := a.limits.Request(p); err != nil {
			return err
		}
		if kind != "" {
			release, err := a.limits.Acquire(p, kind == "export")
			if err != nil {
				return err
			}
			defer release()
		}
		return h(w, r, p)
	}
}
