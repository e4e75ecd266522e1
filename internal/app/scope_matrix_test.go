package app_test

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/access"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
)

// keyKind is who holds a key: an operator (every tenant) or a tenant.
type keyKind string

const (
	kindOperator keyKind = "operator"
	kindTenant   keyKind = "tenant"
)

// call is one request of the matrix.
type call struct{ method, path, body string }

// routeSpec classifies one route for the scope matrix: the scope it needs
// (checked against the route table, so a change of scope is deliberate),
// whether only operator keys may use it, and a request on the caller's own
// data that succeeds with want when the key may use the route.
type routeSpec struct {
	scope        audit.Scope
	operatorOnly bool
	want         int
	// req builds the i-th request for a key of kind; it may prepare state
	// (a key to revoke) so that every request has something to act on.
	req func(t *testing.T, kind keyKind, i int) call
}

// TestScopeMatrix drives every route of the router's table with a key of
// every kind (operator, tenant) holding exactly one scope, and with no key.
// A key holding the route's scope (or admin) gets the route's success
// status; any other key gets 403 and changes nothing. A route missing from
// the specs below fails the test, so a new route cannot ship unclassified.
func TestScopeMatrix(t *testing.T) { testScopeMatrix(t) }

// TestScopeMatrixPostgres is TestScopeMatrix on the PostgreSQL store.
func TestScopeMatrixPostgres(t *testing.T) { testScopeMatrix(t, onPostgres(t)) }

