package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// RetentionOptions size the retention phase (issue 16): a purge of a long
// history while batched ingest runs, and a long run of moving event time
// whose data directory should stop growing once retention applies.
type RetentionOptions struct {
	// Days of history of tenant ret, PerDay events each, ingested over
	// the HTTP API in event time (the tenant's backfill allowance,
	// max_event_age_days, admits them).
	Days, PerDay int
	// KeepDays is the retention_days set on ret before the purge.
	KeepDays int
	// Clients send NDJSON batches of 1,000, as the batched phase does.
	Clients int
	// Baseline is how long the batched ingest runs alone first.
	Baseline time.Duration
	// RollDays simulated days of RollPerDay events each, with a retention
	// of RollKeep days, in a second fresh server.
	RollDays, RollPerDay, RollKeep int
}

// retentionFlags registers the phase's flags on fs, each name prefixed
// (the performance run uses "retention-", `bench retention` none).
func retentionFlags(fs *flag.FlagSet, prefix string, o *RetentionOptions) {
	fs.IntVar(&o.Days, prefix+"days", 400, "days of synthetic history of tenant ret")
	fs.IntVar(&o.PerDay, prefix+"per-day", 500, "history events per day (0 skips the retention phase)")
	fs.IntVar(&o.KeepDays, prefix+"keep", 30, "retention_days set on ret before the purge")
	fs.IntVar(&o.Clients, prefix+"clients", 4, "concurrent clients sending NDJSON batches of 1,000 during the baseline and the purge")
	fs.DurationVar(&o.Baseline, prefix+"baseline", 10*time.Second, "duration of the batched ingest measured alone before the purge")
	fs.IntVar(&o.RollDays, prefix+"roll-days", 60, "simulated days of the long run (0 skips it)")
	fs.IntVar(&o.RollPerDay, prefix+"roll-per-day", 2000, "events per simulated day of the long run")
	fs.IntVar(&o.RollKeep, prefix+"roll-keep", 2, "retention_days of the long run")
}

func (o RetentionOptions) validate() error {
	var errs []error
	if o.Days < 2 || o.PerDay < 1 {
		errs = append(errs, errors.New("-days must be at least 2 and -per-day positive"))
	}
	if o.KeepDays < 1 || o.KeepDays >= o.Days {
		errs = append(errs, errors.New("-keep must be between 1 and -days - 1 (else nothing is purged)"))
	}
	if o.Clients < 1 || o.Baseline <= 0 {
		errs = append(errs, errors.New("-clients and -baseline must be positive"))
	}
	if o.RollDays > 0 && (o.RollPerDay < 1 || o.RollKeep < 1 || o.RollKeep >= o.RollDays) {
		errs = append(errs, errors.New("-roll-per-day must be positive and -roll-keep between 1 and -roll-days - 1"))
	}
	return errors.Join(errs...)
}

// RetentionResult is what the retention phase measured.
type RetentionResult struct {
	Opts RetentionOptions
	// History is the ingest of ret's history; HistoryDrain until stored.
	History      LoadResult
	HistoryDrain DrainResult
	// Baseline is the batched ingest alone, During the same ingest while
	// retention ran, Window the part of During answered while the purge
	// request was outstanding, and After the part answered in the
	// Baseline-long stretch after it (a control adjacent in time: the
	// machine is shared, so its load may change between Baseline and
	// Window).
	Baseline, During LoadResult
	Window, After    LoadWindow
	// Purge is POST /v1/retention/run's round trip; Purged its report.
	Purge  time.Duration
	Purged purgeReport
	// WantPurged is how many of the generated history events are dated
	// before the cutoff the server reported.
	WantPurged int64
	// Partition files and data directory (bytes by part) before the purge
	// and as soon as it answered (the concurrent load's additions included).
	PartsBefore, PartsAfter int
	DirBefore, DirAfter     map[string]int64
	// Resident memory of the server just before and just after the purge,
	// and its peak over the whole phase.
	RSSBefore, RSSAfter, PeakRSS int64
	// LoadBaseline, LoadPurge and LoadAfter are the machine's 1-minute
	// load average as the baseline, the purge and the control ended.
	LoadBaseline, LoadPurge, LoadAfter string
	Err                                error

	// Roll is the long run, one sample after each simulated day's purge;
	// its simulated day 0 is RollStart.
	Roll      []RollSample
	RollStart time.Time
	RollErr   error
}

