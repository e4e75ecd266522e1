package app_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/config"
)

// oktaLogin is an Okta System Log sign-in record at t.
func oktaLogin(uuid, user, ip string, t time.Time) string {
	return fmt.Sprintf(`{"uuid":%q,"published":%q,"eventType":"user.session.start","actor":{"alternateId":%q,"type":"User"},`+
		`"authenticationContext":{"credentialType":"PASSWORD","externalSessionId":"s-%s"},"client":{"ipAddress":%q,`+
		`"userAgent":{"rawUserAgent":"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}},"outcome":{"result":"SUCCESS"}}`,
		uuid, t.UTC().Format(time.RFC3339Nano), user, uuid, ip)
}

type importAnswer struct {
	Accepted, Duplicates, Rejected int
	Results                        []struct {
		Index  int
		Line   int
		Status string
		Action string
		Error  *struct{ Field, Message string }
	}
	Error *struct{ Message string }
}

// TestImportOverHTTP drives POST /v1/import/{format}: every record gets a
// result with its line, a bad record is rejected naming its field while
// the others are stored, the events are searchable with their import
// metadata, a second import of the same body stores nothing twice, and old
// records are refused until an operator allows the backfill.
func TestImportOverHTTP(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Ingest.KeyCacheTTL = time.Millisecond })
	c, key := n.tenantClient(t, "acme")
	now := time.Now().Add(-time.Hour)
	body := oktaLogin("u-1", "alice@example.com", "192.0.2.1", now) + "\n\n" +
		`{"eventType":"user.session.start","published":"last week"}` + "\n" +
		oktaLogin("u-2", "bob@example.com", "192.0.2.2", now.Add(time.Minute)) + "\n" +
		`{"uuid":"u-3","published":"` + now.Format(time.RFC3339) + `","eventType":"policy.lifecycle.update","actor":{"alternateId":"admin@example.com"}}` + "\n"
	post := func(path, key, body string, want int) importAnswer {
		t.Helper()
		status, b := raw(t, "POST", n.url+path, key, body)
		var a importAnswer
		if status != want || json.Unmarshal(b, &a) != nil {
			t.Fatalf("status %d, want %d: %s", status, want, b)
		}
		return a
	}
	a := post("/v1/import/okta?file=okta-2024.ndjson", key, body, 202)
	if a.Accepted != 3 || a.Rejected != 1 || len(a.Results) != 4 {
		t.Fatalf("first import: %+v", a)
	}
	for i, want := range []struct {
		line           int
		status, action string
	}{{1, "accepted", "auth.login.success"}, {3, "rejected", ""}, {4, "accepted", "auth.login.success"}, {5, "accepted", "okta.policy.lifecycle.update"}} {
		r := a.Results[i]
		if r.Line != want.line || r.Status != want.status || r.Action != want.action {
			t.Errorf("result %d = %+v, want %+v", i, r, want)
		}
	}
	if e := a.Results[1].Error; e == nil || e.Field != "published" {
		t.Errorf("bad record's error = %+v", e)
	}
	evs := waitForEvents(t, c, client.SearchParams{Action: "auth.login.success"}, 2)
	for _, ev := range evs {
		imp, _ := ev.Metadata["import"].(map[string]any)
		if !strings.HasPrefix(ev.ID, "okta:u-") || imp["format"] != "okta" || imp["file"] != "okta-2024.ndjson" || ev.Metadata["raw"] == nil {
			t.Errorf("imported event %s: metadata %v", ev.ID, ev.Metadata)
		}
	}
	a = post("/v1/import/okta", key, body, 202)
	if a.Accepted != 0 || a.Duplicates != 3 || a.Rejected != 1 {
		t.Errorf("re-import: %+v", a)
	}

	old := oktaLogin("u-old", "carol@example.com", "192.0.2.3", time.Now().Add(-200*24*time.Hour))
	a = post("/v1/import/okta", key, "["+old+"]", 400)
	if a.Error == nil || !strings.Contains(a.Error.Message, "max_event_age_days") {
		t.Errorf("old record: %+v", a.Error)
	}
	days := 365
	if _, err := n.op.UpdateTenant(t.Context(), "acme", client.UpdateTenantRequest{MaxEventAgeDays: &days}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // past the 1 ms key cache
	a = post("/v1/import/okta", key, "["+old+"]", 202)
	if a.Accepted != 1 {
		t.Errorf("after the backfill allowance: %+v", a)
	}

	if status, b := raw(t, "POST", n.url+"/v1/import/splunk", key, body); status != 404 || !strings.Contains(string(b), "okta") {
		t.Errorf("unknown format: %d %s", status, b)
	}
	if status, b := raw(t, "POST", n.url+"/v1/import/okta", n.operator, body); status != 400 || !strings.Contains(string(b), "tenant") {
		t.Errorf("operator without a tenant: %d %s", status, b)
	}
	if status, b := raw(t, "POST", n.url+"/v1/import/okta", key, "[{}, {}"); status != 400 || !strings.Contains(string(b), "line 1") {
		t.Errorf("broken array: %d %s", status, b)
	}
	many := strings.Repeat("{}\n", 10_001)
	if status, b := raw(t, "POST", n.url+"/v1/import/okta", key, many); status != 413 {
		t.Errorf("10,001 records: %d %s", status, b)
	}
}
