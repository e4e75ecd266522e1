package client_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
)

const testKey = "vgl_k1_s3cretvalue"

// fakeServer plays the HTTP API v1 contract closely enough for the SDK:
// auth, per-event results with idempotent dedupe on (tenant, id), cursor
// paging, error bodies with request ids, and injectable faults.
type fakeServer struct {
	*httptest.Server

	// fault, when set, runs before each authenticated request; n counts
	// requests to the same method and path from 1. Returning true means it
	// answered (an error, a dropped connection…).
	fault func(w http.ResponseWriter, r *http.Request, n int) bool
	// hold, when set, is waited on before an ingest request is handled.
	hold chan struct{}

	mu       sync.Mutex
	reqs     int
	counts   map[string]int
	stored   map[string]client.Event // by tenant + "/" + id
	order    []string                // keys of stored, in acceptance order
	attempts [][]string              // ids of every POST /v1/events body
	tenants  map[string]client.Tenant
	keys     map[string]client.Key
	findings map[string]client.Finding
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	s := startFake()
	t.Cleanup(s.Close)
	return s
}

// startFake starts a fake server; the caller closes it.
func startFake() *fakeServer {
	s := &fakeServer{
		counts:   map[string]int{},
		stored:   map[string]client.Event{},
		tenants:  map[string]client.Tenant{},
		keys:     map[string]client.Key{},
		findings: map[string]client.Finding{},
	}
	s.Server = httptest.NewServer(s)
	return s
}

func (s *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.reqs++
	rid := "req-" + strconv.Itoa(s.reqs)
	route := r.Method + " " + r.URL.Path
	if strings.HasPrefix(r.URL.Path, "/v1/events/") {
		route = r.Method + " /v1/events/{id}"
	}
	s.counts[route]++
	n := s.counts[route]
	fault := s.fault
	s.mu.Unlock()
	w.Header().Set("X-Request-Id", rid)

	switch r.URL.Path {
	case "/healthz", "/readyz":
		w.WriteHeader(http.StatusOK)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+testKey {
		writeError(w, http.StatusUnauthorized, "unauthenticated", "", "invalid api key", rid)
		return
	}
	if fault != nil && fault(w, r, n) {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/events", func(w http.ResponseWriter, r *http.Request) { s.ingest(w, r, rid) })
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) { s.search(w, r, rid) })
	mux.HandleFunc("GET /v1/events/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		e, ok := s.stored[tenantOf(r.URL.Query().Get("tenant"))+"/"+r.PathValue("id")]
		s.mu.Unlock()
		if !ok {
			writeError(w, http.StatusNotFound, "not_found", "", "event not found", rid)
			return
		}
		writeJSON(w, http.StatusOK, e)
	})
	mux.HandleFunc("POST /v1/tenants", func(w http.ResponseWriter, r *http.Request) {
		var in client.CreateTenantRequest
		if !decodeStrict(w, r, &in, rid) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.tenants[in.ID]; ok {
			writeError(w, http.StatusConflict, "conflict", "id", "tenant "+in.ID+" exists", rid)
			return
		}
		t := client.Tenant{ID: in.ID, Name: in.Name, RetentionDays: cmpOr(in.RetentionDays, 400), CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		s.tenants[in.ID] = t
		writeJSON(w, http.StatusCreated, t)
	})
	mux.HandleFunc("GET /v1/tenants", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		var ts []client.Tenant
		for _, t := range s.tenants {
			ts = append(ts, t)
		}
		slices.SortFunc(ts, func(a, b client.Tenant) int { return strings.Compare(a.ID, b.ID) })
		writeJSON(w, http.StatusOK, map[string]any{"tenants": ts})
	})
	mux.HandleFunc("GET /v1/tenants/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		t, ok := s.tenants[r.PathValue("id")]
		if !ok {
			writeError(w, http.StatusNotFound, "not_found", "", "tenant not found", rid)
			return
		}
		writeJSON(w, http.StatusOK, t)
	})
	mux.HandleFunc("POST /v1/keys", func(w http.ResponseWriter, r *http.Request) {
		var in client.CreateKeyRequest
		if !decodeStrict(w, r, &in, rid) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		id := "k" + strconv.Itoa(len(s.keys)+2)
		k := client.Key{ID: id, Tenant: tenantOf(in.Tenant), Name: in.Name, Scopes: in.Scopes, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		s.keys[id] = k
		writeJSON(w, http.StatusCreated, map[string]any{"key": k, "secret": "vgl_" + id + "_topsecret"})
	})
	mux.HandleFunc("GET /v1/keys", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		var ks []client.Key
		for _, k := range s.keys {
			if k.Tenant == tenantOf(r.URL.Query().Get("tenant")) {
				ks = append(ks, k)
			}
		}
		slices.SortFunc(ks, func(a, b client.Key) int { return strings.Compare(a.ID, b.ID) })
		writeJSON(w, http.StatusOK, map[string]any{"keys": ks})
	})
	mux.HandleFunc("DELETE /v1/keys/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		k, ok := s.keys[r.PathValue("id")]
		if !ok {
			writeError(w, http.StatusNotFound, "not_found", "", "key not found", rid)
			return
		}
		now := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
		k.RevokedAt = &now
		s.keys[k.ID] = k
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/findings", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		var fs []client.Finding
		for _, f := range s.findings {
			if sev := r.URL.Query().Get("severity"); sev == "" || rank(f.Severity) >= rank(sev) {
				fs = append(fs, f)
			}
		}
		slices.SortFunc(fs, func(a, b client.Finding) int { return strings.Compare(b.ID, a.ID) })
		page, next := pageOf(fs, r, 2)
		writeJSON(w, http.StatusOK, client.FindingPage{Findings: page, NextCursor: next})
	})
	mux.HandleFunc("GET /v1/findings/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		f, ok := s.findings[r.PathValue("id")]
		if !ok {
			writeError(w, http.StatusNotFound, "not_found", "", "finding not found", rid)
			return
		}
		var ev []client.Event
		for _, id := range f.Evidence {
			ev = append(ev, s.stored[f.Tenant+"/"+id])
		}
		writeJSON(w, http.StatusOK, client.FindingDetail{Finding: f, Evidence: ev})
	})
	mux.HandleFunc("PATCH /v1/findings/{id}", func(w http.ResponseWriter, r *http.Request) {
		var u client.FindingUpdate
		if !decodeStrict(w, r, &u, rid) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		f, ok := s.findings[r.PathValue("id")]
		if !ok {
			writeError(w, http.StatusNotFound, "not_found", "", "finding not found", rid)
			return
		}
		f.Status, f.Note = u.Status, u.Note
		s.findings[f.ID] = f
		writeJSON(w, http.StatusOK, f)
	})
	mux.HandleFunc("POST /v1/risk", func(w http.ResponseWriter, r *http.Request) {
		var e client.Event
		if !decodeStrict(w, r, &e, rid) {
			return
		}
		writeJSON(w, http.StatusOK, client.Risk{Score: 72, Reasons: []string{"new_country"}, Decision: client.DecisionChallenge})
	})
	mux.ServeHTTP(w, r)
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func rank(sev string) int {
	return slices.Index([]string{client.SeverityLow, client.SeverityMedium, client.SeverityHigh, client.SeverityCritical}, sev)
}

