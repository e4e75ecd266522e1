// Package app is Vigil's composition root: it turns a config.Config into
// running adapters and services and wires them together. It is the only
// package that knows which adapters exist.
//
// The system, as Run starts it:
//
//	HTTP API ──▶ ingest (validate, dedupe) ──▶ EventStream (durable, group commit) ──▶ 202
//	                                                │
//	                        pipeline: enrich ──▶ detect ──▶ EventStore + FindingStore
//	                                                               │ (changes, same transaction)
//	                                        webhook worker ◀───────┘ outbox ──▶ receivers
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/vigilhq/vigil/internal/alert"
	"github.com/vigilhq/vigil/internal/archive"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/fsutil"
	"github.com/vigilhq/vigil/internal/httpapi"
	"github.com/vigilhq/vigil/internal/ingest"
	"github.com/vigilhq/vigil/internal/integrity"
	"github.com/vigilhq/vigil/internal/pipeline"
	"github.com/vigilhq/vigil/internal/postgres"
	"github.com/vigilhq/vigil/internal/retention"
	"github.com/vigilhq/vigil/internal/siem"
)

// Options are the process-level dependencies of an App.
type Options struct {
	// Stderr receives logs and the one-time operator key; io.Discard when nil.
	Stderr io.Writer
	// Logger overrides the logger built from cfg.Log.
	Logger *slog.Logger
	// Now is the wall clock; time.Now when nil.
	Now func() time.Time
	// NoBootstrapKey skips creating and printing the first operator key.
	NoBootstrapKey bool
}

// App is a running Vigil node.
type App struct {
	cfg      config.Config
	log      *slog.Logger
	now      func() time.Time
	stores   *Stores
	registry *prometheus.Registry
	ln       net.Listener
	srv      *http.Server
	// handler is the server's handler: the standby answers of an
	// active/standby node until it becomes active, then the API.
	handler *switchHandler
	// serveErr, when set, receives the result of a Serve started early
	// (an active/standby node serves while it waits).
	serveErr chan error
	// debugAddr is where the runtime profiles are served (server.debug_addr).
	debugAddr string
	pipe      *pipeline.Pipeline
	api       *httpapi.API
	console   http.Handler
	// retention deletes each tenant's expired data; nil when the store
	// cannot.
	retention *retention.Job
	alerts    *alert.Service // nil when alerts are off
	ingest    *ingest.Service
	siem      *siem.Service // SIEM sinks and change-log pruning; nil when the store has no change log
	// integrity chains stored events and signs their heads.
	integrity *integrity.Recorder
	closers   []func() error
	// knownTenants caches tenants found to exist (see tenantExists).
	knownTenants sync.Map
	// BootstrapKey is the operator key created on first start, "" otherwise.
	BootstrapKey string
	// lag is the pipeline's backlog as the last readiness run found it.
	lag pipelineLag
	// units runs this node's share of partitioned detection (units.go);
	// nil when detection is not partitioned, and then pipe runs it all.
	// enricher and enrichReady are built early for it.
	units       *unitManager
	enricher    audit.Enricher
	enrichReady []httpapi.ReadyCheck
	// catalog knows the rules of partitioned detection (the catalog and
	// setting checks of the API); it evaluates nothing.
	catalog *detect.Engine
}

// gatherer is what /metrics serves: the node's registry, and the metrics
// of the detection units it runs.
func (a *App) gatherer() prometheus.Gatherer {
	if a.units == nil {
		return a.registry
	}
	return prometheus.Gatherers{a.registry, a.units}
}

