package httpapi

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
)

// readiness runs the Ready checks in the background, one run at a time and
// at most once per interval, and keeps the last result. A probe reads that
// result and never waits for storage, so readiness does not depend on how
// busy the node is, and probing it often costs nothing.
type readiness struct {
	checks   []ReadyCheck
	interval time.Duration
	timeout  time.Duration
	now      func() time.Time

	mu      sync.Mutex
	last    readyResult
	checked bool          // last holds a result
	running chan struct{} // closed when the run in progress ends; nil when none
	stopped bool          // Run has ended: no more runs (the stores close next)
}

// readyResult is one run of every check.
type readyResult struct {
	Ready     bool                  `json:"ready"`
	CheckedAt time.Time             `json:"checked_at"`
	Checks    map[string]readyEntry `json:"checks"`
}

type readyEntry struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Info  any    `json:"info,omitempty"`
}

func newReadiness(checks []ReadyCheck, interval, timeout time.Duration, now func() time.Time) *readiness {
	return &readiness{checks: checks, interval: interval, timeout: timeout, now: now}
}

// result returns the last result, starting a run in the background when it
// is older than the interval. Only before the first run has finished does
// it wait (for at most the check timeout).
func (rd *readiness) result(ctx context.Context) readyResult {
	rd.mu.Lock()
	if rd.running == nil && !rd.stopped && (!rd.checked || rd.now().Sub(rd.last.CheckedAt) >= rd.interval) {
		done := make(chan struct{})
		rd.running = done
		go rd.run(done)
	}
	last, checked, running := rd.last, rd.checked, rd.running
	rd.mu.Unlock()
	if checked || running == nil {
		return last
	}
	select {
	case <-running:
	case <-ctx.Done():
		return readyResult{CheckedAt: rd.now(), Checks: map[string]readyEntry{}}
	}
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return rd.last
}

// Run refreshes the result every interval until ctx ends, so that it is
// fresh even when nothing probes. When it returns, no check is running and
// none will start again.
func (rd *readiness) Run(ctx context.Context) {
	t := time.NewTicker(rd.interval)
	defer t.Stop()
	for {
		rd.result(ctx)
		select {
		case <-ctx.Done():
			rd.mu.Lock()
			rd.stopped = true
			running := rd.running
			rd.mu.Unlock()
			if running != nil {
				<-running
			}
			return
		case <-t.C:
		}
	}
}

var errCheckTimeout = errors.New("the check did not answer in time")

// run runs every check once, each bounded by the timeout.
func (rd *readiness) run(done chan struct{}) {
	res := readyResult{Ready: true, Checks: make(map[string]readyEntry, len(rd.checks))}
	for _, c := range rd.checks {
		e := readyEntry{OK: true}
		if c.Check != nil {
			if err := rd.check(c.Check); err != nil {
				e.OK, e.Error = false, err.Error()
				res.Ready = false
			}
		}
		if c.Info != nil {
			e.Info = c.Info()
		}
		res.Checks[c.Name] = e
	}
	res.CheckedAt = rd.now()
	rd.mu.Lock()
	rd.last, rd.checked, rd.running = res, true, nil
	rd.mu.Unlock()
	close(done)
}

// check runs one check with the timeout; a check that ignores its context
// is abandoned (its goroutine finishes on its own) and reported failed.
func (rd *readiness) check(fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), rd.timeout)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- fn(ctx) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return errCheckTimeout
	}
}

// RunReadiness keeps the readiness result fresh until ctx ends; without it
// the checks run only when /readyz or /v1/status is asked.
func (a *API) RunReadiness(ctx context.Context) { a.ready.Run(ctx) }

// readyz is the unauthenticated readiness probe: 200 or 503, the public
// figures of ReadyPublic, and nothing else: no error texts or file paths
// (GET /v1/status has them).
func (a *API) readyz(w http.ResponseWriter, r *http.Request) error {
	res := a.ready.result(r.Context())
	status := http.StatusOK
	if !res.Ready {
		status = http.StatusServiceUnavailable
	}
	out := map[string]any{}
	if a.opts.ReadyPublic != nil {
		for k, v := range a.opts.ReadyPublic() {
			out[k] = v
		}
	}
	out["ready"] = res.Ready
	httpx.WriteJSON(w, status, out)
	return nil
}

// status is the operator's view of readiness: every check with its error
// text and details, and when it ran.
func (a *API) status(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	if !p.Operator() {
		return audit.Errorf(audit.EFORBIDDEN, "server status needs an operator key")
	}
	httpx.WriteJSON(w, http.StatusOK, a.ready.result(r.Context()))
	return nil
}