// tenantOf is the fake's key model: the test key is an operator key; a
// missing tenant means "acme".
func tenantOf(t string) string {
	if t == "" {
		return "acme"
	}
	return t
}

func (s *fakeServer) ingest(w http.ResponseWriter, r *http.Request, rid string) {
	if s.hold != nil {
		<-s.hold
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, client.MaxRequestBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", "", "body too large", rid)
		return
	}
	var raws []json.RawMessage
	switch {
	case r.Header.Get("Content-Type") == "application/x-ndjson":
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
				raws = append(raws, slices.Clone(line))
			}
		}
	case len(bytes.TrimSpace(body)) > 0 && bytes.TrimSpace(body)[0] == '[':
		if err := json.Unmarshal(body, &raws); err != nil {
			writeError(w, http.StatusBadRequest, "invalid", "", "body: "+err.Error(), rid)
			return
		}
	default:
		raws = []json.RawMessage{body}
	}
	res := client.IngestResult{Results: []client.EventResult{}}
	var ids []string
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, raw := range raws {
		var e client.Event
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		err := dec.Decode(&e)
		ids = append(ids, e.ID)
		reject := func(code, field, msg string) {
			res.Rejected++
			res.Results = append(res.Results, client.EventResult{Index: i, Status: client.StatusRejected,
				Error: &client.ErrorBody{Code: code, Field: field, Message: msg}})
		}
		switch {
		case err != nil:
			reject("invalid", "", fmt.Sprintf("event %d: %v", i, err))
			continue
		case len(raw) > client.MaxEventBytes:
			reject("too_large", "", "event too large")
			continue
		case e.Actor.ID == "":
			reject("invalid", "actor.id", "actor.id is required for "+e.Action)
			continue
		}
		if e.ID == "" {
			e.ID = fmt.Sprintf("srv%04d", len(s.order))
		}
		e.Tenant = tenantOf(e.Tenant)
		key := e.Tenant + "/" + e.ID
		if _, dup := s.stored[key]; dup {
			res.Duplicates++
			res.Results = append(res.Results, client.EventResult{Index: i, Status: client.StatusDuplicate, ID: e.ID})
			continue
		}
		e.ReceivedAt = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		s.stored[key] = e
		s.order = append(s.order, key)
		res.Accepted++
		res.Results = append(res.Results, client.EventResult{Index: i, Status: client.StatusAccepted, ID: e.ID})
	}
	s.attempts = append(s.attempts, ids)
	if res.Rejected == len(raws) && len(raws) > 0 {
		first := res.Results[0].Error
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"accepted": 0, "duplicates": 0, "rejected": res.Rejected, "results": res.Results,
			"error": map[string]string{"code": first.Code, "field": first.Field, "message": first.Message, "request_id": rid},
		})
		return
	}
	writeJSON(w, http.StatusAccepted, res)
}

