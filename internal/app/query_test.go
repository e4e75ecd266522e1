package app_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/query"
)

// seedInvestigation sends a small attack story to tenant "inv": a source
// failing on five accounts, one of which then logs in and changes its
// e-mail, and waits until the pipeline has stored it.
func seedInvestigation(t *testing.T, edit ...func(*config.Config)) (*node, *client.Client, string) {
	t.Helper()
	n := startNode(t, edit...)
	c, key := n.tenantClient(t, "inv")
	base := time.Now().Add(-30 * time.Minute).UTC().Truncate(time.Second)
	var evs []client.Event
	for i := range 10 {
		evs = append(evs, client.Event{Action: "auth.login.failure", Time: base.Add(time.Duration(i) * time.Second), Reason: "invalid_password",
			Actor: client.Actor{ID: fmt.Sprintf("u%d", i%5)}, Context: client.Context{IP: "203.0.113.66"}})
	}
	ok := login("u3", "203.0.113.66", base.Add(time.Minute))
	evs = append(evs, ok, client.Event{Action: "user.email.changed", Time: base.Add(2 * time.Minute), Actor: client.Actor{ID: "u3"},
		Target: client.Target{ID: "u3"}, Context: client.Context{IP: "203.0.113.66", SessionID: "s-u3"}, Metadata: map[string]any{"new": "evil@example.net"}})
	if _, err := c.Send(t.Context(), evs...); err != nil {
		t.Fatal(err)
	}
	waitForEvents(t, c, client.SearchParams{Since: base.Add(-time.Second)}, 12)
	return n, c, key
}

func TestQueryExportAndViewsOverHTTP(t *testing.T) { testQueryExportAndViewsOverHTTP(t) }

// TestQueryExportAndViewsOverHTTPPostgres is TestQueryExportAndViewsOverHTTP on the PostgreSQL store.
func TestQueryExportAndViewsOverHTTPPostgres(t *testing.T) {
	testQueryExportAndViewsOverHTTP(t, onPostgres(t))
}

