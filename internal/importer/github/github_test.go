package github_test

import (
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer/github"
	"github.com/vigilhq/vigil/internal/importer/importertest"
)

// TestPantherRecords imports every GitHub audit-log record of Panther's
// rule tests and compares the listing with the golden file.
func TestPantherRecords(t *testing.T) {
	recs := importertest.Records(t, "testdata/panther.ndjson")
	decoded, _ := importertest.Golden(t, github.Format, github.Decode, recs, "testdata/panther.golden")
	if decoded < 40 {
		t.Errorf("decoded %d of %d records", decoded, len(recs))
	}
}

const failedLogin = `{"@timestamp":1714550400000,"_document_id":"Xy12_ab-CD","action":"user.failed_login","actor":"octocat","actor_ip":"192.0.2.7",
"actor_location":{"country_code":"DE"},"user_agent":"Mozilla/5.0 Safari/605.1","user":"octocat"}`

func TestMapping(t *testing.T) {
	for _, tc := range []struct {
		name, rec, action string
	}{
		{"failed login", failedLogin, audit.ActionLoginFailure},
		{"login", `{"@timestamp":1714550400000,"_document_id":"a1","action":"user.login","actor":"octocat","actor_ip":"192.0.2.7","user_agent":"Mozilla/5.0"}`, audit.ActionLoginSuccess},
		{"role change", `{"created_at":"2024-05-01T08:00:00Z","action":"org.update_member","actor":"admin","user":"octocat","permission":"admin","org":"acme"}`, audit.ActionRoleChanged},
		{"role change without the role", `{"created_at":"2024-05-01T08:00:00Z","action":"org.update_member","actor":"admin","user":"octocat","org":"acme"}`, "github.org.update_member"},
		{"repository event", `{"at_sign_timestamp":"2022-12-11 22:40:20.268","action":"repo.create","actor":"octocat","repo":"acme/x"}`, "github.repo.create"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := github.Decode([]byte(tc.rec))
			if err != nil {
				t.Fatal(err)
			}
			importertest.Check(t, github.Format, ev, []byte(tc.rec))
			if ev.Action != tc.action {
				t.Errorf("got %s", ev.Action)
			}
		})
	}
	ev, _ := github.Decode([]byte(failedLogin))
	if ev.ID != "github:Xy12_ab-CD" || ev.Actor.ID != "octocat" || ev.Reason != "other" || ev.Context.Geo == nil || ev.Context.Geo.Country != "DE" ||
		ev.Time.UnixMilli() != 1714550400000 {
		t.Errorf("failed login mapped to %+v", ev)
	}
}

func TestBadRecords(t *testing.T) {
	for _, tc := range []struct {
		rec    string
		fields []string
	}{
		{`{}`, []string{"action", "@timestamp"}},
		{`{"action":"repo.create","created_at":"later","actor_ip":"::g"}`, []string{"created_at", "actor_ip"}},
		{`{"action":"repo.create","@timestamp":{}}`, []string{"@timestamp"}},
	} {
		_, err := github.Decode([]byte(tc.rec))
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
	f.Add([]byte(failedLogin))
	for _, r := range importertest.Records(f, "testdata/panther.ndjson")[:20] {
		f.Add(r)
	}
	f.Fuzz(func(t *testing.T, raw []byte) { importertest.Fuzz(t, github.Format, github.Decode, raw) })
}
