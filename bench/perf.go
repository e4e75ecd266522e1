package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/config"
)

// PerfOptions are the flags of the performance run.
type PerfOptions struct {
	Events         int
	PG             bool
	Out            string
	WorkDir        string
	BatchClients   int
	SingleClients  int
	SingleDuration time.Duration
	LiveDuration   time.Duration
	LiveRate       float64
	Queries        int
	Components     bool
	Keep           bool
	ImportRecords  int
	Retention      RetentionOptions
}

// Perf is everything one run measured.
type Perf struct {
	Opts    PerfOptions
	Command string
	Started time.Time
	Took    time.Duration
	Machine Machine
	LoadEnd string

	Single, Batched LoadResult
	// Server CPU (user+system) from each phase's start until its events
	// were stored, with the phase's wall time: on a shared machine, CPU
	// per event is the steadier figure.
	SingleCPU, BatchCPU, SingleWall, BatchWall time.Duration
	SingleDrain                                DrainResult
	// Durable-append time per request (vigil_ingest_commit_seconds) per phase.
	SingleCommit, BatchCommit []Bucket
	BatchDrain                DrainResult
	BulkDetect                []Bucket // finding latency during the bulk load
	Live                      LoadResult
	LiveDetect                []Bucket
	LiveFindings              float64
	// The steady phase again, on the same store after a restart with
	// detect.allowed_lateness 1ms: the latency the pipeline adds beyond the
	// hold. UnheldErr says why it is missing.
	Unheld           LoadResult
	UnheldDetect     []Bucket
	UnheldFindings   float64
	UnheldErr        error
	TotalEvents      float64 // stored by the pipeline
	Queries          []QueryRow
	AggNote          string
	PeakRSS          int64
	Mem              []MemSample // the server's memory after each phase
	DiskRunning      int64
	DiskClosed       int64
	DiskParts        map[string]int64
	SealedDays, Days int              // day partitions sealed (compressed) at the end, and in all
	SealsDue         int              // day partitions due for sealing after the bulk load
	SealWait         time.Duration    // from the bulk load stored until they were sealed
	FreeBytes        map[string]int64 // free SQLite pages per DiskParts key
	MemPerActor      float64
	MemCmd           string
	MemErr           error

	PGErr     error
	PGVersion string
	PGBuffers string
	PGLoad    LoadResult
	PGAnalyze time.Duration
	PGSize    int64

	Components []*Component
	Import     *ImportResult    // nil when -import-records=0
	Retention  *RetentionResult // nil when -retention-per-day=0

	liveGen *Gen
}

// QueryRow is one search on both systems.
type QueryRow struct {
	Name        string
	Vigil, PG   QueryResult
	VigilSkip   string
	PGSkip      string
	IsAggregate bool
}

func parsePerfFlags(args []string) (PerfOptions, string, error) {
	var o PerfOptions
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&o.Events, "events", 1_000_000, "events in the store for the query measurements (batched + single-event phases)")
	fs.BoolVar(&o.PG, "pg", true, "compare with PostgreSQL 15 on the same events (starts the local cluster if it is down)")
	fs.StringVar(&o.Out, "out", "docs/performance.md", "where to write the report, relative to the module root")
	fs.StringVar(&o.WorkDir, "workdir", os.TempDir(), "directory for the server's fresh data directory and the binary")
	fs.IntVar(&o.BatchClients, "batch-clients", 4, "concurrent clients sending NDJSON batches of 1,000")
	fs.IntVar(&o.SingleClients, "single-clients", 64, "concurrent clients sending one event per request")
	fs.DurationVar(&o.SingleDuration, "single-duration", 20*time.Second, "duration of the single-event phase (it also stops after a fifth of -events)")
	fs.DurationVar(&o.LiveDuration, "live-duration", 30*time.Second, "duration of the steady-rate phase that measures detection latency")
	fs.Float64Var(&o.LiveRate, "live-rate", 2000, "events per second in the steady-rate phase")
	fs.IntVar(&o.Queries, "queries", 300, "runs per search shape and system")
	fs.BoolVar(&o.Components, "components", true, "re-run the cheap package benchmarks of docs/perf/*.md")
	fs.BoolVar(&o.Keep, "keep", false, "keep the data directory afterwards")
	fs.IntVar(&o.ImportRecords, "import-records", 1_000_000, "records of the Okta System Log file imported with vigil import into a fresh server (0 skips the phase)")
	retentionFlags(fs, "retention-", &o.Retention)
	if err := fs.Parse(args); err != nil {
		return o, "", err
	}
	if o.Retention.PerDay > 0 {
		if err := o.Retention.validate(); err != nil {
			return o, "", err
		}
	}
	cmd := "go run ./bench"
	fs.Visit(func(f *flag.Flag) { cmd += fmt.Sprintf(" -%s=%s", f.Name, f.Value) })
	return o, cmd, nil
}

