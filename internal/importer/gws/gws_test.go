package gws_test

import (
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer/gws"
	"github.com/vigilhq/vigil/internal/importer/importertest"
)

// TestPantherRecords imports every Google Workspace record of Panther's
// rule tests (the flattened form) and compares the listing with the
// golden file.
func TestPantherRecords(t *testing.T) {
	recs := importertest.Records(t, "testdata/panther.ndjson")
	decoded, _ := importertest.Golden(t, gws.Format, gws.Decode, recs, "testdata/panther.golden")
	if decoded < 20 {
		t.Errorf("decoded %d of %d records", decoded, len(recs))
	}
}

// apiFailure is the Reports API's own form of a failed sign-in.
const apiFailure = `{"kind":"admin#reports#activity","id":{"time":"2024-05-01T08:00:00.000Z","uniqueQualifier":"-4711","applicationName":"login","customerId":"C01"},
"actor":{"email":"ana@example.com","profileId":"1001"},"ipAddress":"198.51.100.4",
"events":[{"type":"login","name":"login_failure","parameters":[{"name":"login_type","value":"google_password"},{"name":"login_failure_type","value":"login_failure_invalid_password"},{"name":"is_suspicious","boolValue":false}]}]}`

func TestMapping(t *testing.T) {
	for _, tc := range []struct {
		name, rec, action, reason string
	}{
		{"API form failure", apiFailure, audit.ActionLoginFailure, "invalid_password"},
		{"flattened second factor failure", `{"id":{"time":"2024-05-01 08:00:00","applicationName":"login"},"actor":{"email":"ana@example.com"},"ipAddress":"198.51.100.4",
			"type":"login","name":"login_failure","parameters":{"login_failure_type":"login_failure_invalid_second_factor"}}`, audit.ActionLoginFailure, "mfa_failed"},
		{"2SV disabled", `{"id":{"time":"2024-05-01T08:00:00Z","applicationName":"user_accounts"},"actor":{"email":"ana@example.com"},"name":"2sv_disable","type":"2sv_change"}`,
			audit.ActionMFARemoved, ""},
		// The login audit carries no user agent, so a sign-in cannot be a
		// catalog login and stays the vendor's own action.
		{"success without user agent", `{"id":{"time":"2024-05-01T08:00:00Z","applicationName":"login"},"actor":{"email":"ana@example.com"},"ipAddress":"198.51.100.4",
			"events":[{"name":"login_success","parameters":[{"name":"login_type","value":"saml"}]}]}`, "gws.login.login_success", ""},
		{"organisation data export", `{"id":{"time":"2024-05-01T08:00:00Z","applicationName":"admin"},"actor":{"email":"root@example.com"},"type":"CUSTOMER_TAKEOUT","name":"CUSTOMER_TAKEOUT_CREATED"}`,
			audit.ActionDataExported, ""},
		{"its completion stays custom", `{"id":{"time":"2024-05-01T09:00:00Z","applicationName":"admin"},"actor":{"email":"root@example.com"},"type":"CUSTOMER_TAKEOUT","name":"CUSTOMER_TAKEOUT_SUCCEEDED"}`,
			"gws.admin.customer_takeout_succeeded", ""},
		{"drive download", `{"id":{"time":"2024-05-01T08:00:00Z","applicationName":"drive"},"actor":{"email":"ana@example.com"},"ipAddress":"198.51.100.4","type":"access","name":"download","parameters":{"doc_type":"document","doc_id":"1x"}}`,
			audit.ActionDataDownloaded, ""},
		{"admin event", `{"id":{"time":"2024-05-01T08:00:00Z","applicationName":"admin"},"actor":{"email":"root@example.com"},"name":"CREATE_ROLE"}`, "gws.admin.create_role", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := gws.Decode([]byte(tc.rec))
			if err != nil {
				t.Fatal(err)
			}
			importertest.Check(t, gws.Format, ev, []byte(tc.rec))
			if ev.Action != tc.action || ev.Reason != tc.reason {
				t.Errorf("got %s reason %q", ev.Action, ev.Reason)
			}
		})
	}
	a, _ := gws.Decode([]byte(apiFailure))
	b, _ := gws.Decode([]byte(apiFailure))
	if a.ID != b.ID || a.Actor.ID != "ana@example.com" || a.Context.IP.String() != "198.51.100.4" {
		t.Errorf("ids %s %s, event %+v", a.ID, b.ID, a)
	}
}

func TestBadRecords(t *testing.T) {
	for _, tc := range []struct {
		rec    string
		fields []string
	}{
		{`{}`, []string{"id.applicationName", "events[0].name", "id.time"}},
		{`{"id":{"applicationName":"login","time":"never"},"name":"logout","ipAddress":"x"}`, []string{"id.time", "ipAddress"}},
		{`{"id":{"applicationName":"login","time":"2024-05-01T08:00:00Z"},"name":"logout","parameters":7}`, []string{"parameters"}},
		{`{"id":"login"}`, []string{"id"}},
	} {
		_, err := gws.Decode([]byte(tc.rec))
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
	f.Add([]byte(apiFailure))
	for _, r := range importertest.Records(f, "testdata/panther.ndjson")[:20] {
		f.Add(r)
	}
	f.Fuzz(func(t *testing.T, raw []byte) { importertest.Fuzz(t, gws.Format, gws.Decode, raw) })
}