func testQueryExportAndViewsOverHTTP(t *testing.T, edit ...func(*config.Config)) {
	n, c, key := seedInvestigation(t, edit...)
	ctx := t.Context()

	res, err := c.Query(ctx, `time:>=-1h action:auth.login.failure | stats count() as failures dc(actor.id) as accounts by ip | sort -accounts`)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 1 || res.Rows[0][0] != "203.0.113.66" || res.Rows[0][1].(json.Number) != "10" || res.Rows[0][2].(json.Number) != "5" {
		t.Fatalf("stuffing query: %+v", res)
	}
	res, err = c.Query(ctx, `time:>=-1h actor.id:u3 (action:auth.login.success OR action:user.email.changed)`)
	if err != nil || len(res.Events) != 2 || res.Events[0].Action != "user.email.changed" {
		t.Fatalf("event query: %+v %v", res, err)
	}

	var buf bytes.Buffer
	rows, err := c.Export(ctx, `time:>=-1h action:auth.*`, &buf, client.ExportOptions{Format: client.FormatCSV})
	if err != nil || rows != 11 {
		t.Fatalf("export: %d rows, %v", rows, err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(recs) != 12 || recs[0][0] != "time" {
		t.Fatalf("csv: %v %v", recs, err)
	}
	buf.Reset()
	if rows, err = c.Export(ctx, `time:>=-1h actor.id:u3`, &buf, client.ExportOptions{Format: client.FormatNDJSON}); err != nil || rows != 4 {
		t.Fatalf("ndjson export: %d %v", rows, err)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var e client.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil || e.Actor.ID != "u3" {
			t.Fatalf("ndjson line %q: %v", line, err)
		}
	}

	var actor struct {
		Logins       map[string]int        `json:"logins"`
		RecentLogins []struct{ IP string } `json:"recent_logins"`
		Sessions     []struct{ ID string } `json:"sessions"`
	}
	getJSON(t, n.url+"/v1/actors/u3", key, &actor)
	if actor.Logins["success"] != 1 || actor.Logins["failure"] != 2 || len(actor.Sessions) != 1 || actor.Sessions[0].ID != "s-u3" {
		t.Fatalf("actor view: %+v", actor)
	}
	var sess struct {
		Events []client.Event `json:"events"`
	}
	getJSON(t, n.url+"/v1/sessions/s-u3", key, &sess)
	if len(sess.Events) != 2 || sess.Events[0].Action != "auth.login.success" {
		t.Fatalf("session story is not in order: %+v", sess)
	}
	var ip struct {
		Accounts []struct {
			Actor     string `json:"actor_id"`
			Successes int
		} `json:"accounts"`
		Outcomes map[string]int `json:"outcomes"`
	}
	getJSON(t, n.url+"/v1/ips/203.0.113.66", key, &ip)
	if len(ip.Accounts) != 5 || ip.Outcomes["failure"] != 10 || ip.Outcomes["success"] != 1 {
		t.Fatalf("ip view: %+v", ip)
	}

	// Every read above is in the log, with who, what and how many rows (an
	// export is recorded before its first row, so without a count).
	audits := waitForAudits(t, c, 8)
	var sawExport bool
	for _, e := range audits {
		if e.Actor.Type != "api_key" || e.Actor.ID == "" || e.Metadata["query"] == "" || (e.Metadata["rows"] == nil) != (e.Action == "vigil.export") {
			t.Fatalf("read audit lacks who/what/rows: %+v", e)
		}
		if e.Action == "vigil.export" && e.Metadata["format"] == "csv" {
			sawExport = true
		}
	}
	if !sawExport {
		t.Fatalf("no vigil.export record of the CSV export in %+v", audits)
	}
}

func waitForAudits(t *testing.T, c *client.Client, want int) []client.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		page, err := c.SearchEvents(t.Context(), client.SearchParams{Action: "vigil.*", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) >= want || time.Now().After(deadline) {
			if len(page.Events) < want {
				t.Fatalf("%d read-audit events, want at least %d", len(page.Events), want)
			}
			return page.Events
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func getJSON(t *testing.T, url, key string, out any) {
	t.Helper()
	status, body := raw(t, "GET", url, key, "")
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// TestQueryHostileInputOverHTTP sends malformed and hostile queries and
// bodies: every answer is a clear 4xx (or a 200 that matched nothing),
// never a 5xx, and the server keeps answering.
func TestQueryHostileInputOverHTTP(t *testing.T) {
	n, _, key := seedInvestigation(t)
	deep := strings.Repeat("(", 200) + "a" + strings.Repeat(")", 200)
	cases := []string{
		``, `)`, `(`, `actor.id:`, `"unterminated`, `a:b:c`, `| stats`, `| stats count() by`, `| head 0`, `| head 99999999999`,
		`actor.id:"x' OR '1'='1"`, `actor.id:"x\" OR 1=1 --"`, `"'; DROP TABLE events; --"`, `/* comment */ action:auth.*`,
		`-- comment`, `action:auth.login.failure; DELETE FROM events`, `metadata.x:"%_\\"`, `metadata.a'b:x`,
		`geo.city:"Zürich" OR actor.id:"ｕ１"`, "actor.id:\"\u202eevil\"", "actor.id:x\x00y", "\xff\xfe",
		`time:>=-999999d`, `time:<1970-01-01`, `| stats count() by bin(time, 1s)`, `| sort -nonexistent`, deep,
		strings.Repeat("a ", query.MaxTerms+10), strings.Repeat("x", query.MaxSourceBytes+10),
		`| stats ` + strings.Repeat("count() ", 40), `ip:999.1.1.1`, `ip:203.0.113.7/24`, `asn:>99999999999`,
	}
	for _, src := range cases {
		for _, path := range []string{"/v1/query", "/v1/export"} {
			b, _ := json.Marshal(map[string]string{"q": src})
			if !utf8.ValidString(src) {
				b = []byte(`{"q":"` + src + `"}`) // raw invalid bytes in the JSON itself
			}
			status, body := raw(t, "POST", n.url+path, key, string(b))
			if status >= 500 {
				t.Errorf("%s %q: %d %s", path, src, status, body)
			}
			if status >= 400 && !bytes.Contains(body, []byte(`"code":"invalid"`)) && !bytes.Contains(body, []byte(`"code":"too_large"`)) {
				t.Errorf("%s %q: %d without a clear error: %s", path, src, status, body)
			}
		}
	}
	for _, body := range []string{`not json`, `{"q":1}`, `{"q":"a","extra":1}`, `{"q":"a"}{"q":"b"}`, `{"q":"a","format":"xml"}`,
		`{"q":"` + strings.Repeat("y", 200_000) + `"}`} {
		status, resp := raw(t, "POST", n.url+"/v1/export", key, body)
		if status < 400 || status >= 500 {
			t.Errorf("body %.40q: %d %s", body, status, resp)
		}
	}
	if status, _ := raw(t, "GET", n.url+"/v1/ips/not-an-ip", key, ""); status != http.StatusBadRequest {
		t.Errorf("bad ip view: %d", status)
	}
	status, body := raw(t, "POST", n.url+"/v1/query", key, `{"q":"time:>=-1h | stats count()"}`)
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"rows":[[`)) {
		t.Fatalf("server unhealthy after hostile input: %d %s", status, body)
	}
}