func runPerf(ctx context.Context, args []string) error {
	o, command, err := parsePerfFlags(args)
	if err != nil {
		return err
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	p := &Perf{Opts: o, Command: command, Started: time.Now()}
	logf := func(format string, a ...any) {
		fmt.Printf("[%6.1fs] %s\n", time.Since(p.Started).Seconds(), fmt.Sprintf(format, a...))
	}
	work, err := os.MkdirTemp(o.WorkDir, "vigil-bench-")
	if err != nil {
		return err
	}
	if !o.Keep {
		defer os.RemoveAll(work)
	}
	p.Machine = describeMachine(work)
	logf("machine: %s, %s, %s, %s; load %s", p.Machine.CPU, p.Machine.Cores, p.Machine.Memory, p.Machine.Kernel, p.Machine.Load)
	logf("building vigil (go build ./cmd/vigil)")
	bin, err := buildVigil(ctx, work)
	if err != nil {
		return err
	}
	if err := p.measureVigil(ctx, bin, filepath.Join(work, "data"), logf); err != nil {
		return err
	}
	if o.ImportRecords > 0 {
		r, err := measureImport(ctx, bin, filepath.Join(work, "import"), o.ImportRecords, logf)
		if err != nil {
			logf("import phase failed: %v", err)
			r.Err = err
		}
		p.Import = &r
	}
	if o.Retention.PerDay > 0 {
		r := measureRetention(ctx, bin, filepath.Join(work, "retention"), o.Retention, logf)
		p.Retention = &r
	}
	if o.PG {
		p.measurePG(ctx, logf)
	}
	logf("memory per tracked actor: go %s", strings.Join(actorMemory().Args, " "))
	mem := actorMemory()
	runComponent(ctx, root, mem, 5*time.Minute)
	p.MemCmd = mem.Command()
	if v, ok := mem.metric("heap-B/actor"); ok {
		p.MemPerActor = v
	} else {
		p.MemErr = errors.Join(mem.Err, errors.New("no heap-B/actor in the output"))
	}
	if o.Components {
		for _, c := range cheapComponents() {
			logf("component benchmark: %s", c.Command())
			timeout := c.Timeout
			if timeout == 0 {
				timeout = 5 * time.Minute
			}
			runComponent(ctx, root, c, timeout)
			p.Components = append(p.Components, c)
		}
	}
	p.LoadEnd = strings.Join(strings.Fields(readFile("/proc/loadavg"))[:3], " ")
	p.Took = time.Since(p.Started)
	out := o.Out
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	if err := os.WriteFile(out, []byte(relinkReport(p.Report(), root, out)), 0o644); err != nil {
		return err
	}
	logf("wrote %s in %s", out, p.Took.Round(time.Second))
	return nil
}

func (p *Perf) measureVigil(ctx context.Context, bin, dir string, logf func(string, ...any)) error {
	o := p.Opts
	srv, err := StartServer(bin, dir)
	if err != nil {
		return err
	}
	defer srv.Kill()
	if srv.Key == "" {
		return fmt.Errorf("no operator key in the data directory (operator-key); server stderr:\n%s", srv.Stderr())
	}
	logf("vigil serve listening on %s (pid %d, data %s)", srv.URL, srv.Pid(), dir)
	end := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	g := NewGen(o.Events, end.Add(-10*24*time.Hour), end)
	if err := srv.createTenants(ctx, g.Tenants); err != nil {
		return err
	}
	progress := func(what string, total int) func(int64) {
		last := time.Time{}
		return func(n int64) {
			if time.Since(last) >= 5*time.Second {
				logf("  %s: %d/%d events acknowledged", what, n, total)
				last = time.Now()
			}
		}
	}
	drainProgress := func(stored, lag float64) { logf("  pipeline: %.0f stored, lag %.0f", stored, lag) }

	m0, err := srv.scrape(ctx)
	if err != nil {
		return err
	}
	cpu0, _ := ProcCPU(srv.Pid())
	wall0 := time.Now()
	singleTo := o.Events / 5
	logf("single-event ingest: %d clients, one event per request, %s or %d events", o.SingleClients, o.SingleDuration, singleTo)
	p.Single = sendEvents(ctx, srv, g, LoadOptions{Clients: o.SingleClients, Batch: 1, From: 0, To: singleTo,
		Duration: o.SingleDuration, Progress: progress("single", singleTo)})
	logf("  %d events in %s: %.0f events/s; p50 %s p99 %s p99.9 %s; 429s %d, 503s %d, errors %d", p.Single.Events, p.Single.Elapsed.Round(time.Millisecond),
		p.Single.Rate(), p.Single.Pct(.5), p.Single.Pct(.99), p.Single.Pct(.999), p.Single.Status429, p.Single.Status503, p.Single.OtherErrors)
	t0 := time.Now()
	if p.SingleDrain, err = waitDrained(ctx, srv, float64(p.Single.Accepted), t0, 30*time.Minute, drainProgress); err != nil {
		return err
	}
	p.SingleCPU, p.SingleWall = cpuSince(srv, cpu0), time.Since(wall0)
	p.sampleMem(srv, "single-event ingest, stored")

	logf("batched ingest: %d clients, NDJSON batches of 1,000, events %d..%d", o.BatchClients, p.Single.To, o.Events)
	before, err := srv.scrape(ctx)
	if err != nil {
		return err
	}
	p.SingleCommit = subBuckets(before.Histogram("vigil_ingest_commit_seconds"), m0.Histogram("vigil_ingest_commit_seconds"))
	t0 = time.Now()
	cpu0, _ = ProcCPU(srv.Pid())
	p.Batched = sendEvents(ctx, srv, g, LoadOptions{Clients: o.BatchClients, Batch: 1000, From: p.Single.To, To: o.Events,
		Progress: progress("batched", o.Events-p.Single.To)})
	logf("  %d events in %s: %.0f events/s; p50 %s p99 %s; 429s %d, 503s %d, errors %d", p.Batched.Events, p.Batched.Elapsed.Round(time.Millisecond),
		p.Batched.Rate(), p.Batched.Pct(.5), p.Batched.Pct(.99), p.Batched.Status429, p.Batched.Status503, p.Batched.OtherErrors)
	want := before["vigil_pipeline_events_total"] + float64(p.Batched.Accepted)
	if p.BatchDrain, err = waitDrained(ctx, srv, want, t0, 60*time.Minute, drainProgress); err != nil {
		return err
	}
	p.BatchCPU, p.BatchWall = cpuSince(srv, cpu0), time.Since(t0)
	logf("  pipeline stored the batched phase in %s: %.0f events/s end to end (max lag %.0f)", p.BatchDrain.Elapsed.Round(time.Millisecond),
		float64(p.Batched.Accepted)/p.BatchDrain.Elapsed.Seconds(), p.BatchDrain.MaxLag)
	p.sampleMem(srv, "batched ingest (bulk load), stored")
	mid, err := srv.scrape(ctx)
	if err != nil {
		return err
	}
	p.BulkDetect = subBuckets(mid.Histogram("vigil_finding_latency_seconds"), before.Histogram("vigil_finding_latency_seconds"))
	p.BatchCommit = subBuckets(mid.Histogram("vigil_ingest_commit_seconds"), before.Histogram("vigil_ingest_commit_seconds"))
	logf("  findings so far: %.0f updates; finding latency during the bulk load p50 %s p99 %s", mid["vigil_pipeline_findings_total"],
		fmtSec(bucketQuantile(.5, p.BulkDetect)), fmtSec(bucketQuantile(.99, p.BulkDetect)))

	// The server seals (compresses) each day file once its day is over
	// storage.sqlite.seal_after and it has had a minute without new
	// events: after a bulk load of past days, one after another, a heavy
	// background job. The steady phase and the searches measure the
	// settled store a day-to-day server has, so they wait for it.
	sealStart := time.Now()
	p.SealsDue = sealsDue(dir, time.Now())
	for deadline := time.Now().Add(20 * time.Minute); ; {
		sealed, _ := sealedDays(dir)
		if sealed >= p.SealsDue {
			break
		}
		if time.Now().After(deadline) {
			logf("  %d of %d day files due for sealing are sealed after 20 minutes; measuring anyway", sealed, p.SealsDue)
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
	p.SealWait = time.Since(sealStart)
	logf("  %d day files due for sealing sealed %s after the bulk load was stored", p.SealsDue, p.SealWait.Round(time.Second))
	p.sampleMem(srv, "past days sealed")

	logf("steady rate with attacks: %.0f events/s for %s (detection latency)", o.LiveRate, o.LiveDuration)
	// The engine holds each tenant's newest events for the allowed lateness
	// (event-time order) and, once caught up, evaluates them when the wall
	// clock is that far past them: the last findings come that long after
	// the last event.
	hold := config.Default().Detect.AllowedLateness + 5*time.Second
	logf("  then waiting %s for the findings of events held for event-time order (detect.allowed_lateness)", hold)
	live, after, err := p.steadyPhase(ctx, srv, g, o.Events, mid, hold)
	if err != nil {
		return err
	}
	p.Live, p.LiveDetect, p.LiveFindings = live.Load, live.Detect, live.Findings
	p.TotalEvents = after["vigil_pipeline_events_total"]
	logf("  finding latency p50 %s p99 %s over %.0f finding updates", fmtSec(bucketQuantile(.5, p.LiveDetect)), fmtSec(bucketQuantile(.99, p.LiveDetect)), p.LiveFindings)
	p.sampleMem(srv, "steady rate with attacks, findings stored")

	logf("queries on vigil: %d runs per shape", o.Queries)
	for k, c := range queryCases(g) {
		r := runQueries(ctx, c, o.Queries, uint64(k), func(q QueryParams) (Answer, error) { return vigilSearch(ctx, srv, q) })
		p.Queries = append(p.Queries, QueryRow{Name: c.Name, Vigil: r})
		logf("  %s: p50 %s p99 %s (%v)", c.Name, pct(r.Lat, .5), pct(r.Lat, .99), r.Err)
	}
	agg := QueryRow{Name: aggCase(g).Name, IsAggregate: true}
	if hasQueryEndpoint(ctx, srv) {
		agg.Vigil = runQueries(ctx, aggCase(g), o.Queries/3, 99, func(q QueryParams) (Answer, error) { return vigilAgg(ctx, srv, q) })
		if agg.Vigil.Err != nil {
			agg.VigilSkip = "POST /v1/query failed: " + agg.Vigil.Err.Error()
		}
	} else {
		agg.VigilSkip = "the server has no POST /v1/query route in this build (internal/httpapi/routes.go)"
	}
	p.Queries = append(p.Queries, agg)

	if p.PeakRSS = p.sampleMem(srv, "searches and the aggregation").HWM; p.PeakRSS == 0 {
		logf("  peak RSS: VmHWM not read from /proc/%d/status", srv.Pid())
	}
	p.DiskRunning = dirSize(dir)
	logf("stopping vigil (SIGTERM); peak RSS %s, data dir %s while running", mib(p.PeakRSS), mib(p.DiskRunning))
	if err := srv.Stop(2 * time.Minute); err != nil {
		logf("  stop: %v", err)
	}
	p.DiskClosed = dirSize(dir)
	p.DiskParts = dataBreakdown(dir)
	p.SealedDays, p.Days = sealedDays(dir)
	p.FreeBytes = freePages(dir)
	p.liveGen = g
	if p.UnheldErr = p.measureUnheld(ctx, bin, dir, g, logf); p.UnheldErr != nil {
		logf("  steady phase without the hold: %v", p.UnheldErr)
	}
	return nil
}

// MemSample is the server's memory at the end of a phase (/proc/PID/status):
// VmRSS, split into RssAnon (heap, stacks, SQLite's page caches: what the
// process owns) and RssFile (the binary and the day partitions its readers
// map: the kernel's page cache, shared and reclaimable), and VmHWM, the
// peak VmRSS so far.
type MemSample struct {
	Phase                string
	RSS, Anon, File, HWM int64
}

// sampleMem records and returns the server's memory after phase, from one
// read of its status; a field the kernel does not report stays 0.
func (p *Perf) sampleMem(srv *Server, phase string) MemSample {
	m := MemSample{Phase: phase}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", srv.Pid()))
	if err == nil {
		m.RSS, _ = statusField(b, "VmRSS")
		m.Anon, _ = statusField(b, "RssAnon")
		m.File, _ = statusField(b, "RssFile")
		m.HWM, _ = statusField(b, "VmHWM")
	}
	p.Mem = append(p.Mem, m)
	return m
}

// measureUnheld restarts the server on the same store with
// detect.allowed_lateness 1ms and runs the steady phase again with new
// events: each event is evaluated as it arrives, so the finding latency is
// what the pipeline itself adds (read, enrich, detect, store), the part of
// the default configuration's latency beyond its hold.
func (p *Perf) measureUnheld(ctx context.Context, bin, dir string, g *Gen, logf func(string, ...any)) error {
	o := p.Opts
	srv, err := StartServer(bin, dir, "VIGIL_DETECT_ALLOWED_LATENESS=1ms")
	if err != nil {
		return err
	}
	defer srv.Kill()
	logf("steady rate again, detect.allowed_lateness 1ms (restarted on the same store, pid %d): %.0f events/s for %s", srv.Pid(), o.LiveRate, o.LiveDuration)
	before, err := srv.scrape(ctx)
	if err != nil {
		return err
	}
	// Nothing is held, but a finding is stored after its batch's events.
	unheld, _, err := p.steadyPhase(ctx, srv, g, p.Live.To, before, 2*time.Second)
	if err != nil {
		return err
	}
	p.Unheld, p.UnheldDetect, p.UnheldFindings = unheld.Load, unheld.Detect, unheld.Findings
	logf("  finding latency p50 %s p99 %s over %.0f finding updates", fmtSec(bucketQuantile(.5, p.UnheldDetect)), fmtSec(bucketQuantile(.99, p.UnheldDetect)), p.UnheldFindings)
	p.sampleMem(srv, "restarted, steady rate with a 1 ms lateness")
	if err := srv.Stop(2 * time.Minute); err != nil {
		logf("  stop: %v", err)
	}
	return nil
}

// steady is what a steady-rate phase measured.
type steady struct {
	Load     LoadResult
	Detect   []Bucket // finding latency of the phase's finding updates
	Findings float64  // finding updates
}

// steadyPhase offers the live events from index `from` on at the phase's
// rate, waits until they are stored and then `settle` for the findings
// they lead to, and measures the finding updates since `before`; it also
// returns the server's metrics at the end.
func (p *Perf) steadyPhase(ctx context.Context, srv *Server, g *Gen, from int, before Metrics, settle time.Duration) (steady, Metrics, error) {
	o := p.Opts
	n := int(o.LiveRate * o.LiveDuration.Seconds())
	g.Live = func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
	var st steady
	st.Load = sendEvents(ctx, srv, g, LoadOptions{Clients: 2, Batch: 100, From: from, To: from + n, Rate: o.LiveRate})
	want := before["vigil_pipeline_events_total"] + float64(st.Load.Accepted)
	if _, err := waitDrained(ctx, srv, want, time.Now(), 10*time.Minute, nil); err != nil {
		return st, nil, err
	}
	select {
	case <-ctx.Done():
		return st, nil, ctx.Err()
	case <-time.After(settle):
	}
	after, err := srv.scrape(ctx)
	if err != nil {
		return st, nil, err
	}
	st.Detect = subBuckets(after.Histogram("vigil_finding_latency_seconds"), before.Histogram("vigil_finding_latency_seconds"))
	st.Findings = after["vigil_pipeline_findings_total"] - before["vigil_pipeline_findings_total"]
	return st, after, nil
}

func (p *Perf) measurePG(ctx context.Context, logf func(string, ...any)) {
	pg, err := setupPG(ctx, logf)
	if err != nil {
		p.PGErr = err
		logf("PostgreSQL skipped: %v", err)
		return
	}
	defer func() {
		if err := pg.Close(); err != nil {
			logf("PostgreSQL cleanup: %v", err)
		}
	}()
	p.PGVersion, p.PGBuffers = pg.Version, pg.SharedBuffer
	g := p.liveGen
	// The live phase's wall-clock times cannot be replayed exactly; they
	// are stamped with the end of the run instead (same events otherwise).
	liveAt := time.Now().UTC().Truncate(time.Millisecond)
	g.Live = func() time.Time { return liveAt }
	total := p.Live.To
	logf("PostgreSQL %s: COPY %d events, %d clients, batches of 1,000 (one transaction each)", pg.Version, total, p.Opts.BatchClients)
	last := time.Time{}
	p.PGLoad, err = pg.Load(ctx, g, 0, total, 1000, p.Opts.BatchClients, func(n int64) {
		if time.Since(last) >= 5*time.Second {
			logf("  COPY: %d/%d", n, total)
			last = time.Now()
		}
	})
	if err != nil {
		p.PGErr = err
		return
	}
	logf("  %d rows in %s: %.0f rows/s", p.PGLoad.Events, p.PGLoad.Elapsed.Round(time.Millisecond), p.PGLoad.Rate())
	t0 := time.Now()
	if err := pg.Analyze(ctx); err != nil {
		p.PGErr = err
		return
	}
	p.PGAnalyze = time.Since(t0)
	p.PGSize, _ = pg.Size(ctx)
	search, done, err := pg.Searcher(ctx)
	if err != nil {
		p.PGErr = err
		return
	}
	defer done()
	cases := append(queryCases(g), aggCase(g))
	for k, c := range cases {
		n, seed := p.Opts.Queries, uint64(k)
		if k == len(cases)-1 {
			n, seed = p.Opts.Queries/3, 99
		}
		r := runQueries(ctx, c, n, seed, search)
		p.Queries[k].PG = r
		logf("  %s: p50 %s p99 %s (%v)", c.Name, pct(r.Lat, .5), pct(r.Lat, .99), r.Err)
	}
}

func cpuSince(s *Server, before time.Duration) time.Duration {
	now, err := ProcCPU(s.Pid())
	if err != nil {
		return 0
	}
	return now - before
}

func fmtSec(s float64) string {
	if math.IsNaN(s) {
		return "n/a"
	}
	return fmtDur(time.Duration(s * float64(time.Second)))
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "n/a"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// relinkReport rewrites the report's links, written relative to docs/,
// for a report written elsewhere (make bench-full writes docs/perf/).
func relinkReport(report, root, out string) string {
	dir, err := filepath.Rel(filepath.Join(root, "docs"), filepath.Dir(out))
	if err != nil || dir == "." {
		return report
	}
	if dir == "perf" {
		return strings.ReplaceAll(report, "](perf/", "](")
	}
	return report
}