// startUnits starts this node's share of partitioned detection.
func (a *App) startUnits(ctx context.Context) error {
	n := a.stores.node
	var err error
	if a.cfg.Detect.Enabled {
		// The engine the API asks for the rule catalog and setting checks
		// (it runs no events). Built in a partitioned scope, it refuses a
		// rule set the units' engines would refuse (an installation-wide
		// rule that needs what partitioned detection cannot give it): the
		// node stops now, naming the rule, rather than every unit failing
		// to start later. Both scopes refuse the same rules.
		if a.catalog, err = newEngine(a.cfg.Detect, detect.Options{Scope: detect.ScopeTenants, MaxKeys: a.cfg.Detect.MaxKeys}); err != nil {
			return fmt.Errorf("detect.partitioned: %w", err)
		}
	}
	if a.enricher, a.enrichReady, err = a.buildEnrichment(a.cfg.Enrich); err != nil {
		return err
	}
	signer, keys, err := LoadIntegrityKeys(filepath.Join(a.cfg.Storage.SQLite.Dir, IntegrityDir))
	if err != nil {
		return err
	}
	locks, err := postgres.OpenUnitLocks(ctx, n.url, n.schema, n.name)
	if err != nil {
		return fmt.Errorf("open the detection unit locks: %w", err)
	}
	deps := &unitDeps{app: a, enricher: a.enricher, signer: signer, keys: keys}
	m := &unitManager{n: n, locks: locks, units: detectionUnits(n.stream.Partitions()),
		build: deps.newUnitWorker, log: a.log.With("component", "units"), every: time.Second, workers: map[string]*unitWorker{}}
	m.rpc = &unitRPC{m: m, app: a, client: &http.Client{Timeout: 30 * time.Second}, log: m.log}
	a.units, n.units = m, m
	// Calls between nodes for the units are answered whatever the node's
	// role: the server is not serving yet.
	a.srv.Handler = unitRoute{rpc: m.rpc, next: a.handler}
	mctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); m.run(mctx) }()
	a.closers = append(a.closers, func() error { stop(); <-done; return nil })
	return nil
}

// unitRoute sends the calls between nodes for detection units to rpc and
// everything else to next.
type unitRoute struct {
	rpc  *unitRPC
	next http.Handler
}

func (u unitRoute) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, unitRPCPrefix) {
		u.rpc.ServeHTTP(w, r)
		return
	}
	u.next.ServeHTTP(w, r)
}

