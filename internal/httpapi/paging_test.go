package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpapi"
	"github.com/vigilhq/vigil/internal/ingest"
	"github.com/vigilhq/vigil/internal/memstream"
	"github.com/vigilhq/vigil/internal/query"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// pagingServer serves the API over a real SQLite store holding two events,
// two findings and two incidents in each of tenant-a and tenant-b, so every
// listing has a second page.
type pagingServer struct {
	api                    *httpapi.API
	db                     *sqlite.DB
	url                    string
	keyA, keyB, keyOp, sec string
}

func startPagingServer(t *testing.T) *pagingServer {
	t.Helper()
	ctx := t.Context()
	db, err := sqlite.Open(ctx, sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := memstream.New(memstream.Options{})
	svc, err := ingest.New(ingest.Options{Stream: st, TenantExists: func(context.Context, string) (bool, error) { return true, nil }})
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(httpapi.Options{Ingest: svc, Events: db.Events(), Stream: st, Tenants: db, Keys: db, Findings: db, Incidents: db,
		Rules: db, Query: query.NewRunner(db.Events(), query.Options{}), CursorSecret: []byte("test-secret")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	now := time.Now().UTC()
	at := now.Add(-time.Hour).Truncate(time.Second)
	for _, tn := range []string{"tenant-a", "tenant-b"} {
		if err := db.CreateTenant(ctx, audit.Tenant{ID: tn, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			ts := at.Add(time.Duration(i) * time.Minute)
			ev := audit.Event{ID: fmt.Sprintf("e-%d", i), Tenant: tn, Time: ts, ReceivedAt: ts, Action: audit.ActionLoginSuccess,
				Outcome: audit.OutcomeSuccess, Actor: audit.Actor{ID: "alice"}, Context: audit.Context{IP: netip.MustParseAddr("203.0.113.7")}}
			if err := db.Events().InsertEvents(ctx, []audit.Event{ev}); err != nil {
				t.Fatal(err)
			}
			f := audit.Finding{ID: fmt.Sprintf("f-%d", i), Tenant: tn, RuleID: "brute-force", Severity: audit.SeverityHigh, Status: audit.StatusOpen,
				GroupKey: "alice", ActorID: "alice", Evidence: []string{ev.ID}, Count: 1, FirstSeen: ts, LastSeen: ts, CreatedAt: ts, UpdatedAt: ts,
				IncidentID: fmt.Sprintf("inc-%d", i)}
			if err := db.UpsertFindings(ctx, []audit.Finding{f}); err != nil {
				t.Fatal(err)
			}
			in := audit.Incident{ID: f.IncidentID, Tenant: tn, Status: audit.StatusOpen, Severity: audit.SeverityHigh, HeadlineRule: "brute-force",
				Family: "brute-force", Findings: []string{f.ID}, FindingCount: 1, FirstSeen: ts, LastSeen: ts}
			if err := db.UpsertIncidents(ctx, []audit.Incident{in}); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := &pagingServer{api: api, db: db, url: srv.URL}
	if _, s.keyA, err = audit.MintKey(ctx, db, "tenant-a", "a", []audit.Scope{audit.ScopeAdmin}, now); err != nil {
		t.Fatal(err)
	}
	if _, s.keyB, err = audit.MintKey(ctx, db, "tenant-b", "b", []audit.Scope{audit.ScopeAdmin}, now); err != nil {
		t.Fatal(err)
	}
	if _, s.keyOp, err = audit.MintKey(ctx, db, "", "op", []audit.Scope{audit.ScopeAdmin}, now); err != nil {
		t.Fatal(err)
	}
	return s
}

// page is one answer of a paged route.
type page struct {
	status int
	body   []byte
	next   string
	ids    []string
	err    struct {
		Code, Field, Message string
	}
}

func (s *pagingServer) get(t *testing.T, method, path, key string) page {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var pg page
	pg.status = resp.StatusCode
	var doc map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	pg.body, _ = json.Marshal(doc)
	_ = json.Unmarshal(doc["next_cursor"], &pg.next)
	if e, ok := doc["error"]; ok {
		_ = json.Unmarshal(e, &pg.err)
	}
	for k, v := range doc {
		var items []struct {
			ID     string `json:"id"`
			Tenant string `json:"tenant"`
		}
		if k != "error" && json.Unmarshal(v, &items) == nil {
			for _, it := range items {
				pg.ids = append(pg.ids, it.Tenant+"/"+it.ID)
			}
		}
	}
	return pg
}

func withQuery(path, q string) string {
	if strings.Contains(path, "?") {
		return path + "&" + q
	}
	return path + "?" + q
}

// TestMalformedCursorIsRefusedOnEveryRoute drives every route of the
// router's table. A paged route answers 400 invalid on the cursor parameter
// for a cursor it did not give to this tenant — malformed, altered, the
// store's own unsealed form, another listing's, another tenant's, an
// all-tenant one used for one tenant — and follows its own to the second
// page. Every other route refuses a cursor parameter outright. Before, a
// malformed cursor could answer a first page, and an altered or foreign
// one that still decoded answered some page of this tenant.
func TestMalformedCursorIsRefusedOnEveryRoute(t *testing.T) {
	s := startPagingServer(t)
	paged := s.api.PagedRoutes()
	if len(paged) < 3 {
		t.Fatalf("paged routes %v; want at least events, findings, incidents", paged)
	}
	// first pages, one per paged route and caller
	type caller struct{ name, key, query string }
	callers := []caller{{"tenant-a", s.keyA, ""}, {"tenant-b", s.keyB, ""}, {"operator for tenant-a", s.keyOp, "tenant=tenant-a"}, {"operator for all", s.keyOp, ""}}
	first := map[string]map[string]string{} // route → caller → next cursor
	for _, route := range paged {
		method, path, _ := strings.Cut(route, " ")
		first[route] = map[string]string{}
		for _, c := range callers {
			p := withQuery(path, "limit=1")
			if c.query != "" {
				p = withQuery(p, c.query)
			}
			pg := s.get(t, method, p, c.key)
			if pg.status != http.StatusOK || pg.next == "" || len(pg.ids) != 1 {
				t.Fatalf("%s as %s: %d %s; want one item and a next cursor", route, c.name, pg.status, pg.body)
			}
			first[route][c.name] = pg.next
			// Its own cursor leads to the second page.
			pg2 := s.get(t, method, withQuery(p, "cursor="+pg.next), c.key)
			if pg2.status != http.StatusOK || len(pg2.ids) != 1 || pg2.ids[0] == pg.ids[0] {
				t.Errorf("%s as %s, second page: %d %s", route, c.name, pg2.status, pg2.body)
			}
		}
	}
	rawStore, err := s.db.SearchFindings(t.Context(), audit.FindingFilter{Tenant: "tenant-a", Limit: 1})
	if err != nil || rawStore.Next == "" {
		t.Fatal(rawStore, err)
	}
	for _, route := range paged {
		method, path, _ := strings.Cut(route, " ")
		own := first[route]["tenant-a"]
		altered := []byte(own)
		altered[len(altered)/2] ^= 0x01
		if altered[len(altered)/2] == '.' || altered[len(altered)/2] == '/' {
			altered[len(altered)/2] = 'A'
		}
		other := paged[(slices.Index(paged, route)+1)%len(paged)]
		cases := []struct{ name, key, query, cursor string }{
			{"malformed", s.keyA, "", "!!not-a-cursor"},
			{"too long", s.keyA, "", strings.Repeat("A", 4096)},
			{"altered", s.keyA, "", string(altered)},
			{"store's unsealed form", s.keyA, "", rawStore.Next},
			{"another listing's", s.keyA, "", first[other]["tenant-a"]},
			{"another tenant's", s.keyA, "", first[route]["tenant-b"]},
			{"operator all-tenant cursor for one tenant", s.keyOp, "tenant=tenant-a", first[route]["operator for all"]},
			{"operator one-tenant cursor for all", s.keyOp, "", first[route]["operator for tenant-a"]},
		}
		for _, c := range cases {
			p := withQuery(path, "limit=1&cursor="+c.cursor)
			if c.query != "" {
				p = withQuery(p, c.query)
			}
			pg := s.get(t, method, p, c.key)
			if pg.status != http.StatusBadRequest || pg.err.Code != audit.EINVALID || pg.err.Field != "cursor" || !strings.Contains(pg.err.Message, "cursor") {
				t.Errorf("%s with %s cursor: %d %s; want 400 invalid on field cursor", route, c.name, pg.status, pg.body)
			}
		}
	}
	// A route that does not page refuses the parameter instead of ignoring it.
	fill := strings.NewReplacer("{id}", "x", "{ip}", "203.0.113.7", "{rule}", "brute-force", "{kind}", "ip", "{value...}", "x")
	for route, scope := range s.api.Routes() {
		if scope == "" || slices.Contains(paged, route) {
			continue // open routes take no key and no parameters
		}
		method, path, _ := strings.Cut(route, " ")
		pg := s.get(t, method, withQuery(fill.Replace(path), "cursor=x"), s.keyA)
		if pg.status != http.StatusBadRequest || pg.err.Field != "cursor" {
			t.Errorf("%s?cursor=x: %d %s; want 400 on field cursor", route, pg.status, pg.body)
		}
	}
}
