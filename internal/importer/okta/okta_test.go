package okta_test

import (
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer/importertest"
	"github.com/vigilhq/vigil/internal/importer/okta"
)

// TestPantherRecords imports every Okta record of Panther's rule tests:
// each becomes an event that ingestion accepts (or a field-naming error),
// and the listing of what each became matches the golden file.
func TestPantherRecords(t *testing.T) {
	recs := importertest.Records(t, "testdata/panther.ndjson")
	decoded, catalog := importertest.Golden(t, okta.Format, okta.Decode, recs, "testdata/panther.golden")
	if decoded < 45 || catalog < 12 { // the rest are Panther's own aggregates, not System Log records
		t.Errorf("decoded %d of %d records, %d to catalog actions", decoded, len(recs), catalog)
	}
}

const login = `{"uuid":"aac560bd-f125-11ee-9caa-cd5d09945def","published":"2024-04-02T19:17:37.621Z","eventType":"user.session.start",
"actor":{"alternateId":"casey.hill@example.com","displayName":"Casey Hill","id":"00ubewfku1EX0WCFk697","type":"User"},
"authenticationContext":{"credentialType":"PASSWORD","externalSessionId":"idxvF50v"},
"client":{"ipAddress":"99.108.5.25","userAgent":{"rawUserAgent":"Mozilla/5.0 Chrome/123.0"},
"geographicalContext":{"city":"Atlanta","state":"Georgia","country":"United States","geolocation":{"lat":33.9794,"lon":-84.3459}}},
"outcome":{"result":"SUCCESS"},"transaction":{"id":"601b158a"}}`

func TestLoginMapping(t *testing.T) {
	ev, err := okta.Decode([]byte(login))
	if err != nil {
		t.Fatal(err)
	}
	importertest.Check(t, okta.Format, ev, []byte(login))
	if ev.ID != "okta:aac560bd-f125-11ee-9caa-cd5d09945def" || ev.Action != audit.ActionLoginSuccess ||
		ev.Actor.ID != "casey.hill@example.com" || ev.Actor.Email != "casey.hill@example.com" || ev.Actor.Name != "Casey Hill" ||
		ev.Context.IP.String() != "99.108.5.25" || ev.Context.UserAgent != "Mozilla/5.0 Chrome/123.0" ||
		ev.Context.SessionID != "idxvF50v" || ev.Context.AuthMethod != "password" || ev.Context.RequestID != "601b158a" {
		t.Errorf("login mapped to %+v", ev)
	}
	if g := ev.Context.Geo; g == nil || g.City != "Atlanta" || g.Country != "US" || g.Region != "Georgia" || g.Latitude == nil || *g.Latitude != 33.9794 {
		t.Errorf("geo = %+v", g)
	}
	if ev.Time.Format("2006-01-02T15:04:05.000Z") != "2024-04-02T19:17:37.621Z" {
		t.Errorf("time = %s", ev.Time)
	}
}

