package auth0_test

import (
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer/auth0"
	"github.com/vigilhq/vigil/internal/importer/importertest"
)

// TestPantherRecords imports every Auth0 record of Panther's rule tests
// (log-stream form, {"log_id", "data"}) and compares the listing of what
// each became with the golden file.
func TestPantherRecords(t *testing.T) {
	recs := importertest.Records(t, "testdata/panther.ndjson")
	decoded, catalog := importertest.Golden(t, auth0.Format, auth0.Decode, recs, "testdata/panther.golden")
	if decoded < len(recs)-2 || catalog < 5 {
		t.Errorf("decoded %d of %d records, %d to catalog actions", decoded, len(recs), catalog)
	}
}

const login = `{"log_id":"90020240101000000000000000000000000001223372000000000001","date":"2024-01-01T10:00:00.123Z","type":"s",
"ip":"203.0.113.9","user_agent":"Mozilla/5.0 Firefox/120.0","user_id":"auth0|65a1","user_name":"ana@example.com",
"connection":"Username-Password-Authentication","strategy":"auth0","client_id":"abc","client_name":"Dashboard",
"location_info":{"country_code":"pt","city_name":"Lisbon","latitude":38.7,"longitude":-9.1}}`

func TestMapping(t *testing.T) {
	for _, tc := range []struct {
		name, rec, action, reason, method string
	}{
		{"login", login, audit.ActionLoginSuccess, "", "password"},
		{"wrapped in a log stream", `{"log_id":"x1","data":` + login + `}`, audit.ActionLoginSuccess, "", "password"},
		{"wrong password", `{"date":"2024-01-01T10:00:00Z","type":"fp","ip":"203.0.113.9","user_name":"ana@example.com"}`, audit.ActionLoginFailure, "invalid_password", ""},
		{"unknown user", `{"date":"2024-01-01T10:00:00Z","type":"fu","ip":"203.0.113.9","user_name":"nobody@example.com"}`, audit.ActionLoginFailure, "unknown_user", ""},
		{"blocked", `{"date":"2024-01-01T10:00:00Z","type":"limit_wc","ip":"203.0.113.9","user_name":"ana@example.com"}`, audit.ActionLoginFailure, "account_locked", ""},
		{"social login", `{"date":"2024-01-01T10:00:00Z","type":"s","ip":"203.0.113.9","user_agent":"UA","user_id":"google-oauth2|1","log_id":"l2"}`, audit.ActionLoginSuccess, "", "oauth"},
		{"management API call", `{"date":"2024-01-01T10:00:00Z","type":"sapi","ip":"203.0.113.9","description":"Update tenant settings"}`, "auth0.sapi", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := auth0.Decode([]byte(tc.rec))
			if err != nil {
				t.Fatal(err)
			}
			if ev.Action != tc.action || ev.Reason != tc.reason || ev.Context.AuthMethod != tc.method {
				t.Errorf("got %s reason %q method %q", ev.Action, ev.Reason, ev.Context.AuthMethod)
			}
		})
	}
	ev, _ := auth0.Decode([]byte(login))
	importertest.Check(t, auth0.Format, ev, []byte(login))
	if ev.ID != "auth0:90020240101000000000000000000000000001223372000000000001" || ev.Actor.ID != "auth0|65a1" ||
		ev.Actor.Email != "ana@example.com" || ev.Context.SessionID == "" || ev.Context.Geo == nil || ev.Context.Geo.Country != "PT" {
		t.Errorf("login mapped to %+v", ev)
	}
}

func TestBadRecords(t *testing.T) {
	for _, tc := range []struct {
		rec    string
		fields []string
	}{
		{`{}`, []string{"type", "date"}},
		{`{"type":"s","date":"soon","ip":"999.1.1.1"}`, []string{"date", "ip"}},
		{`{"type":["s"],"date":"2024-01-01T10:00:00Z"}`, []string{"type"}},
		{`"s"`, nil},
	} {
		_, err := auth0.Decode([]byte(tc.rec))
		if err == nil {
			t.Errorf("%s: accepted", tc.rec)
			continue
		}
		importertest.CheckError(t, []byte(tc.rec), err)
		ps := audit.ErrorProblems(err)
		for i, f := range tc.fields {
			if i >= len(ps) || ps[i].Field != f {
				t.Errorf("%s: problems %v, want fields %v", tc.rec, ps, tc.fields)
				break
			}
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(login))
	for _, r := range importertest.Records(f, "testdata/panther.ndjson")[:20] {
		f.Add(r)
	}
	f.Fuzz(func(t *testing.T, raw []byte) { importertest.Fuzz(t, auth0.Format, auth0.Decode, raw) })
}