func testScopeMatrix(t *testing.T, edit ...func(*config.Config)) {
	n := startNode(t, edit...)
	ctx := t.Context()
	a, _ := n.tenantClient(t, "tenant-a")
	n.tenantClient(t, "tenant-b")
	at := time.Now().Add(-time.Minute).UTC()
	if _, err := a.Send(ctx, client.Event{ID: "a-1", Action: "auth.login.success", Time: at, Actor: client.Actor{ID: "alice"},
		Context: client.Context{IP: "192.0.2.10", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", AuthMethod: "password", SessionID: "s-a"}}); err != nil {
		t.Fatal(err)
	}
	waitForEvents(t, a, client.SearchParams{Action: "auth.login.success"}, 1)
	st := n.app.Stores()
	fA := audit.Finding{ID: "f-a", Tenant: "tenant-a", RuleID: "brute-force", Severity: audit.SeverityHigh, Status: audit.StatusOpen,
		GroupKey: "alice", ActorID: "alice", Explanation: "x", Evidence: []string{"a-1"}, Count: 1, FirstSeen: at, LastSeen: at, CreatedAt: at, UpdatedAt: at}
	fA.IncidentID = "inc-a"
	if err := st.Findings.UpsertFindings(ctx, []audit.Finding{fA}); err != nil {
		t.Fatal(err)
	}
	iA := audit.Incident{ID: "inc-a", Tenant: "tenant-a", Status: audit.StatusOpen, Severity: audit.SeverityHigh,
		HeadlineRule: "brute-force", Family: "brute-force", Findings: []string{"f-a"}, FindingCount: 1, FirstSeen: at, LastSeen: at}
	if err := st.Incidents.UpsertIncidents(ctx, []audit.Incident{iA}); err != nil {
		t.Fatal(err)
	}

	seedWebhook(t, st, "wh-a", "tenant-a", "a's webhook")
	if _, err := st.Actions.CreateAction(ctx, audit.ResponseAction{ID: "act-a", Tenant: "tenant-a", Type: audit.RespLockAccount,
		ActorID: "alice", RequestedBy: "key:x", Severity: audit.SeverityHigh, CreatedAt: at, UpdatedAt: at}); err != nil {
		t.Fatal(err)
	}
	var seq int64 = 1 << 40

	// own names tenant-a the way each kind must: a tenant key implies it,
	// an operator names it.
	own := func(k keyKind) string {
		if k == kindOperator {
			return "tenant=tenant-a"
		}
		return ""
	}
	with := func(path string, k keyKind) string {
		if q := own(k); q != "" {
			if slices.Contains([]byte(path), '?') {
				return path + "&" + q
			}
			return path + "?" + q
		}
		return path
	}
	tenantField := func(k keyKind) string {
		if k == kindOperator {
			return `"tenant":"tenant-a",`
		}
		return ""
	}
	get := func(path string) func(*testing.T, keyKind, int) call {
		return func(_ *testing.T, k keyKind, _ int) call { return call{"GET", with(path, k), ""} }
	}
	query := func(route string) func(*testing.T, keyKind, int) call {
		return func(_ *testing.T, k keyKind, _ int) call {
			return call{"POST", route, `{` + tenantField(k) + `"q":"time:>=-1h"}`}
		}
	}
	specs := map[string]routeSpec{
		"GET /healthz": {want: 200, req: func(*testing.T, keyKind, int) call { return call{"GET", "/healthz", ""} }},
		"GET /readyz":  {want: 200, req: func(*testing.T, keyKind, int) call { return call{"GET", "/readyz", ""} }},
		"GET /metrics": {want: 200, req: func(*testing.T, keyKind, int) call { return call{"GET", "/metrics", ""} }},

		"POST /v1/events": {scope: audit.ScopeEventsWrite, want: 202, req: func(_ *testing.T, k keyKind, i int) call {
			return call{"POST", "/v1/events", fmt.Sprintf(`{%s"id":"m-%d","action":"auth.password.changed","actor":{"id":"alice"}}`, tenantField(k), i)}
		}},
		"POST /v1/import/{format}": {scope: audit.ScopeEventsWrite, want: 202, req: func(_ *testing.T, k keyKind, i int) call {
			return call{"POST", with("/v1/import/okta", k), fmt.Sprintf(`{"uuid":"m-%d","published":%q,"eventType":"user.account.update_password","actor":{"alternateId":"alice"}}`,
				i, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))}
		}},
		"POST /v1/import/csv": {scope: audit.ScopeEventsWrite, want: 202, req: func(_ *testing.T, k keyKind, i int) call {
			return call{"POST", with("/v1/import/csv", k), mappedBody("name: m\nformat: csv\ntime: {from: ts}\nid: {from: id}\naction: {value: auth.password.changed}\nfields:\n  actor.id: {value: alice}\n",
				fmt.Sprintf("id,ts\nm-%d,%s\n", i, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)))}
		}},
		"POST /v1/import/ndjson": {scope: audit.ScopeEventsWrite, want: 202, req: func(_ *testing.T, k keyKind, i int) call {
			return call{"POST", with("/v1/import/ndjson", k), mappedBody("name: m\nformat: ndjson\ntime: {from: ts}\nid: {from: id}\naction: {value: auth.password.changed}\nfields:\n  actor.id: {from: who}\n",
				fmt.Sprintf(`{"id":"m-%d","ts":%q,"who":"alice"}`, i, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)))}
		}},
		"GET /v1/events":      {scope: audit.ScopeEventsRead, want: 200, req: get("/v1/events")},
		"GET /v1/events/{id}": {scope: audit.ScopeEventsRead, want: 200, req: get("/v1/events/a-1")},
		"POST /v1/risk": {scope: audit.ScopeEventsWrite, want: 200, req: func(_ *testing.T, k keyKind, _ int) call {
			return call{"POST", "/v1/risk", `{` + tenantField(k) + `"action":"auth.login.success","actor":{"id":"alice"},"context":{"ip":"192.0.2.10","user_agent":"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0","auth_method":"password","session_id":"s"}}`}
		}},
		"POST /v1/query":        {scope: audit.ScopeEventsRead, want: 200, req: query("/v1/query")},
		"POST /v1/export":       {scope: audit.ScopeEventsRead, want: 200, req: query("/v1/export")},
		"GET /v1/actors/{id}":   {scope: audit.ScopeEventsRead, want: 200, req: get("/v1/actors/alice")},
		"GET /v1/sessions/{id}": {scope: audit.ScopeEventsRead, want: 200, req: get("/v1/sessions/s-a")},
		"GET /v1/ips/{ip}":      {scope: audit.ScopeEventsRead, want: 200, req: get("/v1/ips/192.0.2.10")},

		"GET /v1/incidents":      {scope: audit.ScopeFindingsRead, want: 200, req: get("/v1/incidents")},
		"GET /v1/incidents/{id}": {scope: audit.ScopeFindingsRead, want: 200, req: get("/v1/incidents/inc-a")},
		"PATCH /v1/incidents/{id}": {scope: audit.ScopeFindingsWrite, want: 200, req: func(_ *testing.T, k keyKind, _ int) call {
			return call{"PATCH", with("/v1/incidents/inc-a", k), `{"status":"acknowledged"}`}
		}},
		"GET /v1/findings":      {scope: audit.ScopeFindingsRead, want: 200, req: get("/v1/findings")},
		"GET /v1/findings/{id}": {scope: audit.ScopeFindingsRead, want: 200, req: get("/v1/findings/f-a")},
		"POST /v1/actions": {scope: audit.ScopeFindingsWrite, want: 201, req: func(_ *testing.T, k keyKind, _ int) call {
			return call{"POST", with("/v1/actions", k), `{"type":"require_mfa","actor":"alice","finding_id":"f-a"}`}
		}},
		"GET /v1/actions":      {scope: audit.ScopeFindingsRead, want: 200, req: get("/v1/actions")},
		"GET /v1/actions/{id}": {scope: audit.ScopeFindingsRead, want: 200, req: get("/v1/actions/act-a")},
		"POST /v1/actions/{id}/result": {scope: audit.ScopeEventsWrite, want: 200, req: func(_ *testing.T, k keyKind, _ int) call {
			return call{"POST", with("/v1/actions/act-a/result", k), `{"status":"acknowledged"}`}
		}},
		"PATCH /v1/findings/{id}": {scope: audit.ScopeFindingsWrite, want: 200, req: func(_ *testing.T, k keyKind, _ int) call {
			return call{"PATCH", with("/v1/findings/f-a", k), `{"status":"acknowledged"}`}
		}},

		"GET /v1/rules":             {scope: audit.ScopeFindingsRead, want: 200, req: get("/v1/rules")},
		"GET /v1/rules/settings":    {scope: audit.ScopeFindingsRead, want: 200, req: get("/v1/rules/settings")},
		"GET /v1/rules/suggestions": {scope: audit.ScopeFindingsRead, want: 200, req: get("/v1/rules/suggestions")},
		"POST /v1/rules/{rule}/backtest": {scope: audit.ScopeFindingsRead, want: 200, req: func(_ *testing.T, k keyKind, _ int) call {
			return call{"POST", "/v1/rules/brute-force/backtest", `{` + tenantField(k) + `"params":{"min_failures":5}}`}
		}},
		"PUT /v1/rules/{rule}/settings": {scope: audit.ScopeRulesWrite, want: 200, req: func(_ *testing.T, k keyKind, _ int) call {
			return call{"PUT", with("/v1/rules/brute-force/settings", k), `{"disabled":false}`}
		}},
		"DELETE /v1/rules/{rule}/settings": {scope: audit.ScopeRulesWrite, want: 204, req: func(_ *testing.T, k keyKind, _ int) call {
			return call{"DELETE", with("/v1/rules/brute-force/settings", k), ""}
		}},
		"GET /v1/allowlist": {scope: audit.ScopeFindingsRead, want: 200, req: get("/v1/allowlist")},
		"GET /v1/egresses":  {scope: audit.ScopeFindingsRead, want: 200, req: get("/v1/egresses?all=true")},
		"POST /v1/allowlist": {scope: audit.ScopeRulesWrite, want: 201, req: func(_ *testing.T, k keyKind, i int) call {
			return call{"POST", with("/v1/allowlist", k), fmt.Sprintf(`{"kind":"ip","value":"198.51.100.%d"}`, i%250)}
		}},
		"DELETE /v1/allowlist/{kind}/{value...}": {scope: audit.ScopeRulesWrite, want: 204, req: func(_ *testing.T, k keyKind, i int) call {
			return call{"DELETE", with(fmt.Sprintf("/v1/allowlist/ip/198.51.100.%d", i%250), k), ""}
		}},

		"POST /v1/tenants": {scope: audit.ScopeAdmin, operatorOnly: true, want: 201, req: func(_ *testing.T, _ keyKind, i int) call {
			return call{"POST", "/v1/tenants", fmt.Sprintf(`{"id":"made-%d"}`, i)}
		}},
		"GET /v1/tenants":      {scope: audit.ScopeEventsRead, want: 200, req: func(*testing.T, keyKind, int) call { return call{"GET", "/v1/tenants", ""} }},
		"GET /v1/tenants/{id}": {scope: audit.ScopeEventsRead, want: 200, req: func(*testing.T, keyKind, int) call { return call{"GET", "/v1/tenants/tenant-a", ""} }},
		// A tenant admin key may set its own retention (within bounds) and
		// nothing else; the isolation matrix tries the rest.
		"PATCH /v1/tenants/{id}": {scope: audit.ScopeAdmin, want: 200, req: func(_ *testing.T, k keyKind, _ int) call {
			if k == kindOperator {
				return call{"PATCH", "/v1/tenants/tenant-a", `{"max_event_age_days":30}`}
			}
			return call{"PATCH", "/v1/tenants/tenant-a", `{"retention_days":90}`}
		}},
		"POST /v1/retention/run": {scope: audit.ScopeAdmin, want: 200, req: func(_ *testing.T, k keyKind, _ int) call {
			return call{"POST", "/v1/retention/run", `{` + tenantField(k) + `"dry_run":true}`}
		}},

		"GET /v1/integrity":      {scope: audit.ScopeEventsRead, want: 200, req: get("/v1/integrity")},
		"GET /v1/integrity/keys": {scope: audit.ScopeEventsRead, want: 200, req: func(*testing.T, keyKind, int) call { return call{"GET", "/v1/integrity/keys", ""} }},
		"GET /v1/integrity/days/{day}": {scope: audit.ScopeEventsRead, want: 200, req: func(t *testing.T, k keyKind, _ int) call {
			if _, err := n.app.Integrity().Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			return call{"GET", with("/v1/integrity/days/"+at.Format("2006-01-02"), k), ""}
		}},
		"POST /v1/erasures": {scope: audit.ScopeAdmin, want: 200, req: func(_ *testing.T, k keyKind, _ int) call {
			return call{"POST", "/v1/erasures", `{` + tenantField(k) + `"actor":"alice","fields":["context.user_agent"]}`}
		}},

		"POST /v1/keys": {scope: audit.ScopeAdmin, want: 201, req: func(_ *testing.T, k keyKind, i int) call {
			return call{"POST", "/v1/keys", fmt.Sprintf(`{%s"name":"made-%d","scopes":["events:read"]}`, tenantField(k), i)}
		}},
		"GET /v1/keys": {scope: audit.ScopeAdmin, want: 200, req: get("/v1/keys")},
		"GET /v1/status": {scope: audit.ScopeAdmin, operatorOnly: true, want: 200, req: func(*testing.T, keyKind, int) call {
			return call{"GET", "/v1/status", ""}
		}},
		"DELETE /v1/keys/{id}": {scope: audit.ScopeAdmin, want: 204, req: func(t *testing.T, _ keyKind, i int) call {
			k, _, err := audit.MintKey(ctx, st.Keys, "tenant-a", fmt.Sprintf("victim-%d", i), []audit.Scope{audit.ScopeEventsRead}, time.Now().UTC())
			if err != nil {
				t.Fatal(err)
			}
			return call{"DELETE", "/v1/keys/" + k.ID, ""}
		}},
		"POST /v1/webhooks": {scope: audit.ScopeAdmin, want: 201, req: func(_ *testing.T, k keyKind, i int) call {
			return call{"POST", "/v1/webhooks", fmt.Sprintf(`{%s"name":"made-%d","url":"https://hooks.example.com/%d"}`, tenantField(k), i, i)}
		}},
		"GET /v1/webhooks":      {scope: audit.ScopeAdmin, want: 200, req: get("/v1/webhooks")},
		"GET /v1/webhooks/{id}": {scope: audit.ScopeAdmin, want: 200, req: get("/v1/webhooks/wh-a")},
		"PATCH /v1/webhooks/{id}": {scope: audit.ScopeAdmin, want: 200, req: func(_ *testing.T, _ keyKind, i int) call {
			return call{"PATCH", "/v1/webhooks/wh-a", fmt.Sprintf(`{"name":"renamed-%d"}`, i)}
		}},
		"DELETE /v1/webhooks/{id}": {scope: audit.ScopeAdmin, want: 204, req: func(t *testing.T, _ keyKind, i int) call {
			id := fmt.Sprintf("wh-victim-%d", i)
			seedWebhook(t, st, id, "tenant-a", "victim")
			return call{"DELETE", "/v1/webhooks/" + id, ""}
		}},
		"POST /v1/webhooks/{id}/rotate-secret": {scope: audit.ScopeAdmin, want: 200, req: func(*testing.T, keyKind, int) call {
			return call{"POST", "/v1/webhooks/wh-a/rotate-secret", `{"overlap":"1h"}`}
		}},
		"GET /v1/webhooks/{id}/deliveries": {scope: audit.ScopeAdmin, want: 200, req: get("/v1/webhooks/wh-a/deliveries?status=dead")},
		"POST /v1/deliveries/{id}/replay": {scope: audit.ScopeAdmin, want: 200, req: func(t *testing.T, _ keyKind, _ int) call {
			seq += 2
			return call{"POST", "/v1/deliveries/" + deadDelivery(t, st, "wh-a", "tenant-a", seq) + "/replay", ""}
		}},
		"POST /v1/viewer-tokens": {scope: audit.ScopeAdmin, want: 201, req: func(_ *testing.T, k keyKind, i int) call {
			return call{"POST", "/v1/viewer-tokens", fmt.Sprintf(`{%s"name":"made-%d","ttl":"1h"}`, tenantField(k), i)}
		}},
		"GET /v1/viewer-tokens": {scope: audit.ScopeAdmin, want: 200, req: get("/v1/viewer-tokens")},
		"DELETE /v1/viewer-tokens/{id}": {scope: audit.ScopeAdmin, want: 204, req: func(t *testing.T, _ keyKind, i int) call {
			v, err := access.NewViewers(make([]byte, 32), st.Viewers, nil)
			if err != nil {
				t.Fatal(err)
			}
			rec, _, err := v.Mint(ctx, access.ViewerSpec{Tenant: "tenant-a", Name: fmt.Sprintf("victim-%d", i), TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			return call{"DELETE", "/v1/viewer-tokens/" + rec.ID, ""}
		}},
	}

	table := n.app.Routes()
	for route, scope := range table {
		spec, ok := specs[route]
		if !ok {
			t.Errorf("route %s is not classified in the scope matrix", route)
			continue
		}
		if spec.scope != scope {
			t.Errorf("route %s needs %q in the router, %q in the matrix", route, scope, spec.scope)
		}
	}
	for route := range specs {
		if _, ok := table[route]; !ok {
			t.Errorf("scope matrix classifies %s, which is not a route", route)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	type key struct {
		kind   keyKind
		scope  audit.Scope
		secret string
	}
	var keys []key
	for _, kind := range []keyKind{kindOperator, kindTenant} {
		tenant := ""
		if kind == kindTenant {
			tenant = "tenant-a"
		}
		for _, s := range audit.AllScopes {
			_, secret, err := audit.MintKey(ctx, st.Keys, tenant, "matrix "+string(s), []audit.Scope{s}, time.Now().UTC())
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, key{kind, s, secret})
		}
	}

	i := 0
	var madeTenants []string
	for route, spec := range specs {
		// No key: open routes answer, every other route wants one.
		c := spec.req(t, kindTenant, i)
		i++
		status, body := raw(t, c.method, n.url+c.path, "", c.body)
		if wantNoKey := cond(spec.scope == "", spec.want, http.StatusUnauthorized); status != wantNoKey {
			t.Errorf("%s without a key: %d %s, want %d", route, status, body, wantNoKey)
		}
		for _, k := range keys {
			c := spec.req(t, k.kind, i)
			i++
			allowed := spec.scope == "" || (k.scope == spec.scope || k.scope == audit.ScopeAdmin) && !(spec.operatorOnly && k.kind != kindOperator)
			status, body := raw(t, c.method, n.url+c.path, k.secret, c.body)
			want := cond(allowed, spec.want, http.StatusForbidden)
			if status != want {
				t.Errorf("%s with a %s key holding %s: %s %s → %d %s, want %d", route, k.kind, k.scope, c.method, c.path, status, body, want)
			}
			if route == "POST /v1/tenants" {
				var id struct{ ID string }
				_, _ = fmt.Sscanf(c.body, `{"id":%q}`, &id.ID)
				if status == http.StatusCreated {
					madeTenants = append(madeTenants, id.ID)
				}
			}
		}
	}

	// Refused requests changed nothing: the only tenants are the two made
	// above and those the operator admin key created.
	ts, err := st.Tenants.ListTenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2+len(madeTenants) || len(madeTenants) != 1 {
		t.Errorf("tenants after the matrix: %+v; created by allowed keys: %v", ts, madeTenants)
	}
	opKeys, err := st.Keys.ListKeys(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range opKeys {
		if k.Name != "bootstrap operator key" && !slices.Contains([]string{"matrix events:write", "matrix events:read", "matrix findings:read", "matrix findings:write", "matrix rules:write", "matrix admin"}, k.Name) {
			t.Errorf("an operator key was minted through the matrix: %+v", k)
		}
	}
}

func cond[T any](c bool, a, b T) T {
	if c {
		return a
	}
	return b
}

// TestKeyMeansWhatItSays is the reported case: an operator key created with
// events:read only could create tenants, mint an operator admin key, write
// to any tenant and revoke keys. It may now only read. And no key mints a
// key reaching further than itself: a tenant admin key cannot mint an
// operator key or a key of another tenant.
func TestKeyMeansWhatItSays(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()
	_, adminA := n.tenantClient(t, "tenant-a", "admin")
	ck, err := n.op.CreateKey(ctx, client.CreateKeyRequest{Name: "reader", Scopes: []string{"events:read"}})
	if err != nil {
		t.Fatal(err)
	}
	if ck.Key.Tenant != "" || !slices.Equal(ck.Key.Scopes, []string{"events:read"}) {
		t.Fatalf("created %+v", ck.Key)
	}
	reader := string(ck.Secret)
	for _, c := range []call{
		{"POST", "/v1/tenants", `{"id":"evil"}`},
		{"POST", "/v1/keys", `{"name":"escalated","scopes":["admin"]}`},
		{"POST", "/v1/events", `{"tenant":"tenant-a","action":"auth.password.changed","actor":{"id":"x"}}`},
		{"PATCH", "/v1/findings/x?tenant=tenant-a", `{"status":"resolved","note":"n"}`},
		{"DELETE", "/v1/keys/" + ck.Key.ID, ""},
	} {
		if status, body := raw(t, c.method, n.url+c.path, reader, c.body); status != http.StatusForbidden {
			t.Errorf("events:read operator key: %s %s → %d %s, want 403", c.method, c.path, status, body)
		}
	}
	if status, _ := raw(t, "GET", n.url+"/v1/events?tenant=tenant-a", reader, ""); status != http.StatusOK {
		t.Errorf("events:read operator key cannot read: %d", status)
	}

	// A tenant admin key mints keys of its own tenant only.
	status, body := raw(t, "POST", n.url+"/v1/keys", adminA, `{"name":"x","scopes":["admin"]}`)
	if status != http.StatusCreated || !bytes.Contains(body, []byte(`"tenant":"tenant-a"`)) {
		t.Errorf("tenant admin mint: %d %s", status, body)
	}
	for _, b := range []string{`{"tenant":"tenant-b","name":"x","scopes":["events:read"]}`} {
		if status, body := raw(t, "POST", n.url+"/v1/keys", adminA, b); status != http.StatusForbidden {
			t.Errorf("tenant admin mint %s: %d %s, want 403", b, status, body)
		}
	}
	ops, err := n.app.Stores().Keys.ListKeys(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 2 { // the bootstrap key and the reader
		t.Errorf("operator keys: %+v", ops)
	}
}
