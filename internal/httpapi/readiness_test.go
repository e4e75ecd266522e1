package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/httpapi"
)

// TestReadyzAnswersFromTheLastCheck: probes read the result of the
// background check instead of running the checks themselves, so many
// probes cost one check, and a check that is slow (storage busy under
// query load) does not turn the probe into a 503.
func TestReadyzAnswersFromTheLastCheck(t *testing.T) {
	var calls atomic.Int32
	block := make(chan struct{})
	var unblock sync.Once
	t.Cleanup(func() { unblock.Do(func() { close(block) }) })
	check := func(ctx context.Context) error {
		if calls.Add(1) > 1 {
			select { // every later run is stuck, as a ping waiting for a busy pool is
			case <-block:
			case <-ctx.Done():
			}
		}
		return nil
	}
	s := startAPI(t, serverSetup{api: func(o *httpapi.Options) {
		o.Ready = []httpapi.ReadyCheck{{Name: "storage", Check: check}}
		o.ReadyInterval = time.Hour
		o.ReadyTimeout = time.Hour
	}})
	for i := range 50 {
		if a := s.do(t, "GET", "/readyz", "", ""); a.status != http.StatusOK {
			t.Fatalf("probe %d: %d %s", i, a.status, a.body)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("50 probes within the interval ran the check %d times, want 1", n)
	}

	// A short interval: each probe may start a run, but at most one runs
	// at a time, and a stuck run does not hold probes up.
	calls.Store(0)
	s = startAPI(t, serverSetup{api: func(o *httpapi.Options) {
		o.Ready = []httpapi.ReadyCheck{{Name: "storage", Check: check}}
		o.ReadyInterval = time.Nanosecond
		o.ReadyTimeout = time.Hour
	}})
	for i := range 20 {
		if a := s.do(t, "GET", "/readyz", "", ""); a.status != http.StatusOK || a.body != "{\"ready\":true}\n" {
			t.Fatalf("probe %d while a check is stuck: %d %s", i, a.status, a.body)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	for range 5 {
		s.do(t, "GET", "/readyz", "", "")
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("checks run: %d, want 2 (the first, then one stuck run at a time)", n)
	}
}

// TestReadyzHidesDetails: the unauthenticated probe says only whether the
// node is ready; error texts (with data-file paths) are for operators at
// GET /v1/status.
func TestReadyzHidesDetails(t *testing.T) {
	const secret = "/var/lib/vigil/events/2026-01-01.db: disk I/O error"
	s := startAPI(t, serverSetup{api: func(o *httpapi.Options) {
		o.Ready = []httpapi.ReadyCheck{
			{Name: "storage", Check: func(context.Context) error { return errors.New(secret) }},
			{Name: "enrichment", Info: func() any { return map[string]string{"city_db": "/data/city.mmdb"} }},
		}
	}}, "a")
	a := s.do(t, "GET", "/readyz", "", "")
	if a.status != http.StatusServiceUnavailable || a.body != "{\"ready\":false}\n" {
		t.Fatalf("/readyz: %d %q, want 503 {\"ready\":false} and nothing else", a.status, a.body)
	}
	st := s.do(t, "GET", "/v1/status", s.op, "")
	if st.status != http.StatusOK || !strings.Contains(st.body, secret) || !strings.Contains(st.body, "city.mmdb") || !strings.Contains(st.body, `"ready":false`) {
		t.Fatalf("/v1/status for an operator: %d %s", st.status, st.body)
	}
	if a := s.do(t, "GET", "/v1/status", s.keys["a"], ""); a.status != http.StatusForbidden {
		t.Errorf("/v1/status for a tenant key with the admin scope: %d, want 403", a.status)
	}
	if a := s.do(t, "GET", "/v1/status", "", ""); a.status != http.StatusUnauthorized {
		t.Errorf("/v1/status without a key: %d, want 401", a.status)
	}
}