// New opens the stores, builds every component and binds the listener; Run
// starts serving.
func New(ctx context.Context, cfg config.Config, opts Options) (a *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	stderr := opts.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	a = &App{cfg: cfg, now: opts.Now, registry: prometheus.NewRegistry()}
	built := a // a itself is nil once a failing return has run
	if a.now == nil {
		a.now = time.Now
	}
	a.log = opts.Logger
	if a.log == nil {
		a.log = NewLogger(stderr, cfg.Log)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, built.close())
			a = nil
		}
	}()
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if a.stores, err = OpenStores(ctx, cfg, a.log, a.now); err != nil {
		return nil, err
	}
	a.lag.events = -1
	a.closers = append(a.closers, a.stores.Close)
	a.handler = &switchHandler{}
	a.srv = &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		WriteTimeout:      cfg.Server.WriteTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	if n := a.stores.node; n != nil {
		// Active/standby: listen now and answer as a standby until this
		// node holds the schema's node lock.
		if a.ln, err = net.Listen("tcp", cfg.Server.Addr); err != nil {
			return nil, fmt.Errorf("listen on %s: %w", cfg.Server.Addr, err)
		}
		n.addr = a.ln.Addr().String()
		n.name = nodeName(cfg.Server.NodeName, n.addr)
		n.advertise = advertiseURL(cfg.Server.AdvertiseURL, n.addr)
		n.writeTimeout, n.headerTimeout = cfg.Limits.ExportWriteTimeout, cfg.Server.WriteTimeout
		n.register(a.registry)
		if partitioned(cfg) {
			// Detection is partitioned: this node runs its share of the
			// detection units from now on, standby or active.
			if err := a.startUnits(ctx); err != nil {
				return nil, err
			}
		}
		a.handler.set(n.standbyHandler(a.gatherer()))
		srv, ln, served := a.srv, a.ln, make(chan error, 1)
		a.serveErr = served
		go func() { served <- srv.Serve(ln) }()
		a.closers = append(a.closers, func() error { _ = srv.Close(); return nil })
		// Heartbeats from now until the node closes: as a standby, while
		// it restores detection, and while it is active.
		hbCtx, stopHB := context.WithCancel(context.WithoutCancel(ctx))
		hbDone := make(chan struct{})
		go func() { defer close(hbDone); n.heartbeats(hbCtx, n.backlog) }()
		a.closers = append(a.closers, func() error { stopHB(); <-hbDone; return nil })
		if err := a.awaitActive(ctx); err != nil {
			return nil, err
		}
	}
	if !opts.NoBootstrapKey {
		if a.BootstrapKey, err = bootstrapOperatorKey(ctx, a.stores.Keys, a.now); err != nil {
			return nil, err
		}
		if a.BootstrapKey != "" {
			if err := a.handOverBootstrapKey(ctx, stderr); err != nil {
				return nil, err
			}
		}
	}

	enricher, enrichReady := a.enricher, a.enrichReady
	if a.units == nil {
		if enricher, enrichReady, err = a.buildEnrichment(cfg.Enrich); err != nil {
			return nil, err
		}
	}
	var det *detection
	switch {
	case a.units != nil && cfg.Detect.Enabled:
		// The API reaches the engines of the units, wherever they run.
		det = a.units.rpc.detection(a.catalog)
	case a.units == nil:
		if det, err = a.buildDetection(ctx, cfg.Detect); err != nil {
			return nil, err
		}
	}

	limits, err := a.buildLimiter(cfg)
	if err != nil {
		return nil, err
	}
	svc, err := ingest.New(ingest.Options{
		Stream: a.stores.Stream, TenantExists: a.tenantExists, Now: a.now,
		Logger: a.log.With("component", "ingest"), Registerer: a.registry, Admission: limits,
		MaxEventAge:    cfg.Ingest.MaxEventAge,
		TenantEventAge: (&eventAges{tenants: a.stores.Tenants, ttl: cfg.Ingest.KeyCacheTTL, now: time.Now}).of,
	})
	if err != nil {
		return nil, err
	}
	if err := a.buildIntegrity(ctx); err != nil {
		return nil, err
	}
	if a.units == nil {
		popts := pipeline.Options{
			Stream: a.stores.Stream, Events: a.integrity, Findings: a.stores.Findings, Incidents: a.stores.Incidents,
			Enricher: enricher, Logger: a.log.With("component", "pipeline"), Registerer: a.registry, Now: a.now,
			Linger: cfg.Ingest.BatchLinger,
		}
		if det != nil {
			popts.Detector = det.detector
		}
		if a.pipe, err = pipeline.New(popts); err != nil {
			return nil, err
		}
		a.lag.measure = a.pipe.Backlog
	} else {
		// The units' pipelines, on every node, share the stream: its
		// backlog is what they have not committed.
		a.lag.measure = func(ctx context.Context) (int64, error) { return a.stores.node.backlog(ctx), nil }
	}
	a.ingest = svc
	if a.retention, err = a.buildRetention(svc); err != nil {
		return nil, err
	}
	apiOpts := httpapi.Options{
		Ingest: svc, Events: a.stores.Events, Stream: a.stores.Stream, Tenants: a.stores.Tenants,
		Keys: a.stores.Keys, Findings: a.stores.Findings, Incidents: a.stores.Incidents, Rules: a.stores.Rules, Enricher: enricher, Query: a.stores.Query,
		Logger: a.log.With("component", "http"), Registry: a.registry, Gatherer: a.gatherer(), Now: a.now,
		MaxBodyBytes: int64(cfg.Server.MaxBodySize), MaxInflightIngest: cfg.Server.MaxInflightIngest,
		MaxBacklog: uint64(cfg.Ingest.MaxBacklog), KeyCacheTTL: cfg.Ingest.KeyCacheTTL,
		Limits: limits, ExportWriteTimeout: cfg.Limits.ExportWriteTimeout, MaxExportDuration: cfg.Limits.MaxExportDuration,
		MaxInflightIngestBytes: int64(cfg.Server.MaxInflightIngestBytes),
		Ready:                  append([]httpapi.ReadyCheck{{Name: "storage", Check: a.stores.Ready}, a.lag.check()}, enrichReady...),
		ReadyPublic:            a.readyPublic,
		ReadyInterval:          cfg.Server.ReadyInterval,
		TenantRetentionDays:    [2]int{cfg.Retention.TenantMinDays, cfg.Retention.TenantMaxDays},
		Importers:              Importers(),
	}
	if a.retention != nil {
		apiOpts.Retention = a.retention.RunOnce
	}
	a.integrityAPI(&apiOpts, svc, det)
	if a.alerts, err = a.buildAlerts(cfg.Alerts, cfg.Console.PublicURL); err != nil {
		return nil, err
	}
	if a.alerts != nil {
		apiOpts.Webhooks = a.alerts
		apiOpts.Actions = a.stores.Actions
		a.closers = append(a.closers, a.alerts.Close)
	}
	if a.siem, err = a.buildSIEM(ctx, cfg.SIEM, a.alerts != nil); err != nil {
		return nil, err
	}
	if a.siem != nil {
		a.closers = append(a.closers, a.siem.Close)
	}
	viewers, secret, err := a.buildAccess(ctx)
	if err != nil {
		return nil, err
	}
	// Page cursors are sealed with a key derived from the server secret, so
	// every node of one store accepts them and they survive restarts.
	apiOpts.CursorSecret = secret
	apiOpts.Viewers = viewers
	if det != nil {
		apiOpts.Scorer = det.scorer
		apiOpts.Egresses = det.egresses
		apiOpts.TuningChanged = det.tuningChanged
		apiOpts.ValidateSetting = det.validateSetting
		apiOpts.RuleCatalog = ruleCatalog(det.rules)
		bt, err := a.buildBacktester(cfg.Detect)
		if err != nil {
			return nil, err
		}
		apiOpts.Backtest = bt.Run
		apiOpts.Suggest = func(ctx context.Context, tenant string) ([]audit.Suggestion, error) {
			return bt.Suggest(ctx, a.stores.Findings, tenant)
		}
	}
	a.api, err = httpapi.New(apiOpts)
	if err != nil {
		return nil, err
	}
	handler, err := a.buildConsole(cfg.Console, det, viewers, secret)
	if err != nil {
		return nil, err
	}
	if a.stores.node != nil {
		if err := a.checkSharedKeys(ctx); err != nil {
			return nil, err
		}
	}
	a.handler.set(handler)
	if a.ln == nil {
		if a.ln, err = net.Listen("tcp", cfg.Server.Addr); err != nil {
			return nil, fmt.Errorf("listen on %s: %w", cfg.Server.Addr, err)
		}
	}
	if cfg.Server.DebugAddr != "" {
		if err := a.serveDebug(cfg.Server.DebugAddr); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Addr is the address the server listens on (useful with port 0).
func (a *App) Addr() string { return a.ln.Addr().String() }

// Stores exposes the opened stores (tests and the demo use them).
func (a *App) Stores() *Stores { return a.stores }

// Drain runs the pipeline over everything appended so far. Only for use
// when Run is not running (tests, tools).
func (a *App) Drain(ctx context.Context) error {
	if a.pipe == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "detection is partitioned over the cluster's nodes: there is no one pipeline to drain")
	}
	return a.pipe.Drain(ctx)
}