// LoadWindow is the part of a recorded load inside a time window.
type LoadWindow struct {
	Elapsed time.Duration
	// Events acknowledged by the requests answered inside the window.
	Events   int
	Requests int
	// Lat of every request that was outstanding at some point of the
	// window (a request stalled by the purge counts even if it was
	// answered after it).
	Lat []time.Duration
}

// Rate is events acknowledged per second inside the window.
func (w LoadWindow) Rate() float64 { return float64(w.Events) / max(w.Elapsed.Seconds(), 1e-9) }

// window cuts [from, to] out of a load recorded with LoadOptions.Record.
func window(r LoadResult, from, to time.Time) LoadWindow {
	w := LoadWindow{Elapsed: to.Sub(from)}
	for _, q := range r.Reqs {
		if !q.End.Before(from) && !q.End.After(to) {
			w.Events += q.Events
			w.Requests++
		}
		if !q.End.Before(from) && !q.End.Add(-q.Lat).After(to) {
			w.Lat = append(w.Lat, q.Lat)
		}
	}
	return w
}

// purgeReport is one tenant's report in POST /v1/retention/run's answer.
type purgeReport struct {
	Tenant        string    `json:"tenant"`
	RetentionDays int       `json:"retention_days"`
	Before        time.Time `json:"before"`
	Events        int64     `json:"events"`
	Findings      int64     `json:"findings"`
	Incidents     int64     `json:"incidents"`
	Error         string    `json:"error"`
}

// RollSample is the data directory after one simulated day's purge.
type RollSample struct {
	Day    int
	Before time.Time // the run's cutoff
	Purged int64     // events the day's run deleted
	Parts  int       // partition files
	Bytes  map[string]int64
}

// Total is the whole data directory.
func (s RollSample) Total() int64 {
	var n int64
	for _, v := range s.Bytes {
		n += v
	}
	return n
}

const (
	// keySim and keyToday split keyEvents in the long run: the partitions
	// of the simulated days, and today's (the purge records, dated by the
	// wall clock).
	keySim    = "events/ of the simulated days"
	keyToday  = "events/ of today (purge records)"
	keyEvents = "events/ (day partitions)"
	keyStream = "stream.db (ingest stream + idempotency keys)"
	keyMeta   = "meta.db (tenants, keys, findings, detection state)"
)

// measureRetention runs both parts of the phase, each on a fresh server
// under dir. A failure of the long run is kept in RollErr and does not
// discard the purge's figures.
func measureRetention(ctx context.Context, bin, dir string, o RetentionOptions, logf func(string, ...any)) RetentionResult {
	res := RetentionResult{Opts: o}
	res.Err = res.measurePurge(ctx, bin, filepath.Join(dir, "purge"), logf)
	if res.Err != nil {
		logf("retention: purge part failed: %v", res.Err)
	}
	if o.RollDays > 0 && ctx.Err() == nil {
		res.RollErr = res.measureRoll(ctx, bin, filepath.Join(dir, "roll"), logf)
		if res.RollErr != nil {
			logf("retention: long run failed: %v", res.RollErr)
		}
	}
	return res
}

// startRetentionServer starts a fresh server without the scheduled job,
// so that only the runs the phase asks for purge anything.
func startRetentionServer(bin, dir string) (*Server, error) {
	srv, err := StartServer(bin, dir, "VIGIL_RETENTION_INTERVAL=0")
	if err != nil {
		return nil, err
	}
	if srv.Key == "" {
		srv.Kill()
		return nil, fmt.Errorf("no operator key in the data directory; server stderr:\n%s", srv.Stderr())
	}
	return srv, nil
}

