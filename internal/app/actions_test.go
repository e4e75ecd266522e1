package app_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
)

// TestResponseActions: an analyst asks the SaaS to revoke an account's
// sessions, a rule's findings lock accounts on their own; each request is
// delivered once as a signed webhook item of kind action, the SaaS reports
// its acknowledgement and the outcome, and every step is in the tenant's
// audit log.
func TestResponseActions(t *testing.T) { testResponseActions(t) }

// TestResponseActionsPostgres is TestResponseActions on the PostgreSQL store.
func TestResponseActionsPostgres(t *testing.T) { testResponseActions(t, onPostgres(t)) }

func testResponseActions(t *testing.T, edit ...func(*config.Config)) {
	cfg := alertConfig(t, t.TempDir())
	for _, e := range edit {
		e(&cfg)
	}
	rcv := newReceiver(t)
	a, base, _ := runApp(t, cfg)
	op := a.BootstrapKey
	if status, b := raw(t, "POST", base+"/v1/tenants", op, `{"id":"acme"}`); status != http.StatusCreated {
		t.Fatalf("create tenant: %d %s", status, b)
	}
	_, secret := createWebhook(t, base, op, `{"tenant":"acme","url":"`+rcv.url()+`","kinds":["action"]}`)
	_, analyst := tenantKey(t, base, op, "acme")
	saas := scopedKey(t, base, op, "acme", "events:write")
	other := scopedKey(t, base, op, "other", "events:write", "findings:read", "findings:write")

	ctx := t.Context()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := a.Stores()
	f1 := finding("acme", "f-1", audit.SeverityHigh, at)
	f1.RuleID = "session-hijack" // not the rule given actions below
	if err := st.Findings.UpsertFindings(ctx, []audit.Finding{f1}); err != nil {
		t.Fatal(err)
	}
	for body, field := range map[string]string{
		`{"type":"delete_everything","actor":"alice"}`:                     "type",
		`{"type":"revoke_sessions"}`:                                       "actor",
		`{"type":"revoke_sessions","actor":"alice","finding_id":"f-nope"}`: "finding_id",
	} {
		if status, b := raw(t, "POST", base+"/v1/actions", analyst, body); status != http.StatusBadRequest || !strings.Contains(string(b), `"`+field+`"`) {
			t.Fatalf("%s: %d %s, want 400 naming %s", body, status, b, field)
		}
	}
	status, b := raw(t, "POST", base+"/v1/actions", analyst, `{"type":"revoke_sessions","actor":"alice","finding_id":"f-1","reason":"stolen session cookie"}`)
	var created struct {
		Action audit.ResponseAction `json:"action"`
	}
	if status != http.StatusCreated || json.Unmarshal(b, &created) != nil || created.Action.Status != audit.ActionRequested ||
		created.Action.Severity != audit.SeverityHigh || !strings.HasPrefix(created.Action.RequestedBy, "key:") {
		t.Fatalf("request: %d %s", status, b)
	}
	id := created.Action.ID

	// With an Idempotency-Key a retry is answered with the first request's
	// action, and the action is delivered and recorded once.
	keyed := func(key, body string) (int, http.Header, audit.ResponseAction) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), "POST", base+"/v1/actions", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+analyst)
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Action audit.ResponseAction `json:"action"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, resp.Header, out.Action
	}
	mfa := `{"type":"require_mfa","actor":"carol","reason":"new device from a hosting provider"}`
	s1, h1, first := keyed("ticket-4411", mfa)
	s2, h2, again := keyed("ticket-4411", mfa)
	if s1 != http.StatusCreated || h1.Get("Idempotent-Replayed") != "" || s2 != http.StatusOK || h2.Get("Idempotent-Replayed") != "true" ||
		first.ID == "" || first.ID == id || again.ID != first.ID || !again.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("keyed request and its retry: %d %+v, then %d %+v", s1, first, s2, again)
	}
	if s, _, _ := keyed("ticket-4411", `{"type":"lock_account","actor":"carol"}`); s != http.StatusConflict {
		t.Fatalf("a key reused for another request: %d, want 409", s)
	}
	if s, _, _ := keyed("ticket 4411", mfa); s != http.StatusBadRequest {
		t.Fatalf("a key with a space: %d, want 400", s)
	}
	// The SDK sends a key of its own, or the one given.
	analystClient, err := client.New(base, client.WithAPIKey(analyst))
	if err != nil {
		t.Fatal(err)
	}
	viaSDK, err := analystClient.RequestAction(ctx, client.ActionRequest{Type: "require_mfa", Actor: "carol",
		Reason: "new device from a hosting provider", IdempotencyKey: "ticket-4411"})
	if err != nil || viaSDK.ID != first.ID {
		t.Fatalf("the SDK with the same key: %+v %v, want %s", viaSDK, err, first.ID)
	}
	if _, err := analystClient.RequestAction(ctx, client.ActionRequest{Type: "lock_account", Actor: "carol", IdempotencyKey: "ticket-4411"}); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("the SDK reusing a key: %v, want ErrConflict", err)
	}

	// The rule setting: brute-force findings lock the account.
	if status, b := raw(t, "PUT", base+"/v1/rules/brute-force/settings", analyst, `{"actions":["lock_account","lock_account"]}`); status != http.StatusOK || !strings.Contains(string(b), `"actions":["lock_account"]`) {
		t.Fatalf("rule actions: %d %s", status, b)
	}
	if status, b := raw(t, "PUT", base+"/v1/rules/brute-force/settings", analyst, `{"actions":["nuke"]}`); status != http.StatusBadRequest || !strings.Contains(string(b), `"actions"`) {
		t.Fatalf("bad rule action: %d %s", status, b)
	}
	bob := finding("acme", "f-2", audit.SeverityMedium, at)
	bob.ActorID = "bob"
	for range 2 { // stored twice, as a replay after a crash would
		if err := st.Findings.UpsertFindings(ctx, []audit.Finding{bob}); err != nil {
			t.Fatal(err)
		}
	}

	waitFor(t, "the three actions delivered", func() bool { return len(rcv.items(t)) >= 3 })
	time.Sleep(300 * time.Millisecond) // nothing more may arrive
	items := rcv.items(t)
	if len(items) != 3 {
		t.Fatalf("%d items, want the three actions once each: %v", len(items), items)
	}
	byType := map[string]map[string]any{}
	for _, it := range items {
		if it["kind"] != "action" {
			t.Fatalf("item %v", it)
		}
		act := it["action"].(map[string]any)
		byType[act["type"].(string)] = act
	}
	if r := byType["revoke_sessions"]; r == nil || r["actor"] != "alice" || r["finding_id"] != "f-1" || r["reason"] != "stolen session cookie" ||
		r["result_url"] != "https://vigil.example.com/v1/actions/"+id+"/result" {
		t.Fatalf("analyst action %v", r)
	}
	if l := byType["lock_account"]; l == nil || l["actor"] != "bob" || l["requested_by"] != "rule:brute-force" || l["finding_id"] != "f-2" {
		t.Fatalf("rule action %v", l)
	}
	rcv.mu.Lock()
	for did, rec := range rcv.got {
		if !signatureValid(secret, rec.timestamp, rec.signature, rec.body) {
			t.Errorf("delivery %s is not signed", did)
		}
	}
	rcv.mu.Unlock()

	// The SaaS reports back; another tenant can neither see nor report.
	if status, _ := raw(t, "POST", base+"/v1/actions/"+id+"/result", other, `{"status":"succeeded"}`); status != http.StatusNotFound {
		t.Fatalf("another tenant reported: %d", status)
	}
	if status, _ := raw(t, "GET", base+"/v1/actions/"+id, other, ""); status != http.StatusNotFound {
		t.Fatalf("another tenant read: %d", status)
	}
	if status, b := raw(t, "POST", base+"/v1/actions/"+id+"/result", saas, `{"status":"done"}`); status != http.StatusBadRequest || !strings.Contains(string(b), `"status"`) {
		t.Fatalf("a bad status: %d %s", status, b)
	}
	for _, body := range []string{`{"status":"acknowledged"}`, `{"status":"succeeded","message":"3 sessions revoked"}`, `{"status":"acknowledged"}`} {
		if status, b := raw(t, "POST", base+"/v1/actions/"+id+"/result", saas, body); status != http.StatusOK {
			t.Fatalf("report %s: %d %s", body, status, b)
		}
	}
	status, b = raw(t, "GET", base+"/v1/actions/"+id, analyst, "")
	if status != http.StatusOK || !strings.Contains(string(b), `"status":"succeeded"`) || !strings.Contains(string(b), "3 sessions revoked") {
		t.Fatalf("after the outcome (a late acknowledgement keeps it): %d %s", status, b)
	}
	status, b = raw(t, "GET", base+"/v1/actions", analyst, "")
	if status != http.StatusOK || strings.Count(string(b), `"id":"act_`) != 3 {
		t.Fatalf("list: %d %s", status, b)
	}

	// The audit log has every step, the rule's request once.
	c, err := client.New(base, client.WithAPIKey(analyst))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"vigil.response.requested revoke_sessions": 1, "vigil.response.requested lock_account": 1, "vigil.response.requested require_mfa": 1,
		"vigil.response.acknowledged revoke_sessions": 2, "vigil.response.completed revoke_sessions": 1}
	var got map[string]int
	waitFor(t, "the audit records", func() bool {
		got = map[string]int{}
		for e, err := range c.Events(ctx, client.SearchParams{Action: "vigil.response.*"}) {
			if err != nil {
				t.Fatal(err)
			}
			got[e.Action+" "+e.Metadata["type"].(string)]++
		}
		return len(got) == len(want) && got["vigil.response.acknowledged revoke_sessions"] == 2
	})
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s recorded %d times, want %d (all: %v)", k, got[k], n, got)
		}
	}
}

// scopedKey creates tenant (if needed) and a key of it with scopes.
func scopedKey(t *testing.T, base, op, tenant string, scopes ...string) string {
	t.Helper()
	raw(t, "POST", base+"/v1/tenants", op, `{"id":"`+tenant+`"}`)
	body, _ := json.Marshal(map[string]any{"tenant": tenant, "name": "k", "scopes": scopes})
	status, b := raw(t, "POST", base+"/v1/keys", op, string(body))
	var out struct {
		Secret string `json:"secret"`
	}
	if status != http.StatusCreated || json.Unmarshal(b, &out) != nil || out.Secret == "" {
		t.Fatalf("create key: %d %s", status, b)
	}
	return out.Secret
}
