// Package httpapi is Vigil's HTTP API: routes, handlers and the mapping
// between the wire form and the domain. Handlers hold audit interfaces and
// never know which backend sits behind them.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigilhq/vigil/internal/access"
	"github.com/vigilhq/vigil/internal/alert"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
	"github.com/vigilhq/vigil/internal/importer"
	"github.com/vigilhq/vigil/internal/ingest"
)

// Scorer computes the risk of a login without recording it.
type Scorer interface {
	ScoreContext(ctx context.Context, ev *audit.Event) audit.Risk
}

// CheckedScorer is a Scorer that can fail to score: the engine holding the
// tenant runs on another node of a cluster, which could not answer. The
// risk route answers its error rather than a score.
type CheckedScorer interface {
	ScoreChecked(ctx context.Context, ev *audit.Event) (audit.Risk, error)
}

// ReadyCheck is one named readiness probe; a nil error is ready.
type ReadyCheck struct {
	Name  string
	Check func(ctx context.Context) error
	// Info, when set, adds details (loaded databases, versions) to
	// GET /v1/status.
	Info func() any
}

// Options configures the API handler.
type Options struct {
	Ingest   *ingest.Service // required
	Events   audit.EventStore
	Stream   audit.EventStream
	Tenants  audit.TenantStore
	Keys     audit.KeyStore
	Findings audit.FindingStore
	// Incidents serves /v1/incidents; nil answers them unavailable.
	Incidents audit.IncidentStore
	Rules     audit.RuleStore
	// Query runs POST /v1/query and /v1/export; without it they answer 503.
	Query audit.QueryRunner
	// Viewers mints, lists and revokes viewer tokens; without it those
	// routes answer 503.
	Viewers *access.Viewers
	// Webhooks serves /v1/webhooks and /v1/deliveries; without it they
	// answer 503.
	Webhooks *alert.Service
	// Enricher and Scorer serve POST /v1/risk; without a Scorer it answers 503.
	Enricher audit.Enricher
	Scorer   Scorer
	// TuningChanged is called after a tenant's rule settings or allowlist
	// change, so detection can reload them.
	TuningChanged func(ctx context.Context, tenant string)
	// ValidateSetting checks a rule setting before it is stored.
	ValidateSetting ValidateSetting
	// RuleCatalog returns the rules detection runs, with their defaults,
	// for GET /v1/rules; without it the route answers 503.
	RuleCatalog RuleCatalog
	// Backtest runs POST /v1/rules/{rule}/backtest; without it the route
	// answers 503.
	Backtest Backtester
	// Suggest serves GET /v1/rules/suggestions: tuning changes drawn from
	// the tenant's benign findings, each backtested.
	Suggest func(ctx context.Context, tenant string) ([]audit.Suggestion, error)
	// Egresses lists a tenant's shared egresses as detection learned them
	// (every candidate when all is set) for GET /v1/egresses; without it
	// the route answers 503.
	Egresses func(tenant string, all bool) []audit.Egress
	// Actions stores response actions for /v1/actions; without it the
	// routes answer 503.
	Actions audit.ActionStore
	// Retention runs POST /v1/retention/run; without it the route answers 503.
	Retention RetentionRunner
	// Verify runs GET /v1/integrity, IntegrityKeys GET /v1/integrity/keys,
	// DayProof GET /v1/integrity/days/{day} and Erase POST /v1/erasures;
	// without them those routes answer 503.
	Verify        IntegrityVerifier
	IntegrityKeys func() []audit.PublicKey
	DayProof      func(ctx context.Context, tenant, day string) (*audit.DayProof, error)
	Erase         Eraser
	// Importers decode the vendor records of POST /v1/import/{format},
	// by format name; a format not here answers 404.
	Importers map[string]importer.Decoder
	// TenantRetentionDays bounds the retention_days a tenant admin key may
	// set for its own tenant ([min, max]); operators may set 1–36500. Zero
	// lets tenant keys change nothing.
	TenantRetentionDays [2]int

	Logger   *slog.Logger
	Registry *prometheus.Registry
	// Gatherer is what GET /metrics serves; Registry when nil.
	Gatherer prometheus.Gatherer
	Ready    []ReadyCheck
	Now      func() time.Time

	// MaxBodyBytes caps an ingest body; default 16 MiB.
	MaxBodyBytes int64
	// MaxInflightIngest caps concurrent ingest requests; beyond it the API
	// answers 429 with Retry-After. Default 512.
	MaxInflightIngest int
	// MaxInflightIngestBytes caps the body bytes of all in-flight ingest
	// requests together; beyond it the API answers 429 with Retry-After.
	// Default 128 MiB; never less than one largest request needs
	// (MaxBodyBytes plus 512 bytes for each of 10,000 events).
	MaxInflightIngestBytes int64
	// MaxBacklog is the unprocessed-event backlog beyond which ingestion
	// answers 429; default 2,000,000.
	MaxBacklog uint64
	// KeyCacheTTL is how long an authenticated key is trusted without a
	// store lookup, and so the longest a revoked key keeps working; default 5s.
	KeyCacheTTL time.Duration
	// Limits enforces rates, backlog shares and read concurrency; nil
	// enforces none of them. Give the same Limiter to ingest.Options.Admission.
	Limits *Limiter
	// ExportWriteTimeout is the longest one write of an export may block
	// (a client that stops reading is dropped after it); it replaces the
	// server's write timeout for exports. Default 1m.
	ExportWriteTimeout time.Duration
	// MaxExportDuration ends an export after this long (the answer then
	// lacks its X-Vigil-Rows trailer); 0 is no limit.
	MaxExportDuration time.Duration
	// ReadyInterval is how often the Ready checks run; /readyz answers from
	// the last result. Default 2s.
	ReadyInterval time.Duration
	// ReadyTimeout bounds one run of a Ready check; one that takes longer
	// counts as failed. Default 5s.
	ReadyTimeout time.Duration
	// ReadyPublic, when set, adds its fields to the /readyz answer, which
	// needs no key: only figures that are safe to show anyone (the
	// pipeline's lag, the node's role), and it must do no I/O.
	ReadyPublic func() map[string]any
	// CursorSecret keys the seal on page cursors (next_cursor), so a cursor
	// works only unaltered, on the listing and tenant that gave it. Give
	// every node of one store the same secret; without one a random secret
	// is made and cursors last as long as the process.
	CursorSecret []byte
}

