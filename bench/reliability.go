package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Env is what every reliability scenario needs.
type Env struct {
	Bin  string // the vigil binary
	Work string // a scratch directory
	Logf func(format string, args ...any)
}

// SkipError means a scenario cannot run here (no root, no mount); it is
// not a failure.
type SkipError struct{ Reason string }

func (e *SkipError) Error() string { return "skipped: " + e.Reason }

// failures collects what a scenario found wrong.
type failures []string

func (f *failures) add(format string, args ...any) { *f = append(*f, fmt.Sprintf(format, args...)) }

func (f failures) err() error {
	if len(f) == 0 {
		return nil
	}
	return errors.New(strings.Join(f, "\n"))
}

// postRange sends generator events [lo, hi) as one NDJSON request.
func postRange(ctx context.Context, s *Server, g *Gen, lo, hi int) (Response, error) {
	var body []byte
	for i := lo; i < hi; i++ {
		body, _ = g.AppendJSON(body, i)
		body = append(body, '\n')
	}
	return s.do(ctx, "POST", "/v1/events", "application/x-ndjson", body)
}

// errorBody is the API's error shape.
type errorBody struct {
	Error struct {
		Code, Message, RequestID string
	} `json:"error"`
}

func parseError(b []byte) errorBody {
	var e errorBody
	_ = json.Unmarshal(b, &e)
	return e
}