// FlushDetection makes the running pipeline evaluate every event the
// detector holds for event-time order and waits until their findings are
// stored (the demo, at the end of its simulated traffic).
//
// With partitioned detection it flushes the units this node runs.
func (a *App) FlushDetection(ctx context.Context) error {
	if a.pipe == nil {
		return a.units.Flush(ctx)
	}
	return a.pipe.Flush(ctx)
}

// Run serves until ctx is cancelled, then shuts down gracefully: in-flight
// requests finish (their events are already durable when they are
// answered), the pipeline checkpoints, and the stores close.
func (a *App) Run(ctx context.Context) error {
	a.log.LogAttrs(ctx, slog.LevelInfo, "vigil listening", slog.String("addr", a.Addr()),
		slog.String("data_dir", a.cfg.Storage.SQLite.Dir))
	pipeCtx, stopPipe := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPipe()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if a.serveErr != nil {
			err = <-a.serveErr
		} else {
			err = a.srv.Serve(a.ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	})
	if n := a.stores.node; n != nil {
		g.Go(func() error { return n.watchLock(gctx, a.cfg.Server.ReadyInterval) })
	}
	g.Go(func() error {
		a.api.RunReadiness(gctx)
		return nil
	})
	if a.retention != nil {
		g.Go(func() error {
			a.retention.Run(gctx)
			return nil
		})
	}
	g.Go(func() error {
		a.integrity.Run(gctx, a.cfg.Integrity.CheckpointInterval)
		return nil
	})
	if a.pipe != nil {
		g.Go(func() error {
			err := a.pipe.Run(pipeCtx)
			if err != nil {
				return fmt.Errorf("pipeline: %w", err)
			}
			return nil
		})
	}
	if a.alerts != nil {
		g.Go(func() error {
			a.alerts.Run(gctx)
			return nil
		})
	}
	if a.siem != nil {
		g.Go(func() error {
			a.siem.Run(gctx)
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		a.log.LogAttrs(ctx, slog.LevelInfo, "shutting down")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.Server.ShutdownTimeout)
		defer cancel()
		err := a.srv.Shutdown(sctx)
		stopPipe()
		if err != nil {
			return fmt.Errorf("shut down http: %w", err)
		}
		return nil
	})
	err := g.Wait()
	// The pipeline has stored its last batch: sign what it chained.
	if _, cerr := a.integrity.Checkpoint(context.WithoutCancel(ctx)); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return errors.Join(err, a.close())
}

