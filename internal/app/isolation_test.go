package app_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
)

// TestTenantIsolationMatrix drives every route of the API with tenant A's
// full-scope key while trying to reach tenant B, and checks that A can
// neither read, infer nor change anything of B's. A route added without a
// case here fails the test.
func TestTenantIsolationMatrix(t *testing.T) { testTenantIsolationMatrix(t) }

// TestTenantIsolationMatrixPostgres is TestTenantIsolationMatrix on the PostgreSQL store.
func TestTenantIsolationMatrixPostgres(t *testing.T) { testTenantIsolationMatrix(t, onPostgres(t)) }

func testTenantIsolationMatrix(t *testing.T, edit ...func(*config.Config)) {
	n := startNode(t, edit...)
	ctx := t.Context()
	a, keyA := n.tenantClient(t, "tenant-a")
	b, keyB := n.tenantClient(t, "tenant-b")

	secretB := "b-secret-marker"
	at := time.Now().Add(-time.Minute).UTC()
	if _, err := a.Send(ctx, client.Event{ID: "a-1", Action: "auth.password.changed", Time: at, Actor: client.Actor{ID: "alice"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Send(ctx, client.Event{ID: "b-1", Action: "auth.password.changed", Time: at, Actor: client.Actor{ID: "bob"},
		Metadata: map[string]any{"m": secretB}}); err != nil {
		t.Fatal(err)
	}
	waitForEvents(t, b, client.SearchParams{}, 1)
	waitForEvents(t, a, client.SearchParams{}, 1)

	st := n.app.Stores()
	fB := audit.Finding{ID: "f-b", Tenant: "tenant-b", RuleID: "brute_force", Severity: audit.SeverityHigh, Status: audit.StatusOpen,
		GroupKey: "bob", ActorID: "bob", Explanation: secretB, Evidence: []string{"b-1"}, Count: 1, FirstSeen: at, LastSeen: at, CreatedAt: at, UpdatedAt: at}
	fA := fB
	fA.ID, fA.Tenant, fA.ActorID, fA.GroupKey, fA.Explanation, fA.Evidence = "f-a", "tenant-a", "alice", "alice", "a finding", []string{"a-1"}
	fB.IncidentID = "inc-b"
	// An installation-wide finding (no tenant) is the operator's alone.
	fI := fB
	fI.ID, fI.Tenant, fI.RuleID, fI.IncidentID, fI.Evidence = "f-inst", "", "distributed-credential-stuffing-installation", "", []string{"tenant-b/b-1", "tenant-a/a-1"}
	if err := st.Findings.UpsertFindings(ctx, []audit.Finding{fA, fB, fI}); err != nil {
		t.Fatal(err)
	}
	iB := audit.Incident{ID: "inc-b", Tenant: "tenant-b", Status: audit.StatusOpen, Severity: audit.SeverityHigh,
		Headline: secretB, HeadlineRule: "brute_force", Family: "brute_force", Findings: []string{"f-b"}, FindingCount: 1,
		Accounts: []audit.AccountAtRisk{{Actor: "bob", Reason: audit.RiskTargeted}}, FirstSeen: at, LastSeen: at}
	if err := st.Incidents.UpsertIncidents(ctx, []audit.Incident{iB}); err != nil {
		t.Fatal(err)
	}
	if err := st.Rules.PutRuleSetting(ctx, audit.RuleSetting{Tenant: "tenant-b", RuleID: "brute_force", Params: map[string]any{"n": 99.0}, UpdatedAt: at}); err != nil {
		t.Fatal(err)
	}
	if err := st.Rules.PutAllowEntry(ctx, audit.AllowEntry{Tenant: "tenant-b", Kind: "ip", Value: "192.0.2.55", CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	keysB, err := st.Keys.ListKeys(ctx, "tenant-b")
	if err != nil || len(keysB) == 0 {
		t.Fatal(err)
	}
	keyIDB := keysB[0].ID
	var minted struct {
		ViewerToken audit.ViewerToken `json:"viewer_token"`
	}
	if status, body := raw(t, "POST", n.url+"/v1/viewer-tokens", keyB, `{"ttl":"1h","name":"b-secret-marker"}`); status != 201 || json.Unmarshal(body, &minted) != nil {
		t.Fatalf("B mints a viewer token: %d %s", status, body)
	}
	viewerB := minted.ViewerToken.ID
	seedWebhook(t, st, "wh-b", "tenant-b", secretB)
	if _, err := st.Actions.CreateAction(ctx, audit.ResponseAction{ID: "act-b", Tenant: "tenant-b", Type: audit.RespLockAccount,
		ActorID: "bob", Reason: secretB, RequestedBy: "key:x", Severity: audit.SeverityHigh, CreatedAt: at, UpdatedAt: at}); err != nil {
		t.Fatal(err)
	}
	deadB := deadDelivery(t, st, "wh-b", "tenant-b", 1<<40)

	type attempt struct {
		method, path, body string
		// ok lists the acceptable statuses; leak, when true, means a 2xx
		// body must not carry any of tenant B's data.
		ok []int
	}
	denied := []int{http.StatusForbidden, http.StatusNotFound}
	cases := map[string][]attempt{
		"GET /healthz": {{"GET", "/healthz", "", []int{200}}},
		"GET /readyz":  {{"GET", "/readyz", "", []int{200}}},
		// Server status is for operators; a tenant key, even with the admin scope, is refused.
		"GET /v1/status": {{"GET", "/v1/status", "", []int{403}}},
		"GET /metrics":   {{"GET", "/metrics", "", []int{200}}},
		"POST /v1/events": {
			{"POST", "/v1/events", `{"tenant":"tenant-b","action":"a.b","actor":{"id":"x"}}`, []int{403}},
			{"POST", "/v1/events", `{"id":"b-1","action":"auth.password.changed","actor":{"id":"x"}}`, []int{202}}, // A's own b-1, not B's
		},
		"POST /v1/import/{format}": {
			{"POST", "/v1/import/okta?tenant=tenant-b", `{"uuid":"x","published":"` + at.Format(time.RFC3339) + `","eventType":"a.b","actor":{"alternateId":"x"}}`, []int{403}},
		},
		"POST /v1/import/csv": {
			{"POST", "/v1/import/csv?tenant=tenant-b", mappedBody("name: m\nformat: csv\ntime: {from: ts}\naction: {value: auth.password.changed}\nfields:\n  actor.id: {from: who}\n",
				"ts,who\n"+at.Format(time.RFC3339)+",x\n"), []int{403}},
		},
		"POST /v1/import/ndjson": {
			{"POST", "/v1/import/ndjson?tenant=tenant-b", mappedBody("name: m\nformat: ndjson\ntime: {from: ts}\naction: {value: auth.password.changed}\nfields:\n  actor.id: {from: who}\n",
				`{"ts":"`+at.Format(time.RFC3339)+`","who":"x"}`), []int{403}},
		},
		"GET /v1/events": {
			{"GET", "/v1/events", "", []int{200}},
			{"GET", "/v1/events?tenant=tenant-b", "", denied},
			{"GET", "/v1/events?q=" + secretB, "", []int{200}},
		},
		"POST /v1/query": {
			{"POST", "/v1/query", `{"q":"time:>=-1h"}`, []int{200}},
			{"POST", "/v1/query", `{"q":"time:>=-1h (\"secret-marker\" OR actor.id:bo*) | stats count() by actor.id"}`, []int{200}},
			{"POST", "/v1/query", `{"q":"time:>=-1h | stats dc(actor.id) count() by action"}`, []int{200}},
			{"POST", "/v1/query", `{"q":"action:*","tenant":"tenant-b"}`, denied},
		},
		"POST /v1/export": {
			{"POST", "/v1/export", `{"q":"time:>=-1h","format":"ndjson"}`, []int{200}},
			{"POST", "/v1/export", `{"q":"time:>=-1h (\"secret-marker\" OR actor.id:bo*)","format":"csv"}`, []int{200}},
			{"POST", "/v1/export", `{"q":"action:*","tenant":"tenant-b"}`, denied},
		},
		"GET /v1/actors/{id}": {
			{"GET", "/v1/actors/bob", "", []int{200}},
			{"GET", "/v1/actors/bob?tenant=tenant-b", "", denied},
		},
		"GET /v1/sessions/{id}": {
			{"GET", "/v1/sessions/s-b", "", []int{200}},
			{"GET", "/v1/sessions/s-b?tenant=tenant-b", "", denied},
		},
		"GET /v1/ips/{ip}": {
			{"GET", "/v1/ips/192.0.2.55", "", []int{200}},
			{"GET", "/v1/ips/192.0.2.55?tenant=tenant-b", "", denied},
		},
		"GET /v1/events/{id}": {
			{"GET", "/v1/events/b-1?tenant=tenant-b", "", denied},
		},
		"POST /v1/risk": {
			{"POST", "/v1/risk", `{"tenant":"tenant-b","action":"auth.login.success","actor":{"id":"bob"},"context":{"ip":"203.0.113.1","user_agent":"x","auth_method":"password","session_id":"s"}}`, []int{403, 503}},
		},
		"GET /v1/incidents": {
			{"GET", "/v1/incidents", "", []int{200}},
			{"GET", "/v1/incidents?tenant=tenant-b", "", denied},
			{"GET", "/v1/incidents?format=ocsf", "", []int{200}},
			{"GET", "/v1/incidents?format=ocsf&tenant=tenant-b", "", denied},
			{"GET", "/v1/incidents?format=ecs", "", []int{200}},
			{"GET", "/v1/incidents?format=ecs&tenant=tenant-b", "", denied},
		},
		"GET /v1/incidents/{id}": {
			{"GET", "/v1/incidents/inc-b", "", denied},
			{"GET", "/v1/incidents/inc-b?tenant=tenant-b", "", denied},
		},
		"PATCH /v1/incidents/{id}": {
			{"PATCH", "/v1/incidents/inc-b", `{"status":"resolved","note":"not mine"}`, denied},
			{"PATCH", "/v1/incidents/inc-b?tenant=tenant-b", `{"status":"resolved","note":"not mine"}`, denied},
		},
		"GET /v1/findings": {
			{"GET", "/v1/findings", "", []int{200}},
			{"GET", "/v1/findings?tenant=tenant-b", "", denied},
			{"GET", "/v1/findings?format=ocsf", "", []int{200}},
			{"GET", "/v1/findings?format=ocsf&tenant=tenant-b", "", denied},
			{"GET", "/v1/findings?format=ecs", "", []int{200}},
			{"GET", "/v1/findings?format=ecs&tenant=tenant-b", "", denied},
		},
		"GET /v1/findings/{id}": {
			{"GET", "/v1/findings/f-b", "", denied},
			{"GET", "/v1/findings/f-b?tenant=tenant-b", "", denied},
			{"GET", "/v1/findings/f-inst", "", denied},
			{"GET", "/v1/findings/f-inst?tenant=", "", denied},
		},
		"PATCH /v1/findings/{id}": {
			{"PATCH", "/v1/findings/f-b", `{"status":"resolved","note":"not mine"}`, denied},
			{"PATCH", "/v1/findings/f-b?tenant=tenant-b", `{"status":"resolved","note":"not mine"}`, denied},
			{"PATCH", "/v1/findings/f-inst", `{"status":"resolved","note":"not mine"}`, denied},
		},
		"GET /v1/rules": {
			{"GET", "/v1/rules", "", []int{200}},
			{"GET", "/v1/rules?tenant=tenant-b", "", denied},
		},
		"GET /v1/rules/settings": {
			{"GET", "/v1/rules/settings", "", []int{200}},
			{"GET", "/v1/rules/settings?tenant=tenant-b", "", denied},
		},
		"PUT /v1/rules/{rule}/settings": {
			{"PUT", "/v1/rules/brute_force/settings?tenant=tenant-b", `{"disabled":true}`, denied},
		},
		"DELETE /v1/rules/{rule}/settings": {
			{"DELETE", "/v1/rules/brute_force/settings?tenant=tenant-b", "", denied},
		},
		"POST /v1/actions": {
			{"POST", "/v1/actions?tenant=tenant-b", `{"type":"lock_account","actor":"bob"}`, denied},
			{"POST", "/v1/actions", `{"type":"lock_account","actor":"bob","finding_id":"f-b"}`, []int{400}}, // B's finding is not A's
		},
		"GET /v1/actions": {
			{"GET", "/v1/actions", "", []int{200}},
			{"GET", "/v1/actions?tenant=tenant-b", "", denied},
		},
		"GET /v1/actions/{id}": {
			{"GET", "/v1/actions/act-b", "", denied},
			{"GET", "/v1/actions/act-b?tenant=tenant-b", "", denied},
		},
		"POST /v1/actions/{id}/result": {
			{"POST", "/v1/actions/act-b/result", `{"status":"succeeded"}`, denied},
			{"POST", "/v1/actions/act-b/result?tenant=tenant-b", `{"status":"succeeded"}`, denied},
		},
		"GET /v1/egresses": {
			{"GET", "/v1/egresses?all=true", "", []int{200}},
			{"GET", "/v1/egresses?tenant=tenant-b", "", denied},
		},
		"GET /v1/allowlist": {
			{"GET", "/v1/allowlist", "", []int{200}},
			{"GET", "/v1/allowlist?tenant=tenant-b", "", denied},
		},
		"POST /v1/allowlist": {
			{"POST", "/v1/allowlist?tenant=tenant-b", `{"kind":"ip","value":"192.0.2.1"}`, denied},
		},
		"DELETE /v1/allowlist/{kind}/{value...}": {
			{"DELETE", "/v1/allowlist/ip/192.0.2.55?tenant=tenant-b", "", denied},
		},
		"POST /v1/tenants": {
			{"POST", "/v1/tenants", `{"id":"tenant-c"}`, []int{403}},
		},
		"GET /v1/tenants": {
			{"GET", "/v1/tenants", "", []int{200}},
		},
		"GET /v1/tenants/{id}": {
			{"GET", "/v1/tenants/tenant-b", "", denied},
		},
		"PATCH /v1/tenants/{id}": {
			// Not another tenant's, and not its own: a tenant must not
			// widen its own event-age allowance.
			{"PATCH", "/v1/tenants/tenant-b", `{"max_event_age_days":36500}`, []int{403}},
			{"PATCH", "/v1/tenants/tenant-a", `{"max_event_age_days":36500}`, []int{403}},
			{"PATCH", "/v1/tenants/tenant-b", `{"retention_days":90}`, []int{403}},
			{"PATCH", "/v1/tenants/tenant-a", `{"retention_days":90,"name":"renamed"}`, []int{403}},
		},
		"GET /v1/rules/suggestions": {
			{"GET", "/v1/rules/suggestions?tenant=tenant-b", "", denied},
		},
		"POST /v1/rules/{rule}/backtest": {
			{"POST", "/v1/rules/brute-force/backtest", `{"tenant":"tenant-b"}`, denied},
		},
		"POST /v1/retention/run": {
			{"POST", "/v1/retention/run", `{"tenant":"tenant-b","dry_run":true}`, denied},
			{"POST", "/v1/retention/run", `{"tenant":"tenant-b"}`, denied},
		},
		"GET /v1/integrity": {
			{"GET", "/v1/integrity", "", []int{200}},
			{"GET", "/v1/integrity?tenant=tenant-b", "", denied},
		},
		// Public keys are the installation's, the same for every tenant.
		"GET /v1/integrity/keys": {
			{"GET", "/v1/integrity/keys", "", []int{200}},
		},
		"GET /v1/integrity/days/{day}": {
			{"GET", "/v1/integrity/days/" + at.Format("2006-01-02") + "?tenant=tenant-b", "", denied},
		},
		"POST /v1/erasures": {
			{"POST", "/v1/erasures", `{"tenant":"tenant-b","actor":"bob","fields":["metadata"]}`, denied},
			{"POST", "/v1/erasures?tenant=tenant-b", `{"actor":"bob","fields":["metadata"]}`, []int{200, 400, 403}},
		},
		"POST /v1/keys": {
			{"POST", "/v1/keys", `{"tenant":"tenant-b","name":"x","scopes":["admin"]}`, []int{403}},
		},
		"GET /v1/keys": {
			{"GET", "/v1/keys", "", []int{200}},
			{"GET", "/v1/keys?tenant=tenant-b", "", denied},
		},
		"DELETE /v1/keys/{id}": {
			{"DELETE", "/v1/keys/" + keyIDB, "", denied},
		},
		"POST /v1/viewer-tokens": {
			{"POST", "/v1/viewer-tokens", `{"tenant":"tenant-b","ttl":"1h"}`, []int{403}},
			{"POST", "/v1/viewer-tokens", `{"ttl":"1h","name":"a's own"}`, []int{201}},
		},
		"GET /v1/viewer-tokens": {
			{"GET", "/v1/viewer-tokens", "", []int{200}},
			{"GET", "/v1/viewer-tokens?tenant=tenant-b", "", denied},
		},
		"DELETE /v1/viewer-tokens/{id}": {
			{"DELETE", "/v1/viewer-tokens/" + viewerB, "", denied},
		},
		"POST /v1/webhooks": {
			{"POST", "/v1/webhooks", `{"tenant":"tenant-b","url":"https://hooks.example.com/x"}`, []int{403}},
		},
		"GET /v1/webhooks": {
			{"GET", "/v1/webhooks", "", []int{200}},
			{"GET", "/v1/webhooks?tenant=tenant-b", "", denied},
		},
		"GET /v1/webhooks/{id}": {
			{"GET", "/v1/webhooks/wh-b", "", denied},
		},
		"PATCH /v1/webhooks/{id}": {
			{"PATCH", "/v1/webhooks/wh-b", `{"url":"https://attacker.example.com/"}`, denied},
		},
		"DELETE /v1/webhooks/{id}": {
			{"DELETE", "/v1/webhooks/wh-b", "", denied},
		},
		"POST /v1/webhooks/{id}/rotate-secret": {
			{"POST", "/v1/webhooks/wh-b/rotate-secret", "", denied},
		},
		"GET /v1/webhooks/{id}/deliveries": {
			{"GET", "/v1/webhooks/wh-b/deliveries", "", denied},
			{"GET", "/v1/webhooks/wh-b/deliveries?status=dead", "", denied},
		},
		"POST /v1/deliveries/{id}/replay": {
			{"POST", "/v1/deliveries/" + deadB + "/replay", "", denied},
		},
	}
	routes := n.app.Routes()
	for r := range routes {
		if _, ok := cases[r]; !ok {
			t.Errorf("route %s has no tenant-isolation case", r)
		}
	}
	for r := range cases {
		if _, ok := routes[r]; !ok {
			t.Errorf("isolation case for %s, which is not a route", r)
		}
	}
	// Every attempt runs with A's full key and with a key of A holding each
	// one scope: one lacking the route's scope is refused (403) before
	// anything else, one holding it must still not reach B.
	type tenantKey struct {
		scopes []audit.Scope
		secret string
	}
	tkeys := []tenantKey{{audit.AllScopes, keyA}}
	for _, s := range audit.AllScopes {
		_, secret, err := audit.MintKey(ctx, st.Keys, "tenant-a", "one scope", []audit.Scope{s}, time.Now().UTC())
		if err != nil {
			t.Fatal(err)
		}
		tkeys = append(tkeys, tenantKey{[]audit.Scope{s}, secret})
	}
	leaks := [][]byte{[]byte(secretB), []byte("tenant-b"), []byte("bob"), []byte(keyIDB), []byte("192.0.2.55"), []byte(viewerB), []byte("wh-b"), []byte(deadB)}
	for route, attempts := range cases {
		for _, at := range attempts {
			for _, k := range tkeys {
				need := routes[route]
				p := audit.Principal{Tenant: "tenant-a", Scopes: k.scopes}
				ok := at.ok
				if need != "" && !p.Has(need) {
					ok = []int{http.StatusForbidden}
				}
				isolationAttempt(t, route, at.method, n.url, at.path, at.body, k.secret, ok, leaks)
			}
		}
	}

	// Nothing of B's changed.
	if sub, err := st.Alerts.GetSubscription(ctx, "wh-b"); err != nil || sub.URL != "https://hooks.example.com/wh-b" || sub.SecretGen != 1 {
		t.Fatalf("B's webhook changed: %+v %v", sub, err)
	}
	if d, err := st.Alerts.GetDelivery(ctx, deadB); err != nil || d.Status != audit.DeliveryDead {
		t.Fatalf("B's dead letter changed: %+v %v", d, err)
	}
	got, err := st.Findings.GetFinding(ctx, "tenant-b", "f-b")
	if err != nil || got.Status != audit.StatusOpen {
		t.Fatalf("B's finding changed: %+v %v", got, err)
	}
	if got, err := st.Actions.GetAction(ctx, "tenant-b", "act-b"); err != nil || got.Status != audit.ActionRequested {
		t.Fatalf("B's response action changed: %+v %v", got, err)
	}
	if got, err := st.Findings.GetFinding(ctx, "", "f-inst"); err != nil || got.Status != audit.StatusOpen {
		t.Fatalf("the installation-wide finding changed: %+v %v", got, err)
	}
	settings, _ := st.Rules.ListRuleSettings(ctx, "tenant-b")
	allow, _ := st.Rules.ListAllowEntries(ctx, "tenant-b")
	if len(settings) != 1 || settings[0].Disabled || len(allow) != 1 {
		t.Fatalf("B's tuning changed: %+v %+v", settings, allow)
	}
	if status, _ := raw(t, "GET", n.url+"/v1/events", keyB, ""); status != http.StatusOK {
		t.Fatalf("B's key stopped working: %d", status)
	}
	eventsB := waitForEvents(t, b, client.SearchParams{}, 1)
	if eventsB[0].Metadata["m"] != secretB {
		t.Fatalf("B's event changed: %+v", eventsB[0])
	}
	// A sees only its own events, including its own "b-1".
	eventsA := waitForEvents(t, a, client.SearchParams{}, 2)
	for _, e := range eventsA {
		if e.Tenant != "tenant-a" {
			t.Fatalf("A saw %+v", e)
		}
	}
	// The operator sees both tenants when it names neither.
	var page struct{ Events []audit.Event }
	_, body := raw(t, "GET", n.url+"/v1/events?"+url.Values{"limit": {"100"}}.Encode(), n.operator, "")
	if err := json.Unmarshal(body, &page); err != nil || len(slices.DeleteFunc(page.Events, func(e audit.Event) bool { return strings.HasPrefix(e.Action, "vigil.") })) != 3 {
		t.Fatalf("operator search: %v %s", err, body)
	}
}

// isolationAttempt sends one cross-tenant attempt and checks its status is
// one of ok and that an answer carries none of leaks.
func isolationAttempt(t *testing.T, route, method, base, path, body, key string, ok []int, leaks [][]byte) {
	t.Helper()
	status, got := raw(t, method, base+path, key, body)
	got = dropReadAudits(got)
	if !slices.Contains(ok, status) {
		t.Errorf("%s: %s %s → %d %s, want one of %v", route, method, path, status, got, ok)
	}
	for _, l := range leaks {
		// Successful answers and "not found" must carry nothing of B's.
		// An echo of what the caller itself sent is no leak.
		echoed := bytes.Contains([]byte(path+body), l)
		if (status < 300 || status == 404) && bytes.Contains(got, l) && !echoed && route != "GET /metrics" {
			t.Errorf("%s: %s %s leaked %q: %s", route, method, path, l, got)
		}
	}
}

// dropReadAudits removes A's own read-audit records (vigil.search and
// vigil.export events, in any JSON or NDJSON answer) before the leak check:
// they echo what A itself asked — a query naming "bob" — not B's data.
func dropReadAudits(body []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(body, []byte("\n")) {
		var v any
		if json.Unmarshal(line, &v) != nil {
			out = append(out, line)
			continue
		}
		b, _ := json.Marshal(stripReadAudits(v))
		out = append(out, b)
	}
	return bytes.Join(out, []byte("\n"))
}

func stripReadAudits(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if a, _ := x["action"].(string); strings.HasPrefix(a, "vigil.") {
			return nil
		}
		for k, e := range x {
			x[k] = stripReadAudits(e)
		}
	case []any:
		for i, e := range x {
			if row, ok := e.([]any); ok && slices.ContainsFunc(row, func(c any) bool { s, _ := c.(string); return strings.HasPrefix(s, "vigil.") }) {
				x[i] = nil // a query row of a read-audit event
				continue
			}
			x[i] = stripReadAudits(e)
		}
	}
	return v
}