func (res *RetentionResult) measurePurge(ctx context.Context, bin, dir string, logf func(string, ...any)) error {
	o := res.Opts
	srv, err := startRetentionServer(bin, dir)
	if err != nil {
		return err
	}
	defer srv.Kill()
	// Day-aligned history: o.Days whole UTC days up to today's midnight,
	// so a run at the default retention (400 days) would delete none of it.
	today := time.Now().UTC().Truncate(24 * time.Hour)
	hist := NewGen(o.Days*o.PerDay, today.AddDate(0, 0, -o.Days), today)
	hist.Tenant = "ret"
	// The documented way to admit old events: the tenant's own allowance.
	if err := srv.createTenant(ctx, fmt.Sprintf(`{"id":"ret","name":"retention bench","max_event_age_days":%d}`, o.Days+1)); err != nil {
		return err
	}
	live := NewGen(0, today, today)
	live.Live = func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
	if err := srv.createTenants(ctx, live.Tenants); err != nil {
		return err
	}

	logf("retention: %d days × %d events of history for tenant ret (max_event_age_days %d), %d clients, NDJSON × 1,000", o.Days, o.PerDay, o.Days+1, o.Clients)
	m0, err := srv.scrape(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	res.History = sendEvents(ctx, srv, hist, LoadOptions{Clients: o.Clients, Batch: 1000, From: 0, To: hist.N})
	if err := loadFailed("history", res.History); err != nil {
		return err
	}
	if res.History.Accepted != int64(hist.N) {
		return fmt.Errorf("history: %d of %d events accepted", res.History.Accepted, hist.N)
	}
	want := m0["vigil_pipeline_events_total"] + float64(res.History.Accepted)
	if res.HistoryDrain, err = waitDrained(ctx, srv, want, t0, 30*time.Minute, nil); err != nil {
		return err
	}
	logf("  %d events acknowledged in %s (%.0f/s), stored after %s", res.History.Events, res.History.Elapsed.Round(time.Millisecond),
		res.History.Rate(), res.HistoryDrain.Elapsed.Round(time.Millisecond))

	logf("retention: baseline batched ingest, %d clients, live event time, %s", o.Clients, o.Baseline)
	res.Baseline = sendEvents(ctx, srv, live, LoadOptions{Clients: o.Clients, Batch: 1000, From: 0, To: math.MaxInt32, Duration: o.Baseline})
	if err := loadFailed("baseline", res.Baseline); err != nil {
		return err
	}
	res.LoadBaseline = loadAvg1()
	logf("  %.0f events/s, request p99 %s; load average %s", res.Baseline.Rate(), fmtDur(res.Baseline.Pct(.99)), res.LoadBaseline)
	if err := drain(ctx, srv); err != nil {
		return err
	}

	res.PartsBefore = countPartitions(dir)
	res.DirBefore = dataBreakdown(dir)
	res.RSSBefore, _ = ProcStatus(srv.Pid(), "VmRSS")
	logf("retention: %d partition files, %s; retention_days %d and POST /v1/retention/run while the same ingest runs", res.PartsBefore, mib(sumBytes(res.DirBefore)), o.KeepDays)
	stop := make(chan struct{})
	loaded := make(chan LoadResult, 1)
	go func() {
		loaded <- sendEvents(ctx, srv, live, LoadOptions{Clients: o.Clients, Batch: 1000, From: res.Baseline.To, To: math.MaxInt32, Stop: stop, Record: true})
	}()
	// The purge starts once the load is in full swing, and the load goes
	// on for as long as the baseline after it.
	const settle = 2 * time.Second
	var from, to, end time.Time
	purge := func() error {
		if err := sleepCtx(ctx, settle); err != nil {
			return err
		}
		if err := srv.patchTenant(ctx, "ret", fmt.Sprintf(`{"retention_days":%d}`, o.KeepDays)); err != nil {
			return err
		}
		from = time.Now()
		rep, err := srv.runRetention(ctx, "ret")
		to = time.Now()
		res.Purge, res.Purged = to.Sub(from), rep
		res.RSSAfter, _ = ProcStatus(srv.Pid(), "VmRSS")
		res.PartsAfter, res.DirAfter = countPartitions(dir), dataBreakdown(dir)
		res.LoadPurge = loadAvg1()
		if err != nil {
			return err
		}
		err = sleepCtx(ctx, o.Baseline)
		end = time.Now()
		res.LoadAfter = loadAvg1()
		return err
	}
	err = purge()
	close(stop)
	res.During = <-loaded
	if err != nil {
		return err
	}
	if err := loadFailed("ingest during the purge", res.During); err != nil {
		return err
	}
	res.Window, res.After = window(res.During, from, to), window(res.During, to, end)
	res.WantPurged = int64(countBefore(hist, res.Purged.Before))
	logf("  purge took %s: %d events (%d expected), %d findings, %d incidents; ingest %.0f events/s during it (%d requests), p99 %s",
		res.Purge.Round(time.Millisecond), res.Purged.Events, res.WantPurged, res.Purged.Findings, res.Purged.Incidents,
		res.Window.Rate(), res.Window.Requests, fmtDur(pct(res.Window.Lat, .99)))
	logf("  load average %s; right after the purge %.0f events/s, request p99 %s; load average %s", res.LoadPurge,
		res.After.Rate(), fmtDur(pct(res.After.Lat, .99)), res.LoadAfter)
	res.PeakRSS, _ = ProcStatus(srv.Pid(), "VmHWM")
	logf("  after the purge: %d partition files, %s; RSS %s before, %s after, peak %s", res.PartsAfter, mib(sumBytes(res.DirAfter)),
		mib(res.RSSBefore), mib(res.RSSAfter), mib(res.PeakRSS))
	// The concurrent load's backlog is not waited for: nothing else is
	// measured on this server.
	return nil
}

// measureRoll is the long run: simulated day k's events are dated on day
// k, and the retention run that follows it cuts at day k − RollKeep, as a
// server whose clock stood at day k would. The server's clock cannot be
// moved, so the run walks up to today from RollDays back and lowers
// retention_days by one each simulated day (the cutoff is midnight UTC of
// the wall clock minus retention_days), which moves the cutoff forward by
// the day that would have passed.
func (res *RetentionResult) measureRoll(ctx context.Context, bin, dir string, logf func(string, ...any)) error {
	o := res.Opts
	srv, err := startRetentionServer(bin, dir)
	if err != nil {
		return err
	}
	defer srv.Kill()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	day0 := today.AddDate(0, 0, -o.RollDays)
	res.RollStart = day0
	g := NewGen(o.RollDays*o.RollPerDay, day0, today)
	g.Tenant = "roll"
	if err := srv.createTenant(ctx, fmt.Sprintf(`{"id":"roll","name":"retention long run","retention_days":%d,"max_event_age_days":%d}`,
		o.RollDays+o.RollKeep, o.RollDays+1)); err != nil {
		return err
	}
	logf("retention long run: %d simulated days × %d events, retention %d days, a purge after each day", o.RollDays, o.RollPerDay, o.RollKeep)
	last := time.Now()
	for k := range o.RollDays {
		r := sendEvents(ctx, srv, g, LoadOptions{Clients: o.Clients, Batch: 1000, From: k * o.RollPerDay, To: (k + 1) * o.RollPerDay})
		if err := loadFailed(fmt.Sprintf("day %d", k), r); err != nil {
			return err
		}
		if int(r.Accepted) != o.RollPerDay {
			return fmt.Errorf("day %d: %d of %d events accepted", k, r.Accepted, o.RollPerDay)
		}
		if err := drain(ctx, srv); err != nil {
			return err
		}
		if err := srv.patchTenant(ctx, "roll", fmt.Sprintf(`{"retention_days":%d}`, o.RollDays-k+o.RollKeep)); err != nil {
			return err
		}
		rep, err := srv.runRetention(ctx, "roll")
		if err != nil {
			return fmt.Errorf("day %d: %w", k, err)
		}
		if want := day0.AddDate(0, 0, k-o.RollKeep); !rep.Before.Equal(want) && !rep.Before.Equal(want.AddDate(0, 0, 1)) {
			return fmt.Errorf("day %d: the run cut at %s, want %s (a midnight may have passed)", k, rep.Before, want)
		}
		s := RollSample{Day: k, Before: rep.Before, Purged: rep.Events, Parts: countPartitions(dir), Bytes: dataBreakdown(dir)}
		s.Bytes[keyToday] = dirSizeGlob(filepath.Join(dir, "events", time.Now().UTC().Format("20060102")+"*"))
		s.Bytes[keySim] = s.Bytes[keyEvents] - s.Bytes[keyToday]
		delete(s.Bytes, keyEvents)
		res.Roll = append(res.Roll, s)
		if time.Since(last) >= 5*time.Second || k == o.RollDays-1 {
			logf("  day %d: purged %d, %d partition files, data dir %s (simulated days' partitions %s, today's %s, stream.db %s, meta.db %s)", k, s.Purged, s.Parts,
				mib(s.Total()), mib(s.Bytes[keySim]), mib(s.Bytes[keyToday]), mib(s.Bytes[keyStream]), mib(s.Bytes[keyMeta]))
			last = time.Now()
		}
	}
	if err := srv.Stop(2 * time.Minute); err != nil {
		logf("  stop: %v", err)
	}
	return nil
}

// loadFailed turns a load with failed requests or nothing acknowledged
// into an error.
func loadFailed(what string, r LoadResult) error {
	if r.OtherErrors > 0 || r.Events == 0 {
		return fmt.Errorf("%s: %d events acknowledged, %d requests failed", what, r.Events, r.OtherErrors)
	}
	return nil
}

// drain waits until the pipeline has processed everything appended.
func drain(ctx context.Context, srv *Server) error {
	_, err := waitDrained(ctx, srv, 0, time.Now(), 30*time.Minute, nil)
	return err
}

// countBefore is how many of g's first g.N events are dated before t.
func countBefore(g *Gen, t time.Time) int {
	n := 0
	for i := range g.N {
		if g.timeOf(i).Before(t) {
			n++
		}
	}
	return n
}

// countPartitions counts the day partition files of a data directory.
func countPartitions(dir string) int {
	m, _ := filepath.Glob(filepath.Join(dir, "events", "*.db"))
	return len(m)
}

// loadAvg1 is the machine's 1-minute load average.
func loadAvg1() string {
	f := strings.Fields(readFile("/proc/loadavg"))
	if len(f) == 0 {
		return "n/a"
	}
	return f[0]
}

func sumBytes(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// createTenant sends POST /v1/tenants with body.
func (s *Server) createTenant(ctx context.Context, body string) error {
	r, err := s.do(ctx, "POST", "/v1/tenants", "application/json", []byte(body))
	if err != nil {
		return err
	}
	if r.Status != http.StatusCreated {
		return fmt.Errorf("POST /v1/tenants %s: %d %.300s", body, r.Status, r.Body)
	}
	return nil
}

// patchTenant sends PATCH /v1/tenants/{id} with body.
func (s *Server) patchTenant(ctx context.Context, id, body string) error {
	r, err := s.do(ctx, "PATCH", "/v1/tenants/"+id, "application/json", []byte(body))
	if err != nil {
		return err
	}
	if r.Status != http.StatusOK {
		return fmt.Errorf("PATCH /v1/tenants/%s %s: %d %.300s", id, body, r.Status, r.Body)
	}
	return nil
}

// runRetention applies retention to one tenant now, as `vigil retention
// run --tenant` does (POST /v1/retention/run), and returns its report.
func (s *Server) runRetention(ctx context.Context, tenant string) (purgeReport, error) {
	r, err := s.do(ctx, "POST", "/v1/retention/run", "application/json", []byte(`{"tenant":"`+tenant+`"}`))
	if err != nil {
		return purgeReport{}, err
	}
	if r.Status != http.StatusOK {
		return purgeReport{}, fmt.Errorf("POST /v1/retention/run: %d %.300s", r.Status, r.Body)
	}
	var out struct {
		Reports []purgeReport `json:"reports"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil {
		return purgeReport{}, fmt.Errorf("POST /v1/retention/run: %w", err)
	}
	if len(out.Reports) != 1 || out.Reports[0].Tenant != tenant {
		return purgeReport{}, fmt.Errorf("POST /v1/retention/run: %d reports, want one for %s: %.300s", len(out.Reports), tenant, r.Body)
	}
	rep := out.Reports[0]
	if rep.Error != "" {
		return rep, fmt.Errorf("retention of %s: %s", tenant, rep.Error)
	}
	return rep, nil
}

// runRetentionPhase is `go run ./bench retention`: the phase alone, printed.
func runRetentionPhase(ctx context.Context, args []string) error {
	var o RetentionOptions
	fs := flag.NewFlagSet("bench retention", flag.ContinueOnError)
	retentionFlags(fs, "", &o)
	workDir := fs.String("workdir", os.TempDir(), "directory for the servers' data directories and the binary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := o.validate(); err != nil {
		return err
	}
	start := time.Now()
	logf := func(format string, a ...any) {
		fmt.Printf("[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	work, err := os.MkdirTemp(*workDir, "vigil-bench-retention-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin, err := buildVigil(ctx, work)
	if err != nil {
		return err
	}
	r := measureRetention(ctx, bin, work, o, logf)
	fmt.Print(retentionReport(r, 0))
	logf("retention phase took %s", time.Since(start).Round(time.Second))
	return errors.Join(r.Err, r.RollErr)
}

// plateau compares a series' growth per simulated day before retention
// applied (its first keep+1 samples: the first purge follows day keep+1)
// with its growth per day over its last K samples.
type plateau struct {
	K             int
	Before, After float64 // bytes per simulated day
	Flat          bool    // After is at most a tenth of Before
}

func seriesPlateau(v []int64, keep int) plateau {
	n := len(v)
	k := min(max(3, n/6), n/2)
	if keep < 1 || k < 2 || n < keep+1+k {
		return plateau{}
	}
	p := plateau{K: k, Before: float64(v[keep]-v[0]) / float64(keep), After: float64(v[n-1]-v[n-k]) / float64(k-1)}
	p.Flat = p.Before > 0 && p.After*10 <= p.Before
	return p
}

func (p plateau) String() string {
	if p.K == 0 {
		return "too few samples"
	}
	return fmt.Sprintf("%s per simulated day before retention applied, %s per day over the last %d", signedMiB(p.Before), signedMiB(p.After), p.K)
}

// signedMiB writes a growth in MiB with its sign.
func signedMiB(n float64) string {
	v := n / (1 << 20)
	if math.Abs(v) < 0.005 {
		return "±0.00 MiB"
	}
	if v < 0 {
		return fmt.Sprintf("−%.2f MiB", -v)
	}
	return fmt.Sprintf("+%.2f MiB", v)
}

// rollSeries is one part of the data directory over the long run (the
// whole directory for key "").
func rollSeries(r []RollSample, key string) []int64 {
	out := make([]int64, len(r))
	for i, s := range r {
		switch key {
		case "":
			out[i] = s.Total()
		case keyEvents:
			out[i] = s.Bytes[keySim] + s.Bytes[keyToday]
		default:
			out[i] = s.Bytes[key]
		}
	}
	return out
}

// dirSizeGlob sums the sizes of the files matching pattern.
func dirSizeGlob(pattern string) int64 {
	m, _ := filepath.Glob(pattern)
	var n int64
	for _, f := range m {
		if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
			n += st.Size()
		}
	}
	return n
}

// retentionReport is the report's section on the retention phase;
// batched, when positive, is the batched phase's rate in the same run.
func retentionReport(r RetentionResult, batched float64) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	o := r.Opts
	w("## Retention\n\n")
	w("Issue 16's acceptance: retention of a tenant with %d days of history runs while ingest continues at its benchmark rate, and the data "+
		"directory of a long run stops growing once retention applies (`bench/retentionphase.go`; `go run ./bench retention` runs this section alone). "+
		"Both parts start a fresh `vigil serve` with `retention.interval` 0, so that only the runs below purge anything.\n\n", o.Days)

	base, win, after := r.Baseline.Rate(), r.Window.Rate(), r.After.Rate()
	ref := (base + after) / 2
	ingestGoal, ingestVerdict := "not measured", "not measured"
	switch {
	case r.Err != nil:
		ingestGoal = "failed: " + oneLine(r.Err)
	case r.Window.Requests == 0:
		ingestGoal = fmt.Sprintf("the purge (%s) ended before any ingest request was answered", fmtDur(r.Purge))
	default:
		ingestGoal = fmt.Sprintf("%d days purged in %s while batched ingest acknowledged **%.0f events/s** (request p99 %s), against %.0f events/s (p99 %s) "+
			"alone before it and %.0f events/s (p99 %s) right after it on the same server: %.0f %% of their mean",
			o.Days-o.KeepDays, fmtDur(r.Purge), win, fmtDur(pct(r.Window.Lat, .99)), base, fmtDur(r.Baseline.Pct(.99)),
			after, fmtDur(pct(r.After.Lat, .99)), 100*win/max(ref, 1e-9))
		if batched > 0 {
			ingestGoal += fmt.Sprintf(" (the batched phase above: %.0f events/s)", batched)
		}
		ingestVerdict = "**met**"
		if win < 0.9*ref || r.During.Status503+r.During.OtherErrors > 0 {
			ingestVerdict = fmt.Sprintf("**missed** (%.0f %%)", 100*win/max(ref, 1e-9))
		}
	}
	growGoal, growVerdict := "not measured", "not measured"
	var sim, total plateau
	switch {
	case o.RollDays == 0:
		growGoal = "not run (`-retention-roll-days 0`)"
	case r.RollErr != nil:
		growGoal = "failed: " + oneLine(r.RollErr)
	default:
		sim, total = seriesPlateau(rollSeries(r.Roll, keySim), o.RollKeep), seriesPlateau(rollSeries(r.Roll, ""), o.RollKeep)
		growGoal = fmt.Sprintf("%d simulated days, retention %s: the partitions of the simulated days grew %s; the whole data directory grew %s",
			o.RollDays, plural(o.RollKeep, "day"), sim, total)
		switch {
		case sim.Flat && total.Flat && total.After <= 0:
			growVerdict = "**yes**"
		case sim.Flat:
			growVerdict = fmt.Sprintf("**yes** for what retention deletes by event time; the whole directory still grows %s per simulated day, %.0f %% of a day without retention (below)",
				mib(int64(max(total.After, 0))), 100*total.After/max(total.Before, 1))
		default:
			growVerdict = "**no**"
		}
	}
	w("| goal | measured | |\n|---|---|---|\n")
	w("| retention of %d days while ingest runs at its benchmark rate | %s | %s |\n", o.Days, ingestGoal, ingestVerdict)
	w("| the data directory of a long run stops growing once retention applies | %s | %s |\n\n", growGoal, growVerdict)
	w("Met means: while the purge ran, ingest acknowledged at least 90 %% of the mean of its rates without the purge (before and right after it), with no request refused for lack of capacity (503) or failed. " +
		"Stops growing means: over the last simulated days the partitions grew by at most a tenth of what they grew per day before the first purge.\n\n")

	if r.Err == nil {
		w("### Purging %d of %d days while ingest runs\n\n", o.Days-o.KeepDays, o.Days)
		w("Tenant `ret` was created with `max_event_age_days` %d (the documented backfill allowance: `docs/operations.md`, \"How far back events may be dated\") "+
			"and given %d days × %d events of history, dated evenly over the %d whole UTC days before today and sent over `POST /v1/events` "+
			"(%d clients, NDJSON × 1,000): %d events acknowledged at %.0f events/s, all stored after %s. "+
			"Then the batched phase's ingest (%d clients, NDJSON × 1,000, the workload's ten tenants, wall-clock event time) ran alone for %s, "+
			"and again while `PATCH /v1/tenants/ret {\"retention_days\": %d}` and `POST /v1/retention/run {\"tenant\": \"ret\"}` "+
			"(what `vigil retention run --tenant ret` sends) ran, starting %s after the load, which went on for %s after the run answered "+
			"(a control next to the purge in time).\n\n",
			o.Days+1, o.Days, o.PerDay, o.Days, o.Clients, r.History.Events, r.History.Rate(), r.HistoryDrain.Elapsed.Round(time.Millisecond),
			o.Clients, o.Baseline, o.KeepDays, 2*time.Second, o.Baseline)
		w("| batched ingest | time | requests | events acknowledged | events/s | request p50 | p99 | max | 429 | 503 | errors |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
		w("| alone (baseline) | %s | %d | %d | **%.0f** | %s | %s | %s | %d | %d | %d |\n", r.Baseline.Elapsed.Round(time.Millisecond), r.Baseline.Requests, r.Baseline.Events,
			base, fmtDur(r.Baseline.Pct(.5)), fmtDur(r.Baseline.Pct(.99)), fmtDur(r.Baseline.Pct(1)), r.Baseline.Status429, r.Baseline.Status503, r.Baseline.OtherErrors)
		w("| while the purge ran | %s | %d | %d | **%.0f** | %s | %s | %s | | | |\n", r.Window.Elapsed.Round(time.Millisecond), r.Window.Requests, r.Window.Events,
			win, fmtDur(pct(r.Window.Lat, .5)), fmtDur(pct(r.Window.Lat, .99)), fmtDur(pct(r.Window.Lat, 1)))
		w("| right after the purge (control) | %s | %d | %d | **%.0f** | %s | %s | %s | | | |\n", r.After.Elapsed.Round(time.Millisecond), r.After.Requests, r.After.Events,
			after, fmtDur(pct(r.After.Lat, .5)), fmtDur(pct(r.After.Lat, .99)), fmtDur(pct(r.After.Lat, 1)))
		w("| the whole load around the purge | %s | %d | %d | %.0f | %s | %s | %s | %d | %d | %d |\n\n", r.During.Elapsed.Round(time.Millisecond), r.During.Requests, r.During.Events,
			r.During.Rate(), fmtDur(r.During.Pct(.5)), fmtDur(r.During.Pct(.99)), fmtDur(r.During.Pct(1)), r.During.Status429, r.During.Status503, r.During.OtherErrors)
		w("\"While the purge ran\" counts the events of the requests answered between sending the run and reading its answer, over that time; its latencies are those of every request outstanding at some point of it "+
			"(the control alike, from the answer on). The three ran one after the other on the shared machine: its 1-minute load average was %s as the baseline ended, %s as the purge ended and %s as the control ended.\n\n",
			r.LoadBaseline, r.LoadPurge, r.LoadAfter)
		w("| purge | |\n|---|---|\n")
		w("| `POST /v1/retention/run` round trip | **%s** |\n", fmtDur(r.Purge))
		w("| cutoff | %s (midnight UTC, %d days back) |\n", r.Purged.Before.Format(time.RFC3339), r.Purged.RetentionDays)
		w("| events purged | %d (the generator dated %d of the history before the cutoff) |\n", r.Purged.Events, r.WantPurged)
		w("| findings, incidents purged | %d, %d |\n", r.Purged.Findings, r.Purged.Incidents)
		w("| partition files | %d before, %d after |\n", r.PartsBefore, r.PartsAfter)
		for _, k := range []string{"", keyEvents, keyStream, keyMeta} {
			name, before, after := "data directory", sumBytes(r.DirBefore), sumBytes(r.DirAfter)
			if k != "" {
				name, before, after = "… "+k, r.DirBefore[k], r.DirAfter[k]
			}
			w("| %s | %s before, %s after |\n", name, mib(before), mib(after))
		}
		w("| server RSS (`VmRSS`) | %s before, %s right after; peak `VmHWM` %s over the history, both loads and the purge |\n\n", mib(r.RSSBefore), mib(r.RSSAfter), mib(r.PeakRSS))
		w("The size before is read before the concurrent load started, the size after as the run answered: it includes what that load added " +
			"meanwhile (the part the pipeline had not yet stored waits in `stream.db`).\n\n")
	}

	if o.RollDays > 0 && r.RollErr == nil && len(r.Roll) > 0 {
		w("### A long run with a retention of %s\n\n", plural(o.RollKeep, "day"))
		w("A second fresh server and tenant `roll` (`max_event_age_days` %d): simulated day *k* (of %d) sends %d events dated on that day, the %dth day back from today plus *k*, "+
			"waits until they are stored, and runs retention for `roll`. The server's clock cannot be moved, so each simulated day lowers `roll`'s `retention_days` by one "+
			"(the cutoff is midnight UTC of the wall clock minus `retention_days`), which moves the cutoff forward by exactly the day that would have passed: "+
			"the store keeps the simulated day and the %d before it. Sizes are read from the data directory after each run (WAL files included).\n\n",
			o.RollDays+1, o.RollDays, o.RollPerDay, o.RollDays, o.RollKeep)
		first, last := r.Roll[0], r.Roll[len(r.Roll)-1]
		var purged int64
		for _, s := range r.Roll {
			purged += s.Purged
		}
		parts := []string{"", keySim, keyToday, keyStream, keyMeta}
		w("| | after day 0 | after the last day | growth per day before retention applied | over the last %d days |\n|---|---|---|---|---|\n", sim.K)
		w("| partition files | %d | %d | | |\n", first.Parts, last.Parts)
		for _, k := range parts {
			name := "data directory"
			if k != "" {
				name = "… " + k
			}
			v, p := rollSeries(r.Roll, k), seriesPlateau(rollSeries(r.Roll, k), o.RollKeep)
			w("| %s | %s | %s | %s | %s |\n", name, mib(v[0]), mib(v[len(v)-1]), signedMiB(p.Before), signedMiB(p.After))
		}
		w("\n%d events sent, %d purged. The series, MiB after each simulated day's run:\n\n```\n", o.RollDays*o.RollPerDay, purged)
		for _, k := range parts {
			name := map[string]string{"": "data dir", keySim: "simulated", keyToday: "today", keyStream: "stream.db", keyMeta: "meta.db"}[k]
			w("%-9s", name)
			for _, v := range rollSeries(r.Roll, k) {
				w(" %.1f", float64(v)/(1<<20))
			}
			w("\n")
		}
		w("```\n\n")
		w("(simulated: the partitions of the simulated days; today: today's partition, which holds the `vigil.retention.purged` record of each run.) " +
			"What retention deletes by event time, the simulated days' partitions (and findings and incidents), stays at the retention's size. " +
			"Three parts are dated by the wall clock, which this run cannot advance, and so keep growing in it: today's partition gains one purge record " +
			"per run (each commit appends pages to its WAL); `stream.db` keeps an idempotency key per event until the UTC day it was *received* " +
			"on lies wholly before the cutoff, and every key of this run was received today, while over real days the keys of the last retention " +
			"period plus one day are kept; and `meta.db` holds detection state, which retention does not purge: it is bounded per tenant by " +
			"`detect.max_tenant_keys` and grows while new actors appear (the workload has 100,000).\n\n")
	}
	return b.String()
}

// plural writes n things.
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