func (a *App) close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	a.closers = nil
	if a.ln != nil {
		_ = a.ln.Close()
	}
	return errors.Join(errs...)
}

// tenantExists answers the ingest service's tenant check. Tenants are
// never deleted, so a tenant once found is remembered and the hot path of
// operator-key ingestion does not read the store per request; an unknown
// tenant is looked up again each time, so one created meanwhile is found.
func (a *App) tenantExists(ctx context.Context, tenant string) (bool, error) {
	if _, ok := a.knownTenants.Load(tenant); ok {
		return true, nil
	}
	_, err := a.stores.Tenants.GetTenant(ctx, tenant)
	switch audit.ErrorCode(err) {
	case "":
		a.knownTenants.Store(tenant, struct{}{})
		return true, nil
	case audit.ENOTFOUND:
		return false, nil
	}
	return false, err
}

// bootstrapOperatorKey creates an operator key on first start — when the
// store holds no operator key at all — and returns its secret ("" when
// one exists). When every operator key is revoked none is created: an
// operator who revoked them meant it, and a fresh admin key appearing at
// the next restart would undo that; `vigil keys create --operator` mints
// one deliberately.
func bootstrapOperatorKey(ctx context.Context, ks audit.KeyStore, now func() time.Time) (string, error) {
	keys, err := ks.ListKeys(ctx, "")
	if err != nil {
		return "", fmt.Errorf("list operator keys: %w", err)
	}
	if len(keys) > 0 {
		return "", nil
	}
	_, full, err := audit.MintKey(ctx, ks, "", "bootstrap operator key", []audit.Scope{audit.ScopeAdmin}, now().UTC())
	if err != nil {
		return "", err
	}
	return full, nil
}

// BootstrapKeyFile is the file in the data directory that receives the
// first operator key (mode 0600).
const BootstrapKeyFile = "operator-key"

