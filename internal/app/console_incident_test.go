package app_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/audit"
)

// seedIncident stores a two-finding incident of tenant on actor, with one
// evidence event each, as the detection engine would.
func seedIncident(t *testing.T, n *node, c *client.Client, tenant, id, actor, ip, marker string) (audit.Incident, []audit.Finding) {
	t.Helper()
	ctx := t.Context()
	at := time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Second)
	evs := []client.Event{
		{ID: id + "-e1", Action: "auth.login.failure", Reason: "invalid_password", Time: at, Actor: client.Actor{ID: actor}, Context: client.Context{IP: ip}},
		{ID: id + "-e2", Action: "auth.login.success", Time: at.Add(time.Minute), Actor: client.Actor{ID: actor},
			Context: client.Context{IP: ip, SessionID: id + "-sess", UserAgent: "Mozilla/5.0", AuthMethod: "password"}},
	}
	if _, err := c.Send(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	waitForEvents(t, c, client.SearchParams{Actor: actor, Since: at, Until: at.Add(2 * time.Minute)}, 2)
	mk := func(fid, rule, name string, ev string, off time.Duration, sev audit.Severity) audit.Finding {
		return audit.Finding{ID: fid, Tenant: tenant, RuleID: rule, RuleName: name, Severity: sev, Status: audit.StatusOpen,
			GroupKey: actor, ActorID: actor, IP: ip, Explanation: marker + " " + name, Evidence: []string{ev}, Count: 1,
			FirstSeen: at.Add(off), LastSeen: at.Add(off), CreatedAt: at, UpdatedAt: at, IncidentID: id}
	}
	fs := []audit.Finding{
		mk(id+"-f1", "brute-force", "Brute force", id+"-e1", 0, audit.SeverityMedium),
		mk(id+"-f2", "stuffing-hit", "Successful login from a stuffing source", id+"-e2", time.Minute, audit.SeverityCritical),
	}
	inc := audit.Incident{ID: id, Tenant: tenant, Status: audit.StatusOpen, Severity: audit.SeverityCritical, Score: 90,
		Headline: "Successful login from a stuffing source", HeadlineRule: "stuffing-hit", Family: "credential-stuffing",
		Summary: marker + " logged in from a stuffing source", FirstSeen: at, LastSeen: at.Add(time.Minute),
		Findings: []string{fs[0].ID, fs[1].ID}, FindingCount: 2, Rules: []string{"brute-force", "stuffing-hit"},
		IPs: []string{ip}, IPCount: 1, Accounts: []audit.AccountAtRisk{{Actor: actor, Reason: audit.RiskHit, Severity: audit.SeverityCritical,
			Findings: []string{fs[1].ID}, LastSeen: at.Add(time.Minute)}},
		Timeline: []audit.TimelineEntry{
			{Time: at, LastSeen: at, FindingID: fs[0].ID, RuleID: "brute-force", Severity: audit.SeverityMedium, Summary: fs[0].Explanation},
			{Time: at.Add(time.Minute), LastSeen: at.Add(time.Minute), FindingID: fs[1].ID, RuleID: "stuffing-hit", Severity: audit.SeverityCritical, Summary: fs[1].Explanation},
		},
		Evidence: []string{id + "-e1", id + "-e2"}, CreatedAt: at, UpdatedAt: at}
	st := n.app.Stores()
	if err := st.Findings.UpsertFindings(ctx, fs); err != nil {
		t.Fatal(err)
	}
	if err := st.Incidents.UpsertIncidents(ctx, []audit.Incident{inc}); err != nil {
		t.Fatal(err)
	}
	return inc, fs
}