// storedIDs pages through every event of the tenants and counts ids.
func storedIDs(ctx context.Context, s *Server, tenants int) (map[string]int, error) {
	out := map[string]int{}
	for t := range tenants {
		cursor := ""
		for {
			q := url.Values{"tenant": {TenantName(t)}, "limit": {"1000"}}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			r, err := s.do(ctx, "GET", "/v1/events?"+q.Encode(), "", nil)
			if err != nil {
				return nil, err
			}
			if r.Status != http.StatusOK {
				return nil, fmt.Errorf("GET /v1/events: %d %.200s", r.Status, r.Body)
			}
			var page struct {
				Events []struct {
					ID string `json:"id"`
				} `json:"events"`
				NextCursor string `json:"next_cursor"`
			}
			if err := json.Unmarshal(r.Body, &page); err != nil {
				return nil, err
			}
			for _, e := range page.Events {
				out[e.ID]++
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
	}
	return out, nil
}

// verifyExactlyOnce waits until every acknowledged event is searchable and
// checks that each is stored exactly once and nothing else is stored twice.
func verifyExactlyOnce(ctx context.Context, s *Server, g *Gen, acked map[int]bool, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		stored, err := storedIDs(ctx, s, g.Tenants)
		if err != nil {
			return 0, err
		}
		var f failures
		missing := 0
		for i := range acked {
			switch n := stored[g.Event(i).ID]; {
			case n == 0:
				missing++
			case n > 1:
				f.add("acknowledged event %d (%s) stored %d times", i, g.Event(i).ID, n)
			}
		}
		for id, n := range stored {
			if n > 1 && len(f) < 20 {
				f.add("event %s stored %d times", id, n)
			}
		}
		if len(f) > 0 {
			return len(stored), f.err()
		}
		if missing == 0 {
			return len(stored), nil
		}
		if time.Now().After(deadline) {
			return len(stored), fmt.Errorf("%d acknowledged events missing after %s", missing, timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// KillOptions shapes the SIGKILL scenario.
type KillOptions struct {
	Rounds   int
	Clients  int
	MaxBatch int
	MinUp    time.Duration // the server runs this long at least before each kill
	MaxUp    time.Duration
	Seed     uint64
}

// ScenarioKill streams events from concurrent clients, SIGKILLs the server
// at random moments, restarts it, retries unacknowledged batches with the
// same ids (as the SDK does), and finally checks that every acknowledged
// event is stored exactly once.
func ScenarioKill(ctx context.Context, env Env, o KillOptions) error {
	dir := filepath.Join(env.Work, "kill-data")
	srv, err := StartServer(env.Bin, dir)
	if err != nil {
		return err
	}
	defer func() { srv.Kill() }()
	key := srv.Key
	end := time.Now().Add(-time.Minute)
	g := NewGen(1<<40, end.Add(-24*time.Hour), end) // huge N: times stay in the past
	if err := srv.createTenants(ctx, g.Tenants); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(o.Seed, 7))
	var (
		mu      sync.Mutex
		acked   = map[int]bool{}
		pending = map[int][2]int{}
		next    int
		kills   int
	)
	for round := 0; round <= o.Rounds; round++ {
		if round > 0 {
			if srv, err = StartServer(env.Bin, dir); err != nil {
				return fmt.Errorf("restart after kill %d: %w", round, err)
			}
			srv.Key = key
		}
		if round == o.Rounds {
			break
		}
		rctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for c := range o.Clients {
			crng := rand.New(rand.NewPCG(o.Seed+uint64(round), uint64(c)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for rctx.Err() == nil {
					mu.Lock()
					r, ok := pending[c]
					if !ok {
						n := 1 + crng.IntN(o.MaxBatch)
						r = [2]int{next, next + n}
						next += n
						pending[c] = r
					}
					mu.Unlock()
					resp, err := postRange(rctx, srv, g, r[0], r[1])
					if err != nil || resp.Status != http.StatusAccepted {
						time.Sleep(10 * time.Millisecond)
						continue
					}
					a, d := ingestCounts(resp.Body)
					if a+d != r[1]-r[0] {
						env.Logf("unexpected answer for %d events: %.300s", r[1]-r[0], resp.Body)
						continue
					}
					mu.Lock()
					for i := r[0]; i < r[1]; i++ {
						acked[i] = true
					}
					delete(pending, c)
					mu.Unlock()
				}
			}()
		}
		up := o.MinUp + time.Duration(rng.Int64N(int64(o.MaxUp-o.MinUp)+1))
		select {
		case <-time.After(up):
		case <-ctx.Done():
		}
		srv.Kill() // SIGKILL while clients are mid-request
		kills++
		cancel()
		wg.Wait()
		mu.Lock()
		env.Logf("  kill %d after %s: %d events acknowledged so far, %d batches in flight", kills, up.Round(time.Millisecond), len(acked), len(pending))
		mu.Unlock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	for c, r := range pending {
		resp, err := postRange(ctx, srv, g, r[0], r[1])
		if err != nil || resp.Status != http.StatusAccepted {
			return fmt.Errorf("retry of client %d's batch after the last restart: %v %d %.200s", c, err, resp.Status, resp.Body)
		}
		for i := r[0]; i < r[1]; i++ {
			acked[i] = true
		}
	}
	if len(acked) < o.Clients*o.MaxBatch {
		return fmt.Errorf("only %d events acknowledged: the scenario did not exercise the server", len(acked))
	}
	n, err := verifyExactlyOnce(ctx, srv, g, acked, 5*time.Minute)
	if err != nil {
		return err
	}
	env.Logf("  %d acknowledged events over %d SIGKILLs: each stored exactly once (%d stored)", len(acked), kills, n)
	return nil
}

// OverloadOptions shapes the overload scenario.
type OverloadOptions struct {
	Calibrate  time.Duration // how long to measure the sustainable rate
	Duration   time.Duration // how long to offer twice that rate
	MaxBacklog int           // ingest.max_backlog for the server (0: its default)
	RSSLimit   int64         // peak RSS that counts as unbounded
}

// OverloadReport is what the overload scenario measured.
type OverloadReport struct {
	Sustainable, Offered, Accepted float64 // events/s
	Requests, Status429, Status5xx int64
	MissingRetryAfter              int64
	RSSStart, RSSMax, HWM          int64
	Stored                         float64
}

// ScenarioOverload measures the sustainable end-to-end rate, then offers
// twice that rate open-loop (clients do not slow down) and checks that the
// excess is answered 429 with Retry-After, that nothing is answered 5xx,
// that every accepted event is stored, and that memory stays bounded.
func ScenarioOverload(ctx context.Context, env Env, o OverloadOptions) (OverloadReport, error) {
	var rep OverloadReport
	var extra []string
	if o.MaxBacklog > 0 {
		extra = append(extra, "VIGIL_INGEST_MAX_BACKLOG="+strconv.Itoa(o.MaxBacklog))
	}
	srv, err := StartServer(env.Bin, filepath.Join(env.Work, "overload-data"), extra...)
	if err != nil {
		return rep, err
	}
	defer srv.Kill()
	end := time.Now().Add(-time.Minute)
	g := NewGen(1<<40, end.Add(-24*time.Hour), end)
	if err := srv.createTenants(ctx, g.Tenants); err != nil {
		return rep, err
	}
	rep.RSSStart, _ = ProcStatus(srv.Pid(), "VmRSS")
	// Sustainable rate: what the pipeline stores end to end.
	t0 := time.Now()
	cal := sendEvents(ctx, srv, g, LoadOptions{Clients: 2, Batch: 500, From: 0, To: 1 << 40, Duration: o.Calibrate})
	dr, err := waitDrained(ctx, srv, float64(cal.Accepted), t0, 10*time.Minute, nil)
	if err != nil {
		return rep, err
	}
	rep.Sustainable = float64(cal.Accepted) / dr.Elapsed.Seconds()
	rep.Offered = 2 * rep.Sustainable
	env.Logf("  sustainable (ingest → stored): %.0f events/s; offering %.0f events/s for %s", rep.Sustainable, rep.Offered, o.Duration)

	// Open loop at twice that rate: 100-event requests leave on schedule
	// from 16 workers whatever the answers.
	const batch = 100
	start := time.Now()
	var seq, accepted, reqs, r429, r5xx, noRA atomic.Int64
	stop := make(chan struct{})
	var rssMax atomic.Int64
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if v, err := ProcStatus(srv.Pid(), "VmRSS"); err == nil && v > rssMax.Load() {
					rssMax.Store(v)
				}
			case <-stop:
				return
			}
		}
	}()
	from := int(cal.To)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				k := seq.Add(1) - 1
				due := start.Add(time.Duration(float64(k*batch) / rep.Offered * float64(time.Second)))
				if due.Sub(start) >= o.Duration {
					return
				}
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
				lo := from + int(k)*batch
				resp, err := postRange(ctx, srv, g, lo, lo+batch)
				if err != nil {
					r5xx.Add(1)
					continue
				}
				reqs.Add(1)
				switch {
				case resp.Status == http.StatusAccepted:
					a, _ := ingestCounts(resp.Body)
					accepted.Add(int64(a))
				case resp.Status == http.StatusTooManyRequests:
					r429.Add(1)
					if n, err := strconv.Atoi(resp.RetryAfter); err != nil || n < 1 {
						noRA.Add(1)
					}
				case resp.Status >= 500:
					r5xx.Add(1)
					if r5xx.Load() <= 3 {
						env.Logf("  overload answered %d: %.300s", resp.Status, resp.Body)
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	rep.Requests, rep.Status429, rep.Status5xx, rep.MissingRetryAfter = reqs.Load(), r429.Load(), r5xx.Load(), noRA.Load()
	rep.Accepted = float64(accepted.Load()) / elapsed.Seconds()
	total := float64(cal.Accepted + accepted.Load())
	if _, err := waitDrained(ctx, srv, total, time.Now(), 30*time.Minute, nil); err != nil {
		close(stop)
		return rep, err
	}
	close(stop)
	m, err := srv.scrape(ctx)
	if err != nil {
		return rep, err
	}
	rep.Stored = m["vigil_pipeline_events_total"]
	rep.RSSMax = rssMax.Load()
	rep.HWM, _ = ProcStatus(srv.Pid(), "VmHWM")
	env.Logf("  %d requests: %d answered 429 (%d without a usable Retry-After), %d 5xx/errors; accepted %.0f events/s; stored %.0f of %.0f accepted; RSS %s at start, max %s, VmHWM %s",
		rep.Requests, rep.Status429, rep.MissingRetryAfter, rep.Status5xx, rep.Accepted, rep.Stored, total, mib(rep.RSSStart), mib(rep.RSSMax), mib(rep.HWM))
	var f failures
	if rep.Status429 == 0 {
		f.add("no request was answered 429 at twice the sustainable rate")
	}
	if rep.MissingRetryAfter > 0 {
		f.add("%d 429 answers lacked a Retry-After of at least 1 second", rep.MissingRetryAfter)
	}
	if rep.Status5xx > 0 {
		f.add("%d requests failed with 5xx or a transport error instead of 429", rep.Status5xx)
	}
	if rep.Stored != total {
		f.add("stored %.0f events, accepted %.0f", rep.Stored, total)
	}
	if o.RSSLimit > 0 && rep.HWM > o.RSSLimit {
		f.add("peak RSS %s is above the bound %s", mib(rep.HWM), mib(o.RSSLimit))
	}
	return rep, f.err()
}

// mountable reports whether this process can mount filesystems (root with
// CAP_SYS_ADMIN and the tools); the reason says why not.
func mountable(work string) (bool, string) {
	if os.Geteuid() != 0 {
		return false, "needs root to mount a small filesystem (tmpfs / loop ext4)"
	}
	probe := filepath.Join(work, "mount-probe")
	if err := os.MkdirAll(probe, 0o755); err != nil {
		return false, err.Error()
	}
	defer os.Remove(probe)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe).CombinedOutput(); err != nil {
		return false, fmt.Sprintf("mount is not permitted here: %v %s", err, strings.TrimSpace(string(out)))
	}
	_ = exec.Command("umount", probe).Run()
	return true, ""
}

func unmount(dir string) {
	for range 20 {
		if exec.Command("umount", dir).Run() == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	_ = exec.Command("umount", "-l", dir).Run()
}

// expectStorageError checks a 503 answer with Retry-After whose message
// names the problem (one of words).
func expectStorageError(f *failures, what string, r Response, words ...string) {
	e := parseError(r.Body)
	if r.Status != http.StatusServiceUnavailable {
		f.add("%s: status %d, want 503: %.300s", what, r.Status, r.Body)
		return
	}
	if n, err := strconv.Atoi(r.RetryAfter); err != nil || n < 1 {
		f.add("%s: 503 without a usable Retry-After (%q)", what, r.RetryAfter)
	}
	if e.Error.Code != "unavailable" {
		f.add("%s: error code %q, want unavailable", what, e.Error.Code)
	}
	if !containsAny(strings.ToLower(e.Error.Message), words) {
		f.add("%s: message %q does not name the problem (%s)", what, e.Error.Message, strings.Join(words, "/"))
	}
}

func containsAny(s string, words []string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// readiness returns /readyz's status and the details of /v1/status (which
// names the failing check; /readyz itself says only ready or not).
func readiness(ctx context.Context, s *Server) (int, string) {
	r, err := s.do(ctx, "GET", "/readyz", "", nil)
	if err != nil {
		return 0, err.Error()
	}
	d, err := s.do(ctx, "GET", "/v1/status", "", nil)
	if err != nil {
		return r.Status, string(r.Body) + " (/v1/status: " + err.Error() + ")"
	}
	return r.Status, string(r.Body) + " " + string(d.Body)
}

// waitReady polls /readyz until it answers want.
func waitReady(ctx context.Context, s *Server, want int, timeout time.Duration) (int, string) {
	deadline := time.Now().Add(timeout)
	for {
		st, body := readiness(ctx, s)
		if st == want || time.Now().After(deadline) {
			return st, body
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// fillUntilRefused sends batches until one is not accepted and returns the
// acknowledged indices, the refused range and its answer.
func fillUntilRefused(ctx context.Context, s *Server, g *Gen, from, batch, limit int) (map[int]bool, [2]int, Response, error) {
	acked := map[int]bool{}
	for lo := from; lo < from+limit; lo += batch {
		r, err := postRange(ctx, s, g, lo, lo+batch)
		if err != nil {
			return acked, [2]int{lo, lo + batch}, r, err
		}
		if r.Status != http.StatusAccepted {
			return acked, [2]int{lo, lo + batch}, r, nil
		}
		for i := lo; i < lo+batch; i++ {
			acked[i] = true
		}
	}
	return acked, [2]int{}, Response{}, fmt.Errorf("%d events were all accepted: the filesystem never filled", limit)
}

// DiskFullOptions shapes the disk-full scenario.
type DiskFullOptions struct {
	SizeMiB int // tmpfs size for the data directory
}

// ScenarioDiskFull runs the server on a small tmpfs, ingests until the
// filesystem is full, and checks the answers (503 + Retry-After naming the
// problem, readiness failing, liveness fine); then grows the filesystem
// and checks recovery without a restart: readiness returns, the refused
// batch is accepted on retry, and every acknowledged event is stored once.
func ScenarioDiskFull(ctx context.Context, env Env, o DiskFullOptions) error {
	if ok, why := mountable(env.Work); !ok {
		return &SkipError{why}
	}
	mnt := filepath.Join(env.Work, "full")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", o.SizeMiB), "tmpfs", mnt).CombinedOutput(); err != nil {
		return &SkipError{fmt.Sprintf("mount tmpfs: %v %s", err, out)}
	}
	defer unmount(mnt)
	srv, err := StartServer(env.Bin, filepath.Join(mnt, "data"))
	if err != nil {
		return err
	}
	defer srv.Kill()
	end := time.Now().Add(-time.Minute)
	g := NewGen(1<<40, end.Add(-24*time.Hour), end)
	if err := srv.createTenants(ctx, g.Tenants); err != nil {
		return err
	}
	acked, refused, resp, err := fillUntilRefused(ctx, srv, g, 0, 500, 5_000_000)
	if err != nil {
		return err
	}
	env.Logf("  %d events acknowledged before the %d MiB filesystem filled; then: %d %.200s", len(acked), o.SizeMiB, resp.Status, resp.Body)
	var f failures
	expectStorageError(&f, "ingest on a full disk", resp, "full", "space")
	if resp.Status >= 500 && resp.Status != http.StatusServiceUnavailable {
		f.add("server log: %s", serverErrors(srv))
	}
	st, body := waitReady(ctx, srv, http.StatusServiceUnavailable, 5*time.Second)
	if st != http.StatusServiceUnavailable || !containsAny(strings.ToLower(body), []string{"full", "space"}) {
		f.add("readiness on a full disk: %d %.300s (want 503 naming the full disk)", st, body)
	}
	if r, err := srv.do(ctx, "GET", "/healthz", "", nil); err != nil || r.Status != http.StatusOK {
		f.add("liveness on a full disk: %v %d", err, r.Status)
	}
	// Space returns.
	if out, err := exec.Command("mount", "-o", fmt.Sprintf("remount,size=%dm", o.SizeMiB*8), mnt).CombinedOutput(); err != nil {
		return fmt.Errorf("grow tmpfs: %v %s", err, out)
	}
	if st, body := waitReady(ctx, srv, http.StatusOK, 30*time.Second); st != http.StatusOK {
		f.add("readiness did not recover within 30s after space returned: %d %.300s", st, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := postRange(ctx, srv, g, refused[0], refused[1])
		if err == nil && r.Status == http.StatusAccepted {
			for i := refused[0]; i < refused[1]; i++ {
				acked[i] = true
			}
			break
		}
		if time.Now().After(deadline) {
			f.add("ingest did not recover within 30s after space returned: %v %d %.300s", err, r.Status, r.Body)
			return f.err()
		}
		time.Sleep(500 * time.Millisecond)
	}
	more, _, _, _ := fillUntilRefused(ctx, srv, g, refused[1], 500, 5000)
	for i := range more {
		acked[i] = true
	}
	n, err := verifyExactlyOnce(ctx, srv, g, acked, 2*time.Minute)
	if err != nil {
		f.add("after recovery: %v", err)
	} else {
		env.Logf("  recovered without a restart: %d acknowledged events stored exactly once (%d stored)", len(acked), n)
	}
	return f.err()
}

// ScenarioReadOnly runs the server on a loop-mounted ext4 filesystem with
// errors=remount-ro, makes the kernel turn it read-only under the running
// server (as a failing disk does), checks the answers (503 + Retry-After
// naming the problem, readiness failing), checks that starting on a
// read-only directory fails with a clear message, and finally checks that
// after the operator's repair (fsck, remount read-write, restart) every
// acknowledged event is there exactly once and ingestion works.
func ScenarioReadOnly(ctx context.Context, env Env) error {
	if ok, why := mountable(env.Work); !ok {
		return &SkipError{why}
	}
	img := filepath.Join(env.Work, "ro.img")
	mnt := filepath.Join(env.Work, "ro")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("truncate", "-s", "256M", img).CombinedOutput(); err != nil {
		return fmt.Errorf("truncate: %v %s", err, out)
	}
	defer os.Remove(img)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		return &SkipError{fmt.Sprintf("mkfs.ext4: %v %s", err, out)}
	}
	mount := func(opts string) error {
		out, err := exec.Command("mount", "-o", opts, img, mnt).CombinedOutput()
		if err != nil {
			return fmt.Errorf("mount -o %s: %v %s", opts, err, out)
		}
		return nil
	}
	if err := mount("loop,errors=remount-ro"); err != nil {
		return &SkipError{err.Error()}
	}
	defer unmount(mnt)
	src, err := exec.Command("findmnt", "-no", "SOURCE", mnt).Output()
	if err != nil {
		return err
	}
	trigger := filepath.Join("/sys/fs/ext4", filepath.Base(strings.TrimSpace(string(src))), "trigger_fs_error")
	if _, err := os.Stat(trigger); err != nil {
		return &SkipError{"the kernel has no " + trigger + " to make ext4 read-only under a running server"}
	}
	dir := filepath.Join(mnt, "data")
	srv, err := StartServer(env.Bin, dir)
	if err != nil {
		return err
	}
	defer func() { srv.Kill() }()
	key := srv.Key
	end := time.Now().Add(-time.Minute)
	g := NewGen(1<<40, end.Add(-24*time.Hour), end)
	if err := srv.createTenants(ctx, g.Tenants); err != nil {
		return err
	}
	acked, _, _, _ := fillUntilRefused(ctx, srv, g, 0, 500, 10_000)
	if len(acked) != 10_000 {
		return fmt.Errorf("only %d of 10000 events accepted before the filesystem went read-only", len(acked))
	}
	if err := os.WriteFile(trigger, []byte("1\n"), 0o200); err != nil {
		return fmt.Errorf("trigger ext4 error: %w", err)
	}
	var f failures
	r, err := postRange(ctx, srv, g, 10_000, 10_500)
	if err != nil {
		return err
	}
	env.Logf("  filesystem turned read-only under the server; ingest answered %d %.200s", r.Status, r.Body)
	expectStorageError(&f, "ingest on a read-only filesystem", r, "read-only", "readonly", "read only")
	if r.Status >= 500 && r.Status != http.StatusServiceUnavailable {
		f.add("server log: %s", serverErrors(srv))
	}
	if r.Status == http.StatusAccepted { // the batch was durable after all
		for i := 10_000; i < 10_500; i++ {
			acked[i] = true
		}
	}
	st, body := waitReady(ctx, srv, http.StatusServiceUnavailable, 5*time.Second)
	if st != http.StatusServiceUnavailable || !containsAny(strings.ToLower(body), []string{"read-only", "readonly", "read only"}) {
		f.add("readiness on a read-only filesystem: %d %.300s (want 503 naming it)", st, body)
	}
	if err := srv.Stop(30 * time.Second); err != nil {
		env.Logf("  stop on a read-only filesystem: %v", err)
	}
	// Starting on a read-only directory must fail clearly.
	unmount(mnt)
	if out, err := exec.Command("e2fsck", "-fy", img).CombinedOutput(); err != nil && !strings.Contains(err.Error(), "exit status 1") {
		env.Logf("  e2fsck: %v %s", err, out)
	}
	if err := mount("loop,ro"); err != nil {
		return err
	}
	// Starting on a read-only directory must either fail naming the problem
	// or serve (searches work) while refusing writes and not being ready.
	ro := []string{"read-only", "readonly", "read only"}
	if s2, err := StartServer(env.Bin, dir); err != nil {
		if !containsAny(strings.ToLower(err.Error()), ro) {
			f.add("starting on a read-only data directory failed without naming the problem: %.600s", err)
		} else {
			env.Logf("  start on a read-only data directory refused: %s", lastLine(err.Error()))
		}
	} else {
		s2.Key = key
		st, body := readiness(ctx, s2)
		if st != http.StatusServiceUnavailable || !containsAny(strings.ToLower(body), ro) {
			f.add("started on a read-only data directory, readiness: %d %.300s (want 503 naming it)", st, body)
		}
		r, err := postRange(ctx, s2, g, 10_000, 10_500)
		if err != nil {
			f.add("ingest after starting read-only: %v", err)
		} else {
			expectStorageError(&f, "ingest after starting on a read-only directory", r, ro...)
		}
		if r, err := s2.do(ctx, "GET", "/v1/events?tenant=t00&limit=10", "", nil); err != nil || r.Status != http.StatusOK {
			f.add("search after starting read-only: %v %d %.200s", err, r.Status, r.Body)
		}
		env.Logf("  started on a read-only data directory: readiness %d, ingest %d, searches work", st, r.Status)
		s2.Kill()
	}
	// The operator's repair: remount read-write and restart.
	unmount(mnt)
	if err := mount("loop"); err != nil {
		return err
	}
	s3, err := StartServer(env.Bin, dir)
	if err != nil {
		f.add("restart after repair: %v", err)
		return f.err()
	}
	srv = s3
	srv.Key = key
	if st, body := waitReady(ctx, srv, http.StatusOK, 30*time.Second); st != http.StatusOK {
		f.add("readiness after repair: %d %.300s", st, body)
	}
	if r, err := postRange(ctx, srv, g, 10_000, 10_500); err != nil || r.Status != http.StatusAccepted {
		f.add("ingest after repair: %v %d %.300s", err, r.Status, r.Body)
	} else {
		for i := 10_000; i < 10_500; i++ {
			acked[i] = true
		}
	}
	n, err := verifyExactlyOnce(ctx, srv, g, acked, 2*time.Minute)
	if err != nil {
		f.add("after repair: %v", err)
	} else {
		env.Logf("  after repair: %d acknowledged events stored exactly once (%d stored)", len(acked), n)
	}
	return f.err()
}

// serverErrors returns the server's last few "request failed" log lines.
func serverErrors(s *Server) string {
	var out []string
	for _, l := range strings.Split(s.Stderr(), "\n") {
		if strings.Contains(l, "request failed") || strings.Contains(l, `"level":"ERROR"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out[max(0, len(out)-3):], "\n")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// runReliability is `go run ./bench reliability`: the long form of every
// scenario.
func runReliability(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench reliability", flag.ContinueOnError)
	only := fs.String("run", "kill,overload,diskfull,readonly,bounded", "scenarios to run, comma-separated")
	rounds := fs.Int("kill-rounds", 20, "SIGKILLs in the kill scenario")
	clients := fs.Int("kill-clients", 16, "concurrent clients in the kill scenario")
	overload := fs.Duration("overload-duration", 2*time.Minute, "how long to offer twice the sustainable rate")
	backlog := fs.Int("overload-backlog", 200_000, "ingest.max_backlog for the overload scenario (0: the server's default, 2,000,000, which takes minutes to fill)")
	rssLimit := fs.Int64("rss-limit-mib", 2048, "peak RSS above which the overload scenario fails")
	work := fs.String("workdir", os.TempDir(), "scratch directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	started := time.Now()
	logf := func(format string, a ...any) {
		fmt.Printf("[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, a...))
	}
	dir, err := os.MkdirTemp(*work, "vigil-reliability-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logf("building vigil (go build ./cmd/vigil)")
	bin, err := buildVigil(ctx, dir)
	if err != nil {
		return err
	}
	env := Env{Bin: bin, Work: dir, Logf: logf}
	failed := 0
	for _, name := range strings.Split(*only, ",") {
		t0 := time.Now()
		logf("== %s", name)
		var err error
		switch strings.TrimSpace(name) {
		case "kill":
			err = ScenarioKill(ctx, env, KillOptions{Rounds: *rounds, Clients: *clients, MaxBatch: 200, MinUp: 300 * time.Millisecond, MaxUp: 3 * time.Second, Seed: uint64(started.UnixNano())})
		case "overload":
			_, err = ScenarioOverload(ctx, env, OverloadOptions{Calibrate: 20 * time.Second, Duration: *overload, MaxBacklog: *backlog, RSSLimit: *rssLimit << 20})
		case "diskfull":
			err = ScenarioDiskFull(ctx, env, DiskFullOptions{SizeMiB: 64})
		case "readonly":
			err = ScenarioReadOnly(ctx, env)
		case "bounded":
			_, err = ScenarioBounded(ctx, env, DefaultBoundedOptions())
		default:
			err = fmt.Errorf("unknown scenario %q", name)
		}
		var skip *SkipError
		switch {
		case errors.As(err, &skip):
			logf("-- %s SKIPPED (%s): %s", name, time.Since(t0).Round(time.Second), skip.Reason)
		case err != nil:
			failed++
			logf("-- %s FAILED (%s):\n%v", name, time.Since(t0).Round(time.Second), err)
		default:
			logf("-- %s passed (%s)", name, time.Since(t0).Round(time.Second))
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d scenario(s) failed", failed)
	}
	return nil
}
