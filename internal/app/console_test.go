package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/access"
	"github.com/vigilhq/vigil/internal/audit"
)

// browser is a cookie-keeping HTTP client that does not follow redirects,
// so tests see every hop of the console's flows.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(b.t.Context(), method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindStringSubmatch(string(raw)); m != nil {
		b.csrf = m[1]
	}
	return resp, string(raw)
}

func (b *browser) get(path string) (*http.Response, string) { return b.do("GET", path, nil) }

// post sends a form with the last CSRF token seen.
func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	if form.Get("csrf") == "" {
		form.Set("csrf", b.csrf)
	}
	return b.do("POST", path, form)
}

func (b *browser) signIn(key string) {
	b.t.Helper()
	b.get("/signin")
	resp, body := b.post("/signin", url.Values{"key": {key}, "next": {"/findings"}})
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("sign-in: %d %s", resp.StatusCode, body)
	}
}

func TestConsoleSignInSessionAndHeaders(t *testing.T) {
	n := startNode(t)
	_, key := n.tenantClient(t, "acme")
	b := newBrowser(t, n.url)

	resp, _ := b.get("/findings")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/signin") {
		t.Fatalf("signed-out page: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := b.get("/signin")
	for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"} {
		if resp.Header.Get(h) != want {
			t.Errorf("%s = %q, want %q", h, resp.Header.Get(h), want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	if !strings.Contains(body, `type="password"`) {
		t.Errorf("sign-in page: %s", body)
	}

	// A sign-in without the form's CSRF token is refused.
	resp, _ = b.do("POST", "/signin", url.Values{"key": {key}, "csrf": {"forged"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("forged sign-in: %d", resp.StatusCode)
	}
	// A wrong key gets the form again with a clear message.
	b.get("/signin")
	resp, body = b.post("/signin", url.Values{"key": {"vgl_0000000000000000_" + strings.Repeat("a", 52)}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not valid") {
		t.Fatalf("wrong key: %d %s", resp.StatusCode, body)
	}

	b.get("/signin")
	resp, _ = b.post("/signin", url.Values{"key": {key}, "next": {"/findings"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/findings" {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "vigil_session" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Secure {
		t.Fatalf("session cookie %+v (plain HTTP: HttpOnly, SameSite=Strict, not Secure)", session)
	}
	if strings.Contains(session.Value, key) || strings.Contains(resp.Header.Get("Location"), "vgl_") {
		t.Fatal("the API key leaked into the cookie or a URL")
	}
	resp, body = b.get("/findings")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "No findings match") || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("inbox: %d %s", resp.StatusCode, body)
	}
	// The page view is read-audited in the tenant, as the API's reads are.
	ac, _ := client.New(n.url, client.WithAPIKey(key))
	audited := waitForAction(t, ac, "vigil.search", func(e client.Event) bool { return e.Metadata["via"] == "console" })
	if audited.Actor.Type != audit.ActorAPIKey || !strings.HasPrefix(audited.Metadata["route"].(string), "console GET /findings") {
		t.Fatalf("read audit %+v", audited)
	}

	// Signing out needs the CSRF token too; afterwards the session is gone.
	resp, _ = b.do("POST", "/signout", url.Values{})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-out without CSRF: %d", resp.StatusCode)
	}
	resp, _ = b.post("/signout", url.Values{})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", resp.StatusCode)
	}
	if resp, _ = b.get("/findings"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after sign-out: %d", resp.StatusCode)
	}

	// Revoking the key ends its console sessions.
	b.signIn(key)
	keys, _ := n.app.Stores().Keys.ListKeys(t.Context(), "acme")
	if err := n.app.Stores().Keys.RevokeKey(t.Context(), "acme", keys[0].ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if resp, _ = b.get("/findings"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("session of a revoked key: %d", resp.StatusCode)
	}
}

// waitForAction polls a tenant's events for one of action that matches.
func waitForAction(t *testing.T, c *client.Client, action string, match func(client.Event) bool) client.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for e, err := range c.Events(t.Context(), client.SearchParams{Action: action}) {
			if err != nil {
				t.Fatal(err)
			}
			if match(e) {
				return e
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s event matched", action)
	return client.Event{}
}

func TestConsoleViewerTokens(t *testing.T) {
	n := startNode(t)
	_, key := n.tenantClient(t, "acme")
	ctx := t.Context()

	status, body := raw(t, "POST", n.url+"/v1/viewer-tokens", key, `{"ttl":"1h","name":"Acme SOC","read_only":true,"frame_ancestors":["https://admin.example.com"]}`)
	var minted struct {
		ViewerToken audit.ViewerToken `json:"viewer_token"`
		Token, Path string
	}
	if status != http.StatusCreated || json.Unmarshal(body, &minted) != nil || !strings.HasPrefix(minted.Path, "/embed?token=vgv_") {
		t.Fatalf("mint: %d %s", status, body)
	}
	b := newBrowser(t, n.url)
	resp, page := b.get(minted.Path)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `http-equiv="refresh"`) {
		t.Fatalf("embed: %d %s", resp.StatusCode, page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors https://admin.example.com") {
		t.Errorf("embed CSP %q", csp)
	}
	resp, page = b.get("/findings")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "viewer link") {
		t.Fatalf("viewer inbox: %d %s", resp.StatusCode, page)
	}
	if strings.Contains(page, "Acknowledge") || strings.Contains(page, `href="/settings"`) {
		t.Errorf("a read-only viewer is offered triage or settings")
	}
	if resp, _ = b.get("/settings"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("viewer settings: %d", resp.StatusCode)
	}
	if resp, _ = b.post("/findings/triage", url.Values{"id": {"x"}, "status": {"acknowledged"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("read-only triage: %d", resp.StatusCode)
	}

	// Tampered, expired and revoked tokens each get a clear page.
	tampered := minted.Path[:len(minted.Path)-3] + "AAA"
	if tampered == minted.Path {
		tampered = minted.Path[:len(minted.Path)-3] + "BBB"
	}
	check := func(path, want string) {
		t.Helper()
		resp, page := newBrowser(t, n.url).get(path)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, want) {
			t.Errorf("%s: %d, want 401 saying %q: %s", path, resp.StatusCode, want, page)
		}
	}
	check(tampered, "not valid")
	check("/embed?token=garbage", "not valid")
	check("/embed", "not valid")
	secret, err := n.app.Stores().State.GetState(ctx, "server", "signing-secret")
	if err != nil {
		t.Fatal(err)
	}
	past, _ := access.NewViewers(secret, n.app.Stores().Viewers, func() time.Time { return time.Now().Add(-2 * time.Hour) })
	_, old, err := past.Mint(ctx, access.ViewerSpec{Tenant: "acme", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	check("/embed?token="+old, "expired")

	if status, body := raw(t, "DELETE", n.url+"/v1/viewer-tokens/"+minted.ViewerToken.ID, key, ""); status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", status, body)
	}
	if resp, _ = b.get("/findings"); resp.StatusCode == http.StatusOK {
		t.Errorf("the session of a revoked token still works")
	}
	check(minted.Path, "revoked")
}

func TestConsoleTenantIsolation(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()
	a, keyA := n.tenantClient(t, "tenant-a")
	bc, _ := n.tenantClient(t, "tenant-b")
	secretB := "b-secret-marker"
	at := time.Now().Add(-time.Minute).UTC()
	if _, err := a.Send(ctx, client.Event{ID: "a-1", Action: "auth.login.failure", Reason: "invalid_password", Time: at, Actor: client.Actor{ID: "alice"},
		Context: client.Context{IP: "198.51.100.9"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := bc.Send(ctx, client.Event{ID: "b-1", Action: "auth.login.success", Time: at, Actor: client.Actor{ID: "bob"},
		Context: client.Context{IP: "192.0.2.55", SessionID: "s-b", UserAgent: "Mozilla/5.0", AuthMethod: "password"}, Metadata: map[string]any{"m": secretB}}); err != nil {
		t.Fatal(err)
	}
	waitForEvents(t, bc, client.SearchParams{}, 1)
	waitForEvents(t, a, client.SearchParams{}, 1)
	st := n.app.Stores()
	fB := audit.Finding{ID: "f-b", Tenant: "tenant-b", RuleID: "brute-force", Severity: audit.SeverityHigh, Status: audit.StatusOpen,
		GroupKey: "bob", ActorID: "bob", IP: "192.0.2.55", Explanation: secretB, Evidence: []string{"b-1"}, Count: 1, FirstSeen: at, LastSeen: at, CreatedAt: at, UpdatedAt: at}
	if err := st.Findings.UpsertFindings(ctx, []audit.Finding{fB}); err != nil {
		t.Fatal(err)
	}
	if err := st.Saved.SaveSearch(ctx, audit.SavedSearch{ID: "sb", Tenant: "tenant-b", Name: secretB, Query: "bob", CreatedAt: at}); err != nil {
		t.Fatal(err)
	}

	incB, _ := seedIncident(t, n, bc, "tenant-b", "inc-b", "bob", "192.0.2.55", secretB)

	br := newBrowser(t, n.url)
	br.signIn(keyA)
	br.get("/findings")
	gets := []string{"/findings/f-b", "/events/b-1", "/actors/bob", "/ips/192.0.2.55", "/sessions/s-b",
		"/findings?tenant=tenant-b&status=all", "/findings?actor=bob&status=all", "/search?q=" + url.QueryEscape(`time:>=-1h "b-secret-marker"`),
		"/search?q=" + url.QueryEscape("time:>=-1h | stats count() by actor.id"), "/search?q=bob&tenant=tenant-b",
		"/export?format=ndjson&q=" + url.QueryEscape("time:>=-1h"), "/export?q=" + url.QueryEscape("time:>=-1h") + "&tenant=tenant-b",
		"/overview", "/settings", "/events/b-1?tenant=tenant-b", "/findings/f-b?tenant=tenant-b",
		"/incidents/inc-b", "/incidents/inc-b?tenant=tenant-b", "/incidents?tenant=tenant-b&status=all", "/findings?incident=inc-b&status=all",
		"/findings/inc-b-f1", "/events/inc-b-e2", "/sessions/inc-b-sess"}
	for _, p := range gets {
		resp, body := br.get(p)
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
		if strings.HasPrefix(p, "/export") {
			body = string(dropReadAudits([]byte(body))) // A's own audit records echo the URLs A opened
		}
		for _, leak := range []string{secretB, "tenant-b", "192.0.2.55", "s-b"} {
			if strings.Contains(body, leak) && !strings.Contains(p, url.QueryEscape(leak)) && !strings.Contains(p, leak) {
				t.Errorf("GET %s leaked %q", p, leak)
			}
		}
		if strings.Contains(body, ">bob<") && !strings.Contains(p, "bob") {
			t.Errorf("GET %s shows B's actor", p)
		}
	}
	resp, csv := br.get("/export?format=csv&q=" + url.QueryEscape("time:>=-1h action:auth.login.*"))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(csv, "time,") || !strings.Contains(csv, "alice") || strings.Count(csv, "\n") != 2 {
		t.Errorf("A's CSV export: %d %q", resp.StatusCode, csv)
	}
	posts := map[string]url.Values{
		"/findings/triage":                 {"id": {"f-b"}, "status": {"resolved"}, "note": {"not mine"}},
		"/incidents/triage":                {"id": {"inc-b"}, "status": {"resolved"}, "note": {"not mine"}, "cascade": {"1"}},
		"/tenant":                          {"tenant": {"tenant-b"}},
		"/search/saved/sb/delete":          {},
		"/settings/viewers/unknown/revoke": {},
	}
	for p, form := range posts {
		if resp, body := br.post(p, form); resp.StatusCode < 400 {
			t.Errorf("POST %s: %d %s", p, resp.StatusCode, body)
		}
	}
	if f, err := st.Findings.GetFinding(ctx, "tenant-b", "f-b"); err != nil || f.Status != audit.StatusOpen {
		t.Fatalf("B's finding changed: %+v %v", f, err)
	}
	if i, err := st.Incidents.GetIncident(ctx, "tenant-b", incB.ID); err != nil || i.Status != audit.StatusOpen {
		t.Fatalf("B's incident changed: %+v %v", i, err)
	}
	if ss, _ := st.Saved.ListSavedSearches(ctx, "tenant-b"); len(ss) != 1 {
		t.Fatalf("B's saved search deleted")
	}
	// A's own triage works, in bulk, with the CSRF token, and not without.
	fA := fB
	fA.ID, fA.Tenant, fA.ActorID, fA.Explanation, fA.Evidence = "f-a", "tenant-a", "alice", "A's", []string{"a-1"}
	fA2 := fA
	fA2.ID = "f-a2"
	if err := st.Findings.UpsertFindings(ctx, []audit.Finding{fA, fA2}); err != nil {
		t.Fatal(err)
	}
	if resp, _ := br.do("POST", "/findings/triage", url.Values{"id": {"f-a"}, "status": {"acknowledged"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("triage without CSRF: %d", resp.StatusCode)
	}
	br.get("/findings")
	if resp, body := br.post("/findings/triage", url.Values{"id": {"f-a", "f-a2"}, "status": {"resolved"}, "note": {"password reset"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("bulk triage: %d %s", resp.StatusCode, body)
	}
	for _, id := range []string{"f-a", "f-a2"} {
		if f, _ := st.Findings.GetFinding(ctx, "tenant-a", id); f.Status != audit.StatusResolved || !strings.Contains(f.Note, "password reset") {
			t.Fatalf("A's finding %s after triage: %+v", id, f)
		}
	}
}