func TestConsoleIncidents(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()
	c, key := n.tenantClient(t, "acme")
	inc, fs := seedIncident(t, n, c, "acme", "inc-acme-1", "carol", "203.0.113.7", "acme-marker")

	b := newBrowser(t, n.url)
	b.signIn(key)
	// The console opens on the incident inbox.
	if resp, _ := b.get("/"); resp.Header.Get("Location") != "/incidents" {
		t.Fatalf("home: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := b.get("/incidents")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `href="/incidents/inc-acme-1"`) || !strings.Contains(body, "credential-stuffing") ||
		!strings.Contains(body, `href="/actors/carol"`) || !strings.Contains(body, ">2<") {
		t.Fatalf("inbox: %d %s", resp.StatusCode, body)
	}
	for _, bad := range []string{"/incidents?status=bogus", "/incidents?severity=huge", "/incidents?period=1y"} {
		resp, body := b.get(bad)
		field := strings.SplitN(strings.TrimPrefix(bad, "/incidents?"), "=", 2)[0]
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `role="alert"`) || !strings.Contains(body, field) {
			t.Errorf("%s: %d, want the form with an error naming %s", bad, resp.StatusCode, field)
		}
	}
	if _, body := b.get("/incidents?severity=critical&period=24h&status=open"); !strings.Contains(body, "inc-acme-1") {
		t.Error("the critical incident is missing under severity=critical")
	}
	if _, body := b.get("/incidents?status=resolved"); strings.Contains(body, "inc-acme-1") || !strings.Contains(body, "No incidents match") {
		t.Error("an open incident is listed under resolved, or the empty state is missing")
	}

	// The incident page: headline, explanation, accounts at risk, links,
	// and a timeline with both findings and both evidence events in order.
	resp, body = b.get("/incidents/" + inc.ID)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("incident page: %d %s", resp.StatusCode, body)
	}
	for _, want := range []string{"acme-marker logged in from a stuffing source", `href="/actors/carol"`, "signed in by the attack",
		`href="/ips/203.0.113.7"`, `href="/sessions/inc-acme-1-sess"`, `href="/findings?incident=inc-acme-1&amp;status=all"`} {
		if !strings.Contains(body, want) {
			t.Errorf("incident page lacks %q", want)
		}
	}
	order := []string{`href="/findings/inc-acme-1-f1"`, `href="/events/inc-acme-1-e1"`, `href="/findings/inc-acme-1-f2"`, `href="/events/inc-acme-1-e2"`}
	last := -1
	for _, o := range order {
		i := strings.Index(body, o)
		if i <= last {
			t.Fatalf("timeline out of order at %s (index %d after %d)", o, i, last)
		}
		last = i
	}
	// Each finding page links to its incident.
	if _, body := b.get("/findings/" + fs[0].ID); !strings.Contains(body, `href="/incidents/inc-acme-1"`) {
		t.Error("the finding page does not link its incident")
	}
	if _, body := b.get("/findings?incident=inc-acme-1&status=all"); !strings.Contains(body, fs[0].ID) || !strings.Contains(body, fs[1].ID) {
		t.Error("the findings inbox does not filter by incident")
	}
	// The page view is read-audited like the API's reads.
	waitForAction(t, c, "vigil.search", func(e client.Event) bool {
		return e.Metadata["via"] == "console" && e.Metadata["query"] == "incident:inc-acme-1"
	})
	if resp, _ := b.get("/incidents/no-such"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown incident: %d", resp.StatusCode)
	}

	// Triage: resolving needs a note; with the default cascade the open
	// findings follow; reopening leaves them resolved.
	b.get("/incidents/" + inc.ID)
	if resp, _ := b.post("/incidents/triage", url.Values{"id": {inc.ID}, "status": {"resolved"}, "cascade": {"1"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("resolve without a note: %d", resp.StatusCode)
	}
	if resp, _ := b.do("POST", "/incidents/triage", url.Values{"id": {inc.ID}, "status": {"acknowledged"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("triage without CSRF: %d", resp.StatusCode)
	}
	b.get("/incidents")
	resp, _ = b.post("/incidents/triage", url.Values{"id": {inc.ID}, "status": {"resolved"}, "note": {"blocked the proxy"}, "cascade": {"1"},
		"back": {"/incidents?status=open"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/incidents?status=open&done=resolved" {
		t.Fatalf("resolve: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	got, err := n.app.Stores().Incidents.GetIncident(ctx, "acme", inc.ID)
	if err != nil || got.Status != audit.StatusResolved || !strings.Contains(got.Note, "blocked the proxy") {
		t.Fatalf("incident after resolve: %+v %v", got, err)
	}
	for _, f := range fs {
		if g, _ := n.app.Stores().Findings.GetFinding(ctx, "acme", f.ID); g.Status != audit.StatusResolved {
			t.Errorf("finding %s after the cascade: %s", f.ID, g.Status)
		}
	}
	// Without cascade only the incident moves.
	b.get("/incidents")
	if resp, _ := b.post("/incidents/triage", url.Values{"id": {inc.ID}, "status": {"open"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("reopen: %d", resp.StatusCode)
	}
	if g, _ := n.app.Stores().Findings.GetFinding(ctx, "acme", fs[0].ID); g.Status != audit.StatusResolved {
		t.Errorf("reopening the incident reopened its finding: %s", g.Status)
	}

	// A read-only viewer sees incidents and cannot triage them; a viewer
	// restricted to one account gets no incident pages (they span accounts).
	for _, tc := range []struct {
		spec string
		page int
	}{{`{"ttl":"1h","read_only":true}`, http.StatusOK}, {`{"ttl":"1h","actor":"carol"}`, http.StatusForbidden}} {
		status, raw := raw(t, "POST", n.url+"/v1/viewer-tokens", key, tc.spec)
		var minted struct{ Path string }
		if status != http.StatusCreated || json.Unmarshal(raw, &minted) != nil {
			t.Fatalf("mint %s: %d %s", tc.spec, status, raw)
		}
		v := newBrowser(t, n.url)
		v.get(minted.Path)
		resp, body := v.get("/incidents/" + inc.ID)
		if resp.StatusCode != tc.page {
			t.Errorf("%s: incident page %d, want %d", tc.spec, resp.StatusCode, tc.page)
		}
		if strings.Contains(body, `action="/incidents/triage"`) {
			t.Errorf("%s: offered incident triage", tc.spec)
		}
		if resp, _ := v.post("/incidents/triage", url.Values{"id": {inc.ID}, "status": {"resolved"}, "note": {"x"}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: triage answered %d", tc.spec, resp.StatusCode)
		}
	}
}

// TestConsoleNetworkIncident: an incident about a network (stuffing
// spread over one /24) has no single address; the inbox and its page say
// so and name the network instead of "0 addresses".
func TestConsoleNetworkIncident(t *testing.T) {
	n := startNode(t)
	c, key := n.tenantClient(t, "acme")
	inc, _ := seedIncident(t, n, c, "acme", "inc-net-1", "dave", "198.51.100.23", "net-marker")
	inc.IPs, inc.IPCount, inc.Networks = nil, 0, []string{"198.51.100.0/24"}
	if err := n.app.Stores().Incidents.UpsertIncidents(t.Context(), []audit.Incident{inc}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, n.url)
	b.signIn(key)
	if _, body := b.get("/incidents"); !strings.Contains(body, "1 network") || strings.Contains(body, "0 addresses") {
		t.Errorf("inbox: want \"1 network\" and not \"0 addresses\" for a network incident")
	}
	_, body := b.get("/incidents/" + inc.ID)
	for _, want := range []string{"No single address", "198.51.100.0/24", "(1 network)"} {
		if !strings.Contains(body, want) {
			t.Errorf("incident page lacks %q", want)
		}
	}
}
