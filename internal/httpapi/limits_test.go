package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpapi"
	"github.com/vigilhq/vigil/internal/ingest"
	"github.com/vigilhq/vigil/internal/memstream"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// apiServer is the API on a real HTTP server on 127.0.0.1:0, over a real
// SQLite catalog and an in-memory stream nobody consumes (so the backlog
// stays where the test puts it).
type apiServer struct {
	url    string
	stream *memstream.Stream
	keys   map[string]string // tenant → key with every scope
	op     string            // an operator key with the admin scope
}

type serverSetup struct {
	limits       httpapi.LimiterOptions
	query        audit.QueryRunner
	writeTimeout time.Duration
	api          func(*httpapi.Options)
}

func startAPI(t *testing.T, s serverSetup, tenants ...string) *apiServer {
	t.Helper()
	db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := memstream.New(memstream.Options{})
	s.limits.Committed = func(ctx context.Context, _ string) (uint64, error) { return st.Offset(ctx, "pipeline") }
	lim, err := httpapi.NewLimiter(s.limits)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := ingest.New(ingest.Options{Stream: st, Admission: lim,
		TenantExists: func(context.Context, string) (bool, error) { return true, nil }})
	if err != nil {
		t.Fatal(err)
	}
	opts := httpapi.Options{Ingest: svc, Events: db.Events(), Stream: st, Tenants: db, Keys: db, Findings: db, Rules: db,
		Query: s.query, Limits: lim}
	if s.api != nil {
		s.api(&opts)
	}
	api, err := httpapi.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(api)
	srv.Config.WriteTimeout = s.writeTimeout
	srv.Start()
	t.Cleanup(srv.Close)
	out := &apiServer{url: srv.URL, stream: st, keys: map[string]string{}}
	if _, out.op, err = audit.MintKey(t.Context(), db, "", "operator", []audit.Scope{audit.ScopeAdmin}, time.Now()); err != nil {
		t.Fatal(err)
	}
	all := []audit.Scope{audit.ScopeEventsWrite, audit.ScopeEventsRead, audit.ScopeFindingsRead, audit.ScopeAdmin}
	for _, tn := range tenants {
		if err := db.CreateTenant(t.Context(), audit.Tenant{ID: tn, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if _, out.keys[tn], err = audit.MintKey(t.Context(), db, tn, "test", all, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

type answer struct {
	status     int
	retryAfter string
	limit      string
	body       string
	trailer    http.Header
}

func (s *apiServer) do(t *testing.T, method, path, key, body string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return answer{}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("%s %s: reading the answer: %v", method, path, err)
	}
	var e struct {
		Error struct {
			Limit string `json:"limit"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	return answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), limit: e.Error.Limit, body: string(b), trailer: resp.Trailer}
}

func batch(prefix string, n int) string {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":"%s-%d","action":"record.viewed","actor":{"id":"u%d"}}`, prefix, i, i)
	}
	b.WriteString("]")
	return b.String()
}

// TestTenantOverBacklogShareGets429WhileOthersGet202: with a share of 100
// waiting events per tenant, tenant A flooding is refused with 429, a
// Retry-After and the limit's name, while tenant B's requests sent at the
// same time are accepted; once the pipeline commits A's events, A is
// accepted again.
func TestTenantOverBacklogShareGets429WhileOthersGet202(t *testing.T) {
	s := startAPI(t, serverSetup{limits: httpapi.LimiterOptions{Tenant: httpapi.TenantLimits{BacklogShare: 100}}}, "a", "b")
	var wg sync.WaitGroup
	flood := make([]answer, 20)
	others := make([]answer, 5)
	for i := range flood {
		wg.Go(func() { flood[i] = s.do(t, "POST", "/v1/events", s.keys["a"], batch(fmt.Sprintf("a%d", i), 10)) })
	}
	for i := range others {
		wg.Go(func() { others[i] = s.do(t, "POST", "/v1/events", s.keys["b"], batch(fmt.Sprintf("b%d", i), 10)) })
	}
	wg.Wait()
	accepted, refused := 0, 0
	for _, a := range flood {
		switch a.status {
		case http.StatusAccepted:
			accepted++
		case http.StatusTooManyRequests:
			refused++
			if a.limit != httpapi.LimitTenantBacklogShare || a.retryAfter == "" {
				t.Errorf("429 for A names limit %q with Retry-After %q; want %s and a Retry-After: %s", a.limit, a.retryAfter, httpapi.LimitTenantBacklogShare, trunc(a.body))
			}
		default:
			t.Errorf("A got %d: %s", a.status, trunc(a.body))
		}
	}
	if accepted == 0 || accepted > 10 || refused == 0 {
		t.Errorf("A: %d accepted, %d refused; want at most its share (10 requests of 10) accepted and the rest refused", accepted, refused)
	}
	for _, a := range others {
		if a.status != http.StatusAccepted {
			t.Errorf("B, under its share while A floods, got %d: %s", a.status, trunc(a.body))
		}
	}
	last, _, _ := s.stream.Backlog(t.Context())
	if err := s.stream.Commit(t.Context(), "pipeline", last); err != nil {
		t.Fatal(err)
	}
	if a := s.do(t, "POST", "/v1/events", s.keys["a"], batch("again", 10)); a.status != http.StatusAccepted {
		t.Errorf("A after its backlog was processed got %d: %s", a.status, trunc(a.body))
	}
}

// TestTenantRequestAndKeyRates: rates are token buckets per tenant and per
// key; the 429 names which one was hit and says when to retry.
func TestTenantRequestAndKeyRates(t *testing.T) {
	s := startAPI(t, serverSetup{limits: httpapi.LimiterOptions{
		Tenant:  httpapi.TenantLimits{RequestRate: 0.01, RequestBurst: 3},
		Tenants: map[string]httpapi.TenantLimits{"b": {}},
		// The key limit is looser than a's tenant limit, so a meets its
		// tenant's; b has no tenant limit and meets its key's.
		KeyRequestRate: 0.01, KeyRequestBurst: 5,
	}}, "a", "b")
	for i := range 3 {
		if a := s.do(t, "GET", "/v1/findings", s.keys["a"], ""); a.status != http.StatusOK {
			t.Fatalf("request %d of a's burst: %d %s", i, a.status, trunc(a.body))
		}
	}
	a := s.do(t, "GET", "/v1/findings", s.keys["a"], "")
	if a.status != http.StatusTooManyRequests || a.limit != httpapi.LimitTenantRequestRate {
		t.Fatalf("a over its rate: %d %q %s", a.status, a.limit, trunc(a.body))
	}
	if n, err := strconv.Atoi(a.retryAfter); err != nil || n < 50 {
		t.Errorf("Retry-After %q; at 0.01 requests/s the next token is ~100 s away", a.retryAfter)
	}
	for i := range 5 {
		if a := s.do(t, "GET", "/v1/findings", s.keys["b"], ""); a.status != http.StatusOK {
			t.Fatalf("request %d of b's key burst: %d %s", i, a.status, trunc(a.body))
		}
	}
	if a := s.do(t, "GET", "/v1/findings", s.keys["b"], ""); a.status != http.StatusTooManyRequests || a.limit != httpapi.LimitKeyRequestRate {
		t.Fatalf("b's key over its rate: %d %q %s", a.status, a.limit, trunc(a.body))
	}
}

// TestTenantEventRate: events are charged per tenant, so a batch that
// empties the bucket refuses the next one while another tenant goes on.
func TestTenantEventRate(t *testing.T) {
	s := startAPI(t, serverSetup{limits: httpapi.LimiterOptions{Tenant: httpapi.TenantLimits{EventRate: 1, EventBurst: 50}}}, "a", "b")
	if a := s.do(t, "POST", "/v1/events", s.keys["a"], batch("a1", 50)); a.status != http.StatusAccepted {
		t.Fatalf("a's first batch: %d %s", a.status, trunc(a.body))
	}
	a := s.do(t, "POST", "/v1/events", s.keys["a"], batch("a2", 20))
	if a.status != http.StatusTooManyRequests || a.limit != httpapi.LimitTenantEventRate || a.retryAfter == "" {
		t.Fatalf("a over its event rate: %d %q Retry-After %q %s", a.status, a.limit, a.retryAfter, trunc(a.body))
	}
	if a := s.do(t, "POST", "/v1/events", s.keys["b"], batch("b1", 50)); a.status != http.StatusAccepted {
		t.Fatalf("b while a is limited: %d %s", a.status, trunc(a.body))
	}
	if backlog, _, _ := s.stream.Backlog(t.Context()); backlog != 100 {
		t.Fatalf("stream holds %d events; the refused batch must not be appended", backlog)
	}
}

// blockingRunner is a QueryRunner whose queries and exports wait until
// released, announcing each start.
type blockingRunner struct {
	started chan string
	release chan struct{}
}

func (b *blockingRunner) RunQuery(ctx context.Context, scope audit.QueryScope, q *audit.Query) (*audit.QueryResult, error) {
	b.started <- scope.Tenant
	select {
	case <-b.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &audit.QueryResult{Columns: []audit.QueryColumn{}, Rows: [][]any{}}, nil
}

func (b *blockingRunner) ExportQuery(ctx context.Context, scope audit.QueryScope, q *audit.Query, sink audit.QuerySink) (audit.QueryStats, error) {
	b.started <- scope.Tenant
	select {
	case <-b.release:
	case <-ctx.Done():
		return audit.QueryStats{}, ctx.Err()
	}
	return audit.QueryStats{}, sink.Columns([]audit.QueryColumn{{Name: "n", Type: audit.FieldType("int")}})
}

// TestQueryAndExportConcurrency: one export per tenant and two on the
// server; queries likewise bounded, each refusal naming its limit.
func TestQueryAndExportConcurrency(t *testing.T) {
	run := &blockingRunner{started: make(chan string, 8), release: make(chan struct{})}
	s := startAPI(t, serverSetup{query: run, limits: httpapi.LimiterOptions{
		Tenant:            httpapi.TenantLimits{ConcurrentExports: 1, ConcurrentQueries: 1},
		ConcurrentExports: 2, ConcurrentQueries: 2,
	}}, "a", "b", "c")
	for _, c := range []struct{ path, body, tenantLimit, globalLimit string }{
		{"/v1/export", `{"q":"action:auth.login.success"}`, httpapi.LimitTenantConcurrentExports, httpapi.LimitConcurrentExports},
		{"/v1/query", `{"q":"action:auth.login.success"}`, httpapi.LimitTenantConcurrentQueries, httpapi.LimitConcurrentQueries},
	} {
		var wg sync.WaitGroup
		held := make([]answer, 2)
		for i, tn := range []string{"a", "b"} {
			wg.Go(func() { held[i] = s.do(t, "POST", c.path, s.keys[tn], c.body) })
			<-run.started
		}
		if a := s.do(t, "POST", c.path, s.keys["a"], c.body); a.status != http.StatusTooManyRequests || a.limit != c.tenantLimit || a.retryAfter == "" {
			t.Errorf("%s: a's second at once: %d %q Retry-After %q, want 429 %s", c.path, a.status, a.limit, a.retryAfter, c.tenantLimit)
		}
		if a := s.do(t, "POST", c.path, s.keys["c"], c.body); a.status != http.StatusTooManyRequests || a.limit != c.globalLimit {
			t.Errorf("%s: c's first with the server full: %d %q, want 429 %s", c.path, a.status, a.limit, c.globalLimit)
		}
		for range 2 {
			run.release <- struct{}{}
		}
		wg.Wait()
		for i, a := range held {
			if a.status != http.StatusOK {
				t.Errorf("%s: held read %d: %d %s", c.path, i, a.status, trunc(a.body))
			}
		}
		// The slots are free again.
		done := make(chan answer, 1)
		go func() { done <- s.do(t, "POST", c.path, s.keys["c"], c.body) }()
		<-run.started
		run.release <- struct{}{}
		if a := <-done; a.status != http.StatusOK {
			t.Errorf("%s: after release: %d %s", c.path, a.status, trunc(a.body))
		}
	}
}

// slowRunner exports rows in chunks with pauses, as a long export over a
// large range does.
type slowRunner struct {
	chunks, rows int
	pause        time.Duration
}

func (s slowRunner) RunQuery(context.Context, audit.QueryScope, *audit.Query) (*audit.QueryResult, error) {
	return nil, audit.Errorf(audit.EUNAVAILABLE, "not used")
}

func (s slowRunner) ExportQuery(ctx context.Context, _ audit.QueryScope, _ *audit.Query, sink audit.QuerySink) (audit.QueryStats, error) {
	var st audit.QueryStats
	if err := sink.Columns([]audit.QueryColumn{{Name: "actor.id", Type: audit.FieldType("string")}}); err != nil {
		return st, err
	}
	for range s.chunks {
		for range s.rows {
			if err := sink.Row([]any{"someone@example.com"}, nil); err != nil {
				return st, err
			}
			st.Rows++
		}
		select {
		case <-time.After(s.pause):
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
	return st, nil
}

// TestExportOutlivesServerWriteTimeout: an export that streams for longer
// than the server's write timeout completes, with its row-count trailer,
// because every write gets its own deadline.
func TestExportOutlivesServerWriteTimeout(t *testing.T) {
	run := slowRunner{chunks: 6, rows: 5000, pause: 150 * time.Millisecond} // ≥ 900 ms of streaming
	s := startAPI(t, serverSetup{query: run, writeTimeout: 300 * time.Millisecond}, "a")
	a := s.do(t, "POST", "/v1/export", s.keys["a"], `{"q":"action:auth.login.success"}`)
	if a.status != http.StatusOK {
		t.Fatalf("export: %d %s", a.status, trunc(a.body))
	}
	if got := a.trailer.Get("X-Vigil-Rows"); got != "30000" {
		t.Fatalf("X-Vigil-Rows trailer %q after %d bytes, want 30000: the export was cut", got, len(trunc(a.body)))
	}
	if lines := strings.Count(a.body, "\n"); lines != 30001 {
		t.Fatalf("export has %d lines, want a header and 30000 rows", lines)
	}
}

// TestExportEndsAtMaxDuration: an export longer than the configured
// maximum ends early, without the trailer that marks a complete export.
func TestExportEndsAtMaxDuration(t *testing.T) {
	run := slowRunner{chunks: 100, rows: 5000, pause: 50 * time.Millisecond}
	s := startAPI(t, serverSetup{query: run, api: func(o *httpapi.Options) { o.MaxExportDuration = 200 * time.Millisecond }}, "a")
	a := s.do(t, "POST", "/v1/export", s.keys["a"], `{"q":"action:auth.login.success"}`)
	if a.status != http.StatusOK {
		t.Fatalf("export: %d %s", a.status, trunc(a.body))
	}
	if got := a.trailer.Get("X-Vigil-Rows"); got != "" {
		t.Fatalf("an export cut at its maximum duration carries X-Vigil-Rows %q", got)
	}
	if lines := strings.Count(a.body, "\n"); lines >= 500_001 {
		t.Fatalf("export has all %d lines; it should have been cut", lines)
	}
}

func trunc(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