func TestMapping(t *testing.T) {
	for _, tc := range []struct {
		name, rec, action, reason string
		meta                      map[string]string
	}{
		{"failed login", `{"published":"2024-04-02T19:17:37Z","eventType":"user.session.start","actor":{"alternateId":"x@example.com"},
			"client":{"ipAddress":"1.2.3.4"},"outcome":{"result":"FAILURE","reason":"INVALID_CREDENTIALS"}}`, audit.ActionLoginFailure, "invalid_password", nil},
		{"locked out", `{"published":"2024-04-02T19:17:37Z","eventType":"user.session.start","actor":{"alternateId":"x@example.com"},
			"client":{"ipAddress":"1.2.3.4"},"outcome":{"result":"FAILURE","reason":"LOCKED_OUT"}}`, audit.ActionLoginFailure, "account_locked", nil},
		{"login without user agent stays custom", `{"published":"2024-04-02T19:17:37Z","eventType":"user.session.start","actor":{"alternateId":"x@example.com"},
			"client":{"ipAddress":"1.2.3.4"},"outcome":{"result":"SUCCESS"},"transaction":{"id":"t1"}}`, "okta.user.session.start", "",
			map[string]string{"unmapped": "auth.login.success lacks context.user_agent"}},
		{"factor removed", `{"published":"2022-03-22 14:21:53.225","eventType":"system.mfa.factor.deactivate","actor":{"alternateId":"homer@example.gov"},
			"target":[{"alternateId":"homer@example.gov","type":"User"}],"debugContext":{"debugData":{"factor":"SMS_FACTOR"}},"outcome":{"result":"SUCCESS"}}`,
			audit.ActionMFARemoved, "", map[string]string{"factor": "sms"}},
		{"admin roles granted", `{"published":"2021-06-26T21:27:03Z","eventType":"user.account.privilege.grant","actor":{"alternateId":"jack@example.com"},
			"target":[{"alternateId":"thomas@example.com","type":"User"}],"outcome":{"result":"SUCCESS"},
			"debugContext":{"debugData":{"privilegeGranted":"Organization administrator, Application administrator (all)"}}}`, audit.ActionRoleChanged, "",
			map[string]string{"new_role": "admin", "okta_privilege": "Organization administrator, Application administrator (all)"}},
		{"super admin granted", `{"published":"2021-06-26T21:27:03Z","eventType":"user.account.privilege.grant","actor":{"alternateId":"jack@example.com"},
			"target":[{"alternateId":"thomas@example.com","type":"User"}],"outcome":{"result":"SUCCESS"},
			"debugContext":{"debugData":{"privilegeGranted":"Read-only Administrator, Super administrator"}}}`, audit.ActionRoleChanged, "",
			map[string]string{"new_role": "superadmin"}},
		{"read-only admin granted", `{"published":"2021-06-26T21:27:03Z","eventType":"user.account.privilege.grant","actor":{"alternateId":"jack@example.com"},
			"target":[{"alternateId":"thomas@example.com","type":"User"}],"outcome":{"result":"SUCCESS"},
			"debugContext":{"debugData":{"privilegeGranted":"Read-only Administrator"}}}`, audit.ActionRoleChanged, "",
			map[string]string{"new_role": "Read-only Administrator"}},
		{"login without session or transaction is its own session", `{"uuid":"u-1","published":"2024-04-02T19:17:37Z","eventType":"user.session.start","actor":{"alternateId":"x@example.com"},
			"client":{"ipAddress":"1.2.3.4","userAgent":{"rawUserAgent":"Mozilla/5.0 Chrome/123.0"}},"outcome":{"result":"SUCCESS"}}`, audit.ActionLoginSuccess, "", nil},
		{"unknown type kept as custom", `{"published":"2024-04-02T19:17:37Z","eventType":"policy.lifecycle.update","actor":{"alternateId":"admin@example.com"},"outcome":{"result":"SUCCESS"}}`,
			"okta.policy.lifecycle.update", "", map[string]string{"okta_event_type": "policy.lifecycle.update"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := okta.Decode([]byte(tc.rec))
			if err != nil {
				t.Fatal(err)
			}
			importertest.Check(t, okta.Format, ev, []byte(tc.rec))
			if ev.Action != tc.action || ev.Reason != tc.reason {
				t.Errorf("got %s reason %q, want %s reason %q", ev.Action, ev.Reason, tc.action, tc.reason)
			}
			for k, v := range tc.meta {
				if ev.Metadata[k] != v {
					t.Errorf("metadata.%s = %v, want %q", k, ev.Metadata[k], v)
				}
			}
		})
	}
}

// TestSameRecordSameID: a re-import derives the same ids, with or without
// a uuid.
func TestSameRecordSameID(t *testing.T) {
	noUUID := `{"published":"2024-04-02T19:17:37Z","eventType":"user.account.lock","actor":{"alternateId":"x@example.com"}}`
	for _, rec := range []string{login, noUUID} {
		a, err1 := okta.Decode([]byte(rec))
		b, err2 := okta.Decode([]byte(rec))
		if err1 != nil || err2 != nil || a.ID != b.ID {
			t.Errorf("ids %v %v (%v, %v)", a, b, err1, err2)
		}
	}
}

func TestBadRecords(t *testing.T) {
	for _, tc := range []struct {
		rec    string
		fields []string
	}{
		{`{}`, []string{"eventType", "published"}},
		{`{"eventType":"user.session.start","published":"yesterday","client":{"ipAddress":"not-an-ip"}}`, []string{"published", "client.ipAddress"}},
		{`{"eventType":7,"published":"2024-04-02T19:17:37Z"}`, []string{"eventType"}},
		{`[1]`, nil},
		{`{"eventType":`, nil},
	} {
		_, err := okta.Decode([]byte(tc.rec))
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
	f.Fuzz(func(t *testing.T, raw []byte) { importertest.Fuzz(t, okta.Format, okta.Decode, raw) })
}