// handOverBootstrapKey gives the first operator key to the person starting
// the server, never through the log stream: it is written to a 0600 file
// in the data directory, whose path (not the key) is logged, and printed
// on stderr only when stderr is a terminal.
func (a *App) handOverBootstrapKey(ctx context.Context, stderr io.Writer) error {
	path := filepath.Join(a.cfg.Storage.SQLite.Dir, BootstrapKeyFile)
	if err := fsutil.Replace(path, []byte(a.BootstrapKey+"\n"), 0o600); err != nil {
		return fmt.Errorf("write the first operator key to %s: %w", path, err)
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "first start: an operator key was created and written to a file readable only by this user; move it somewhere safe and delete the file",
		slog.String("path", path))
	if isTerminal(stderr) {
		fmt.Fprintf(stderr, "\nNo operator key existed, so one was created (also in %s). Store it safely:\n\n    %s\n\n", path, a.BootstrapKey)
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// NewLogger builds the process logger: JSON, or text when format is text or
// auto and w is a terminal.
func NewLogger(w io.Writer, c config.Log) *slog.Logger {
	lv := new(slog.LevelVar)
	_ = lv.UnmarshalText([]byte(c.Level))
	hopts := &slog.HandlerOptions{Level: lv}
	text := c.Format == "text"
	if c.Format == "auto" {
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				text = true
			}
		}
	}
	if text {
		return slog.New(slog.NewTextHandler(w, hopts))
	}
	return slog.New(slog.NewJSONHandler(w, hopts))
}

// Routes lists the API's route patterns (for tests that must cover them all).
func (a *App) Routes() map[string]audit.Scope { return a.api.Routes() }

// prometheusRegisterer is the registry type components receive.
type prometheusRegisterer = prometheus.Registerer

// buildRetention builds the retention job over the stores' retention
// capabilities; its purge records go through the ingest service's own path.
func (a *App) buildRetention(svc *ingest.Service) (*retention.Job, error) {
	st := a.stores
	if st.Retention == nil {
		a.log.Warn("this store cannot delete old data: retention_days is not enforced")
		return nil, nil
	}
	var archiveFn func(ctx context.Context, tenant string, before time.Time) (int64, error)
	if a.cfg.Retention.Archive.Enabled() {
		store, err := ArchiveStore(a.cfg.Retention.Archive)
		if err != nil {
			return nil, err
		}
		ar := &archive.Archiver{Store: store, Events: st.Events, Now: a.now}
		archiveFn = func(ctx context.Context, tenant string, before time.Time) (int64, error) {
			rep, err := ar.Archive(ctx, tenant, before)
			return rep.Events, err
		}
	}
	return retention.New(retention.Options{
		Archive: archiveFn,
		Tenants: st.Tenants, Events: a.integrity, Planner: st.RetentionPlanner, Findings: st.FindingRetention,
		Record: func(ctx context.Context, ev *audit.Event) error {
			return svc.RecordBatch(httpapi.ServerWrite(ctx), audit.Principal{}, []*audit.Event{ev})
		},
		Interval: a.cfg.Retention.Interval, Now: a.now,
		Logger: a.log.With("component", "retention"), Registerer: a.registry,
	})
}

// RunRetention applies retention now (tenant "" for every tenant), or with
// dryRun reports what it would delete.
func (a *App) RunRetention(ctx context.Context, tenant string, dryRun bool) ([]audit.PurgeReport, error) {
	if a.retention == nil {
		return nil, audit.Errorf(audit.EUNAVAILABLE, "this store cannot delete old data")
	}
	return a.retention.RunOnce(ctx, tenant, dryRun)
}

// ArchiveStore opens the archive destination of the configuration.
func ArchiveStore(c config.Archive) (archive.Store, error) {
	if c.Dir != "" {
		return archive.Dir{Root: c.Dir}, nil
	}
	if c.S3.Bucket == "" {
		return nil, errors.New("retention.archive names no dir and no s3 bucket")
	}
	return archive.NewS3(archive.S3Options{Endpoint: c.S3.Endpoint, Bucket: c.S3.Bucket, Prefix: c.S3.Prefix, Region: c.S3.Region,
		AccessKey: c.S3.AccessKey, SecretKey: c.S3.SecretKey, Insecure: c.S3.Insecure})
}