func (s *fakeServer) search(w http.ResponseWriter, r *http.Request, rid string) {
	q := r.URL.Query()
	s.mu.Lock()
	var evs []client.Event
	for _, k := range s.order {
		e := s.stored[k]
		if a := q.Get("action"); a != "" && !(e.Action == a || strings.HasSuffix(a, ".*") && strings.HasPrefix(e.Action, strings.TrimSuffix(a, "*"))) {
			continue
		}
		if t := q.Get("tenant"); t != "" && e.Tenant != t {
			continue
		}
		evs = append(evs, e)
	}
	s.mu.Unlock()
	slices.SortStableFunc(evs, func(a, b client.Event) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	limit := 100
	if l := q.Get("limit"); l != "" {
		var err error
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 || limit > 1000 {
			writeError(w, http.StatusBadRequest, "invalid", "limit", "limit must be 1-1000", rid)
			return
		}
	}
	page, next := pageOf(evs, r, limit)
	writeJSON(w, http.StatusOK, client.EventPage{Events: page, NextCursor: next})
}

// pageOf pages items by an offset cursor "o<N>".
func pageOf[T any](items []T, r *http.Request, limit int) ([]T, string) {
	off := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		off, _ = strconv.Atoi(strings.TrimPrefix(c, "o"))
	}
	off = min(off, len(items))
	end := min(off+limit, len(items))
	next := ""
	if end < len(items) {
		next = "o" + strconv.Itoa(end)
	}
	return items[off:end], next
}

// setFault installs (or, with nil, removes) a fault hook.
func (s *fakeServer) setFault(f func(w http.ResponseWriter, r *http.Request, n int) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// handlerTransport serves requests in memory with the fake's handler, for
// tests inside a testing/synctest bubble, where real sockets would keep
// the fake clock from advancing.
type handlerTransport struct{ h http.Handler }

func (ht handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	ht.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func (s *fakeServer) storedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.stored)
}

func (s *fakeServer) attemptIDs() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attempts)
}

func (s *fakeServer) count(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[route]
}

func decodeStrict(w http.ResponseWriter, r *http.Request, v any, rid string) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid", "", "body: "+err.Error(), rid)
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, field, msg, rid string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "field": field, "message": msg, "request_id": rid}})
}

// replyError answers with an API error and an optional Retry-After.
func replyError(w http.ResponseWriter, status int, code, retryAfter string) {
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	writeError(w, status, code, "", "try later", w.Header().Get("X-Request-Id"))
}

// dropConn closes the connection without an answer, after reading the
// request, so the request may or may not have taken effect.
func dropConn(t *testing.T, w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	conn.Close()
}

// sleepRecorder stands in for the client's wait between attempts.
type sleepRecorder struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.delays = append(s.delays, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRecorder) get() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.delays)
}

// newClient returns a client for s with the test key, recorded sleeps and
// a jitter that always draws the ceiling minus one nanosecond.
func newClient(t *testing.T, s *fakeServer, opts ...client.Option) (*client.Client, *sleepRecorder) {
	t.Helper()
	rec := &sleepRecorder{}
	base := []client.Option{
		client.WithAPIKey(testKey),
		client.WithSleep(rec.sleep),
		client.WithJitter(func(n int64) int64 { return n - 1 }),
		client.WithRetry(5, 100*time.Millisecond, 2*time.Second),
	}
	c, err := client.New(s.URL, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

func loginFailure(actor string, at time.Time) client.Event {
	return client.Event{
		Time:    at,
		Action:  client.ActionLoginFailure,
		Reason:  "invalid_password",
		Actor:   client.Actor{ID: actor},
		Context: client.Context{IP: "203.0.113.7", UserAgent: "curl/8.5"},
	}
}