// API is the HTTP API.
type API struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	auth     *authenticator
	limits   *Limiter
	ready    *readiness
	inflight chan struct{}
	// bodyBytes bounds the ingest body bytes held by in-flight requests.
	bodyBytes *httpx.ByteBudget
	requests  *prometheus.HistogramVec
	overload  prometheus.Counter
	// readAudits counts read-audit records by result (recorded, failed,
	// operator_logged).
	readAudits *prometheus.CounterVec
	cursors    *httpx.Cursors
	handler    http.Handler
}

// New returns the API with its routes and middleware.
func New(opts Options) (*API, error) {
	if opts.Ingest == nil || opts.Events == nil || opts.Tenants == nil || opts.Keys == nil {
		return nil, errors.New("httpapi: Ingest, Events, Tenants and Keys are required")
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 16 << 20
	}
	if opts.MaxInflightIngest <= 0 {
		opts.MaxInflightIngest = 512
	}
	if opts.MaxInflightIngestBytes <= 0 {
		opts.MaxInflightIngestBytes = 128 << 20
	}
	if opts.MaxBacklog == 0 {
		opts.MaxBacklog = 2_000_000
	}
	if opts.KeyCacheTTL <= 0 {
		opts.KeyCacheTTL = 5 * time.Second
	}
	if opts.ReadyInterval <= 0 {
		opts.ReadyInterval = 2 * time.Second
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 5 * time.Second
	}
	if opts.ExportWriteTimeout <= 0 {
		opts.ExportWriteTimeout = time.Minute
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	a := &API{opts: opts, log: opts.Logger, now: opts.Now, limits: opts.Limits, inflight: make(chan struct{}, opts.MaxInflightIngest),
		// One request of the largest size must always fit: its body with a
		// byte to spare and its events' decoded forms (see readEvents).
		bodyBytes: httpx.NewByteBudget(max(opts.MaxInflightIngestBytes, opts.MaxBodyBytes+1+ingest.MaxBatch*decodedEventBytes))}
	if a.limits == nil {
		var err error
		if a.limits, err = NewLimiter(LimiterOptions{Registerer: opts.Registry}); err != nil {
			return nil, err
		}
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.cursors = httpx.NewCursors(opts.CursorSecret)
	a.auth = newAuthenticator(opts.Keys, opts.KeyCacheTTL, a.now, a.log)
	a.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "vigil_http_request_seconds", Help: "HTTP requests by method, route and status.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"method", "route", "status"})
	a.overload = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_ingest_overload_total", Help: "Ingest requests answered 429 because the server was at capacity."})
	a.readAudits = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_read_audit_total",
		Help: "Reads of the log (searches, queries, exports) and what became of their vigil.search/vigil.export record."}, []string{"result"})
	inflightBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_ingest_inflight_bytes",
		Help: "Request-body bytes held by in-flight ingest requests (bounded by server.max_inflight_ingest_bytes)."},
		func() float64 { return float64(a.bodyBytes.InUse()) })
	for _, c := range []prometheus.Collector{a.requests, a.overload, a.readAudits, inflightBytes} {
		if err := opts.Registry.Register(c); err != nil {
			return nil, err
		}
	}
	a.ready = newReadiness(opts.Ready, opts.ReadyInterval, opts.ReadyTimeout, a.now)
	a.handler = a.routes()
	return a, nil
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

func (a *API) observe(method, route string, status int, d time.Duration) {
	a.requests.WithLabelValues(method, route, strconv.Itoa(status)).Observe(d.Seconds())
}

// handle adapts a handler that needs no authentication.
func (a *API) handle(h httpx.HandlerFunc) http.Handler { return httpx.Adapt(a.log, h) }

// authed adapts a handler that needs a key holding scope.
func (a *API) authed(scope audit.Scope, h func(w http.ResponseWriter, r *http.Request, p audit.Principal) error) http.Handler {
	return httpx.Adapt(a.log, func(w http.ResponseWriter, r *http.Request) error {
		p, err := a.auth.authenticate(r)
		if err != nil {
			return err
		}
		if !p.Has(scope) {
			return audit.Errorf(audit.EFORBIDDEN, "this key lacks the %s scope", scope)
		}
		return h(w, r, p)
	})
}

func (a *API) metricsHandler() http.Handler {
	if a.opts.Gatherer != nil {
		return promhttp.HandlerFor(a.opts.Gatherer, promhttp.HandlerOpts{})
	}
	return promhttp.HandlerFor(a.opts.Registry, promhttp.HandlerOpts{})
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) error {
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}
