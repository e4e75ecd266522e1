package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/config"
)

// node is a Vigil server running in-process on 127.0.0.1:0 with its
// embedded store in a temporary directory.
type node struct {
	app      *app.App
	url      string
	operator string
	op       *client.Client
	// stopOnce stops the node (Run returns); cleanup calls it too.
	stopOnce func(t *testing.T)
	// runDone is closed when Run has returned runErr; stoppedItself says a
	// test saw Run stop on its own (done) and checked why.
	runDone       chan struct{}
	runErr        error
	stoppedItself bool
}

// done returns a channel that yields Run's error once Run has returned on
// its own (a node that lost its active role); the test checks it.
func (n *node) done() <-chan error {
	out := make(chan error, 1)
	select {
	case <-n.runDone:
		n.stoppedItself = true
		out <- n.runErr
	default:
	}
	return out
}

// stop shuts the node down before the test ends.
func (n *node) stop(t *testing.T) { n.stopOnce(t) }

func startNode(t *testing.T, edit ...func(*config.Config)) *node {
	t.Helper()
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Storage.SQLite.Dir = t.TempDir()
	cfg.Log.Level = "warn"
	for _, e := range edit {
		e(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.Options{Stderr: io.Discard})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	n := &node{runDone: make(chan struct{})}
	go func() {
		n.runErr = a.Run(ctx)
		close(n.runDone)
	}()
	var once sync.Once
	stop := func(t *testing.T) {
		once.Do(func() {
			cancel()
			<-n.runDone
			if n.runErr != nil && !n.stoppedItself {
				t.Errorf("app.Run: %v", n.runErr)
			}
		})
	}
	t.Cleanup(func() { stop(t) })
	n.app, n.url, n.operator, n.stopOnce = a, "http://"+a.Addr(), a.BootstrapKey, stop
	if n.operator == "" {
		t.Fatal("no bootstrap operator key on first start")
	}
	if n.op, err = client.New(n.url, client.WithAPIKey(n.operator)); err != nil {
		t.Fatal(err)
	}
	return n
}

// tenantClient creates a tenant and a key with every scope for it.
func (n *node) tenantClient(t *testing.T, tenant string, scopes ...string) (*client.Client, string) {
	t.Helper()
	ctx := t.Context()
	if _, err := n.op.CreateTenant(ctx, client.CreateTenantRequest{ID: tenant}); err != nil && !errors.Is(err, client.ErrConflict) {
		t.Fatal(err)
	}
	if len(scopes) == 0 {
		scopes = []string{"events:write", "events:read", "findings:read", "findings:write", "rules:write", "admin"}
	}
	ck, err := n.op.CreateKey(ctx, client.CreateKeyRequest{Tenant: tenant, Name: "test", Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(n.url, client.WithAPIKey(string(ck.Secret)))
	if err != nil {
		t.Fatal(err)
	}
	return c, string(ck.Secret)
}

// waitForEvents polls until a search returns want events. Read-audit
// records (vigil.search, which every search adds to the reader's tenant)
// are not counted.
func waitForEvents(t *testing.T, c *client.Client, p client.SearchParams, want int) []client.Event {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got []client.Event
		for e, err := range c.Events(t.Context(), p) {
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(e.Action, "vigil.") {
				got = append(got, e)
			}
		}
		if len(got) >= want || time.Now().After(deadline) {
			if len(got) != want {
				t.Fatalf("search %+v: %d events, want %d", p, len(got), want)
			}
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testBoundary separates the parts of the multipart bodies mappedBody
// builds; raw sends a body that starts with it as multipart/form-data.
const testBoundary = "vigil-test-boundary"

// mappedBody is the multipart body of a mapped import (POST
// /v1/import/csv|ndjson): the mapping part, then the file part.
func mappedBody(mapping, file string) string {
	return "--" + testBoundary + "\r\nContent-Disposition: form-data; name=\"mapping\"\r\n\r\n" + mapping +
		"\r\n--" + testBoundary + "\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n" + file +
		"\r\n--" + testBoundary + "--\r\n"
}

// raw sends one request with a key and returns the status and body.
func raw(t *testing.T, method, url, key, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	switch {
	case strings.HasPrefix(body, "--"+testBoundary):
		req.Header.Set("Content-Type", "multipart/form-data; boundary="+testBoundary)
	case body != "":
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func login(actor, ip string, at time.Time) client.Event {
	return client.Event{
		Action: "auth.login.success", Time: at, Actor: client.Actor{ID: actor},
		Context: client.Context{IP: ip, UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", AuthMethod: "password", SessionID: "s-" + actor},
	}
}

func TestEndToEndIngestAndSearch(t *testing.T) { testEndToEndIngestAndSearch(t) }

// TestEndToEndIngestAndSearchPostgres is TestEndToEndIngestAndSearch on the PostgreSQL store.
func TestEndToEndIngestAndSearchPostgres(t *testing.T) { testEndToEndIngestAndSearch(t, onPostgres(t)) }

func testEndToEndIngestAndSearch(t *testing.T, edit ...func(*config.Config)) {
	n := startNode(t, edit...)
	c, _ := n.tenantClient(t, "acme")
	ctx := t.Context()
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)

	var events []client.Event
	for i := range 30 {
		events = append(events, client.Event{
			Action: "auth.login.failure", Time: base.Add(time.Duration(i) * time.Second), Reason: "invalid_password",
			Actor: client.Actor{ID: fmt.Sprintf("user%d@example.com", i%10)}, Context: client.Context{IP: fmt.Sprintf("203.0.113.%d", i%3)},
			Metadata: map[string]any{"note": fmt.Sprintf("attempt-%d", i)},
		})
	}
	events = append(events, login("alice", "198.51.100.7", base.Add(time.Minute)))
	res, err := c.Send(ctx, events...)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 31 || res.Rejected != 0 {
		t.Fatalf("send: %+v", res)
	}

	all := waitForEvents(t, c, client.SearchParams{}, 31)
	for i := 1; i < len(all); i++ {
		if all[i].Time.After(all[i-1].Time) {
			t.Fatal("results are not newest first")
		}
	}
	waitForEvents(t, c, client.SearchParams{Actor: "user3@example.com"}, 3)
	waitForEvents(t, c, client.SearchParams{IP: "203.0.113.0/30"}, 30)
	waitForEvents(t, c, client.SearchParams{IP: "203.0.113.1"}, 10)
	waitForEvents(t, c, client.SearchParams{Action: "auth.*"}, 31)
	waitForEvents(t, c, client.SearchParams{Action: "auth.login.success"}, 1)
	waitForEvents(t, c, client.SearchParams{Outcome: "failure", Session: ""}, 30)
	waitForEvents(t, c, client.SearchParams{Session: "s-alice"}, 1)
	waitForEvents(t, c, client.SearchParams{Query: "attempt-17"}, 1)
	waitForEvents(t, c, client.SearchParams{Since: base.Add(10 * time.Second), Until: base.Add(20 * time.Second)}, 10)
	// Paging with a small limit walks every event exactly once.
	seen := map[string]bool{}
	for e, err := range c.Events(ctx, client.SearchParams{Limit: 7}) {
		if err != nil {
			t.Fatal(err)
		}
		if seen[e.ID] {
			t.Fatalf("event %s returned twice while paging", e.ID)
		}
		seen[e.ID] = !strings.HasPrefix(e.Action, "vigil.")
	}
	if n := countTrue(seen); n != 31 {
		t.Fatalf("paging saw %d events", n)
	}
	got, err := c.GetEvent(ctx, all[0].ID)
	if err != nil || got.ID != all[0].ID {
		t.Fatalf("get event: %v %+v", err, got)
	}
	if _, err := c.GetEvent(ctx, "no-such-event"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("missing event: %v", err)
	}
}

func TestIngestAnswers(t *testing.T) {
	n := startNode(t)
	_, key := n.tenantClient(t, "acme")
	url := n.url + "/v1/events"

	// A mixed batch stores exactly its good events.
	status, body := raw(t, "POST", url, key, `[
		{"id":"ok-1","action":"auth.password.changed","actor":{"id":"u1"}},
		{"id":"bad-1","action":"auth.login.success","actor":{"id":"u1"},"context":{"ip":"203.0.113.9","user_agent":"x","session_id":"s"}},
		{"id":"ok-2","action":"user.email.changed","actor":{"id":"u1"},"target":{"id":"u1"}}]`)
	if status != http.StatusAccepted {
		t.Fatalf("mixed batch: %d %s", status, body)
	}
	var res struct {
		Accepted, Rejected int
		Results            []struct {
			Status string
			Error  *struct{ Code, Field, Message string }
		}
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 2 || res.Rejected != 1 || res.Results[1].Error.Field != "context.auth_method" ||
		res.Results[1].Error.Message != "context.auth_method is required for auth.login.success" {
		t.Fatalf("mixed batch answer: %s", body)
	}
	// Retrying the same batch duplicates nothing.
	_, body = raw(t, "POST", url, key, `[{"id":"ok-1","action":"auth.password.changed","actor":{"id":"u1"}}]`)
	if !bytes.Contains(body, []byte(`"status":"duplicate"`)) {
		t.Fatalf("retry: %s", body)
	}
	// A single bad event is a 400 naming the field.
	status, body = raw(t, "POST", url, key, `{"action":"auth.mfa.removed","actor":{"id":"u1"}}`)
	if status != http.StatusBadRequest || !bytes.Contains(body, []byte(`"field":"metadata.factor"`)) {
		t.Fatalf("single bad event: %d %s", status, body)
	}
	// An unparseable body is a 400 saying where.
	status, body = raw(t, "POST", url, key, `{"action": nope}`)
	if status != http.StatusBadRequest || !bytes.Contains(body, []byte("column")) {
		t.Fatalf("garbage: %d %s", status, body)
	}
	// NDJSON works.
	req, _ := http.NewRequest("POST", url, strings.NewReader("{\"action\":\"a.b\",\"actor\":{\"id\":\"x\"}}\n{\"action\":\"a.c\",\"actor\":{\"id\":\"x\"}}\n"))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("ndjson: %d", resp.StatusCode)
	}
	// Over the body cap: 413.
	big := `[` + strings.Repeat(`{"action":"a.b","actor":{"id":"x"},"metadata":{"pad":"`+strings.Repeat("p", 4000)+`"}},`, 4500) + `{"action":"a.b"}]`
	status, _ = raw(t, "POST", url, key, big)
	if status != http.StatusRequestEntityTooLarge {
		t.Fatalf("huge body: %d", status)
	}
	// No key, bad key, revoked key: 401. Missing scope: 403.
	if status, _ = raw(t, "POST", url, "", `{}`); status != http.StatusUnauthorized {
		t.Fatalf("no key: %d", status)
	}
	if status, _ = raw(t, "POST", url, "vgl_0123456789abcdef_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", `{}`); status != http.StatusUnauthorized {
		t.Fatalf("bad key: %d", status)
	}
	_, readOnly := n.tenantClient(t, "acme", "events:read")
	if status, _ = raw(t, "POST", url, readOnly, `{"action":"a.b","actor":{"id":"x"}}`); status != http.StatusForbidden {
		t.Fatalf("read-only key writing: %d", status)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	n := startNode(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := raw(t, "GET", n.url+path, "", ""); status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, status, body)
		}
	}
	_, key := n.tenantClient(t, "acme")
	raw(t, "POST", n.url+"/v1/events", key, `[{"action":"a.b","actor":{"id":"x"}},{"action":"bad"}]`)
	_, body := raw(t, "GET", n.url+"/metrics", "", "")
	for _, want := range []string{
		`vigil_ingest_events_total{result="accepted"} 1`,
		`vigil_ingest_rejects_total{code="invalid",field="action"} 1`,
		"vigil_ingest_batch_size_bucket", "vigil_ingest_commit_seconds_bucket", "vigil_http_request_seconds",
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if bytes.Contains(body, []byte(key)) || bytes.Contains(body, []byte(n.operator)) {
		t.Fatal("metrics contain a key")
	}
}

func newApp(ctx context.Context, cfg config.Config) (*app.App, error) {
	return app.New(ctx, cfg, app.Options{Stderr: io.Discard})
}

func countTrue(m map[string]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}

// TestDebugListenerServesProfiles: with server.debug_addr set, the
// runtime profiles answer there, and not on the API's address.
func TestDebugListenerServesProfiles(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Server.DebugAddr = "127.0.0.1:0" })
	addr := n.app.DebugAddr()
	if addr == "" {
		t.Fatal("no debug address")
	}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://" + addr + "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Fatalf("GET /debug/pprof/ on %s = %d %.200q", addr, code, body)
	}
	if code, body := get("http://" + addr + "/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("goroutine profile = %d %.200q", code, body)
	}
	if code, _ := get(n.url + "/debug/pprof/"); code == http.StatusOK {
		t.Fatal("the API's address serves the profiles too")
	}
	n.stop(t)
	if _, err := http.Get("http://" + addr + "/debug/pprof/"); err == nil {
		t.Fatal("the debug listener outlives the app")
	}
}
