package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpapi"
	"github.com/vigilhq/vigil/internal/ingest"
	"github.com/vigilhq/vigil/internal/memstream"
	"github.com/vigilhq/vigil/internal/query"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// failingStream is a real in-memory stream whose appends of the server's
// own vigil.* records can be made to fail, as a full disk would.
type failingStream struct {
	*memstream.Stream
	fail atomic.Bool
}

func (s *failingStream) Append(ctx context.Context, evs []*audit.Event) ([]audit.AppendResult, error) {
	if s.fail.Load() && len(evs) > 0 && strings.HasPrefix(evs[0].Action, "vigil.") {
		return nil, audit.Errorf(audit.EUNAVAILABLE, "disk full")
	}
	return s.Stream.Append(ctx, evs)
}

// records returns the vigil.* records appended so far.
func (s *failingStream) records(t *testing.T) []audit.Event {
	t.Helper()
	recs, err := s.Read(t.Context(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Event
	for _, r := range recs {
		if strings.HasPrefix(r.Event.Action, "vigil.") {
			out = append(out, r.Event)
		}
	}
	return out
}

type auditServer struct {
	url              string
	stream           *failingStream
	tenant, operator string
	logs             *bytes.Buffer
}

// startAuditServer serves the API over a real SQLite store holding one
// event and one finding of tenant-a (whose actor is an e-mail address and
// whose IP is 203.0.113.7), with tenant-b beside it. Logs at Info go to
// logs.
func startAuditServer(t *testing.T) *auditServer {
	t.Helper()
	ctx := t.Context()
	db, err := sqlite.Open(ctx, sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := &failingStream{Stream: memstream.New(memstream.Options{})}
	svc, err := ingest.New(ingest.Options{Stream: st, TenantExists: func(context.Context, string) (bool, error) { return true, nil }})
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	api, err := httpapi.New(httpapi.Options{Ingest: svc, Events: db.Events(), Stream: st, Tenants: db, Keys: db, Findings: db, Rules: db,
		Query: query.NewRunner(db.Events(), query.Options{}), Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	now := time.Now().UTC()
	for _, tn := range []string{"tenant-a", "tenant-b"} {
		if err := db.CreateTenant(ctx, audit.Tenant{ID: tn, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	at := now.Add(-time.Hour).Truncate(time.Second)
	ev := audit.Event{ID: "e-1", Tenant: "tenant-a", Time: at, ReceivedAt: at, Action: audit.ActionLoginSuccess, Outcome: audit.OutcomeSuccess,
		Actor: audit.Actor{ID: "alice@example.com"}, Context: audit.Context{IP: netip.MustParseAddr("203.0.113.7"), SessionID: "s-1"}}
	if err := db.Events().InsertEvents(ctx, []audit.Event{ev}); err != nil {
		t.Fatal(err)
	}
	f := audit.Finding{ID: "f-1", Tenant: "tenant-a", RuleID: "brute-force", Severity: audit.SeverityHigh, Status: audit.StatusOpen,
		GroupKey: "alice@example.com", ActorID: "alice@example.com", IP: "203.0.113.7", Evidence: []string{"e-1"}, Count: 1,
		FirstSeen: at, LastSeen: at, CreatedAt: at, UpdatedAt: at}
	if err := db.UpsertFindings(ctx, []audit.Finding{f}); err != nil {
		t.Fatal(err)
	}
	s := &auditServer{url: srv.URL, stream: st, logs: logs}
	if _, s.tenant, err = audit.MintKey(ctx, db, "tenant-a", "t", []audit.Scope{audit.ScopeAdmin}, now); err != nil {
		t.Fatal(err)
	}
	if _, s.operator, err = audit.MintKey(ctx, db, "", "op", []audit.Scope{audit.ScopeAdmin}, now); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *auditServer) do(t *testing.T, method, path, key, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// readRoutes is every read of the log with the route its record names.
var readRoutes = []struct{ route, method, path, body string }{
	{"GET /v1/events", "GET", "/v1/events", ""},
	{"GET /v1/events/{id}", "GET", "/v1/events/e-1", ""},
	{"POST /v1/query", "POST", "/v1/query", `{"q":"time:>=-1d"}`},
	{"POST /v1/export", "POST", "/v1/export", `{"q":"time:>=-1d","format":"ndjson"}`},
	{"GET /v1/actors/{id}", "GET", "/v1/actors/alice@example.com", ""},
	{"GET /v1/sessions/{id}", "GET", "/v1/sessions/s-1", ""},
	{"GET /v1/ips/{ip}", "GET", "/v1/ips/203.0.113.7", ""},
	{"GET /v1/findings", "GET", "/v1/findings", ""},
	{"GET /v1/findings/{id}", "GET", "/v1/findings/f-1", ""},
}

// TestReadsAreAuditedBeforeAnswering: every read of the log has its
// vigil.search / vigil.export record durably appended before the answer is
// sent (it is in the stream when the answer arrives), and a read whose
// record cannot be appended fails with 503 and answers nothing. Before,
// GET /v1/events/{id} and the findings reads were not audited, and the
// searches answered first and appended afterwards, so a failed append
// still left the answer with the reader.
func TestReadsAreAuditedBeforeAnswering(t *testing.T) {
	s := startAuditServer(t)
	for _, rr := range readRoutes {
		before := len(s.stream.records(t))
		status, h, body := s.do(t, rr.method, rr.path, s.tenant, rr.body)
		if status != http.StatusOK {
			t.Errorf("%s: %d %s", rr.route, status, body)
			continue
		}
		recs := s.stream.records(t)
		if len(recs) != before+1 {
			t.Errorf("%s: %d records appended by the time the answer arrived, want 1", rr.route, len(recs)-before)
			continue
		}
		rec := recs[len(recs)-1]
		if rec.Tenant != "tenant-a" || rec.Metadata["route"] != rr.route || rec.Metadata["request_id"] != h.Get("X-Request-Id") || rec.Actor.Type != audit.ActorAPIKey {
			t.Errorf("%s: record %+v", rr.route, rec)
		}
	}

	s.stream.fail.Store(true)
	for _, rr := range readRoutes {
		status, _, body := s.do(t, rr.method, rr.path, s.tenant, rr.body)
		if status != http.StatusServiceUnavailable || bytes.Contains(body, []byte("alice")) {
			t.Errorf("%s with the audit append failing: %d %s, want 503 and no data", rr.route, status, body)
		}
	}
}

// TestOperatorAllTenantReadAudit: an operator's read across every tenant
// is recorded durably in every tenant, one record each, carrying the
// digest of the query and not its text (which here names tenant-a's user);
// nothing of the query reaches the Info log. Before, such a read was only
// logged, at Info, with the query text.
func TestOperatorAllTenantReadAudit(t *testing.T) {
	s := startAuditServer(t)
	for _, path := range []string{"/v1/events?actor=alice@example.com&ip=203.0.113.7", "/v1/findings?actor=alice@example.com"} {
		before := len(s.stream.records(t))
		status, _, body := s.do(t, "GET", path, s.operator, "")
		if status != http.StatusOK || !bytes.Contains(body, []byte("alice@example.com")) {
			t.Fatalf("GET %s: %d %s", path, status, body)
		}
		recs := s.stream.records(t)[before:]
		tenants := map[string]bool{}
		for _, r := range recs {
			tenants[r.Tenant] = true
			b, _ := json.Marshal(r)
			if r.Metadata["scope"] != "all_tenants" || r.Metadata["query_sha256"] == nil || r.Metadata["query"] != nil ||
				bytes.Contains(b, []byte("alice")) || bytes.Contains(b, []byte("203.0.113.7")) {
				t.Errorf("GET %s: record %s", path, b)
			}
		}
		if len(recs) != 2 || !tenants["tenant-a"] || !tenants["tenant-b"] {
			t.Errorf("GET %s: records %+v, want one in each tenant", path, recs)
		}
	}
	for _, leak := range []string{"alice", "203.0.113.7"} {
		if strings.Contains(s.logs.String(), leak) {
			t.Errorf("the log holds %q:\n%s", leak, s.logs.String())
		}
	}
}
