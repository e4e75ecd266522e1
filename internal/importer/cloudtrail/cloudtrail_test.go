package cloudtrail_test

import (
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer/cloudtrail"
	"github.com/vigilhq/vigil/internal/importer/importertest"
)

// TestPantherRecords imports every CloudTrail record of Panther's rule
// tests (console sign-ins, root, MFA and password events) and compares the
// listing with the golden file.
func TestPantherRecords(t *testing.T) {
	recs := importertest.Records(t, "testdata/panther.ndjson")
	decoded, catalog := importertest.Golden(t, cloudtrail.Format, cloudtrail.Decode, recs, "testdata/panther.golden")
	if decoded < 30 || catalog < 10 {
		t.Errorf("decoded %d of %d records, %d to catalog actions", decoded, len(recs), catalog)
	}
}

const consoleLogin = `{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::111122223333:user/alice","accountId":"111122223333","userName":"alice"},
"eventTime":"2024-05-01T08:00:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.50",
"userAgent":"Mozilla/5.0 Chrome/124.0","requestParameters":null,"responseElements":{"ConsoleLogin":"Success"},
"additionalEventData":{"LoginTo":"https://console.aws.amazon.com","MobileVersion":"No","MFAUsed":"Yes"},"eventID":"3fcfb8b5-5d4c-4b1e-a1b6-000000000001","eventType":"AwsConsoleSignIn","recipientAccountId":"111122223333"}`

func TestMapping(t *testing.T) {
	for _, tc := range []struct {
		name, rec, action, reason string
	}{
		{"console login", consoleLogin, audit.ActionLoginSuccess, ""},
		{"failed console login", `{"eventTime":"2024-05-01T08:00:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","sourceIPAddress":"203.0.113.50",
			"userIdentity":{"type":"IAMUser","userName":"alice"},"responseElements":{"ConsoleLogin":"Failure"},"errorMessage":"Failed authentication"}`, audit.ActionLoginFailure, "invalid_password"},
		{"access key", `{"eventTime":"2024-05-01T08:00:00Z","eventSource":"iam.amazonaws.com","eventName":"CreateAccessKey","sourceIPAddress":"203.0.113.50",
			"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/alice"},"responseElements":{"accessKey":{"accessKeyId":"AKIAEXAMPLE","userName":"bob","status":"Active"}}}`, audit.ActionAPIKeyCreated, ""},
		{"MFA enabled", `{"eventTime":"2024-05-01T08:00:00Z","eventSource":"iam.amazonaws.com","eventName":"EnableMFADevice","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/alice"},
			"requestParameters":{"userName":"alice","serialNumber":"arn:aws:iam::1:mfa/alice"}}`, audit.ActionMFAEnrolled, ""},
		{"denied call stays custom", `{"eventTime":"2024-05-01T08:00:00Z","eventSource":"iam.amazonaws.com","eventName":"CreateAccessKey","userIdentity":{"arn":"arn:aws:iam::1:user/alice"},
			"errorCode":"AccessDenied"}`, "aws.iam.create_access_key", ""},
		{"console password change", `{"eventTime":"2024-05-01T08:00:00Z","eventSource":"signin.amazonaws.com","eventName":"PasswordUpdated","userIdentity":{"type":"Root","arn":"arn:aws:iam::1:root"},
			"responseElements":{"PasswordUpdated":"Success"}}`, audit.ActionPasswordChanged, ""},
		{"failed console password change stays custom", `{"eventTime":"2024-05-01T08:00:00Z","eventSource":"signin.amazonaws.com","eventName":"PasswordUpdated","userIdentity":{"type":"Root","arn":"arn:aws:iam::1:root"},
			"responseElements":{"PasswordUpdated":"Failure"}}`, "aws.signin.password_updated", ""},
		{"other API call", `{"eventTime":"2024-05-01T08:00:00Z","eventSource":"s3.amazonaws.com","eventName":"PutBucketVersioning","sourceIPAddress":"AWS Internal","userIdentity":{"arn":"arn:aws:iam::1:user/alice"}}`,
			"aws.s3.put_bucket_versioning", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := cloudtrail.Decode([]byte(tc.rec))
			if err != nil {
				t.Fatal(err)
			}
			importertest.Check(t, cloudtrail.Format, ev, []byte(tc.rec))
			if ev.Action != tc.action || ev.Reason != tc.reason {
				t.Errorf("got %s reason %q", ev.Action, ev.Reason)
			}
		})
	}
	ev, _ := cloudtrail.Decode([]byte(consoleLogin))
	if ev.ID != "cloudtrail:3fcfb8b5-5d4c-4b1e-a1b6-000000000001" || ev.Actor.ID != "arn:aws:iam::111122223333:user/alice" || ev.Actor.Name != "alice" ||
		ev.Context.AuthMethod != "password" || ev.Metadata["mfa_used"] != true {
		t.Errorf("console login mapped to %+v", ev)
	}
}

func TestBadRecords(t *testing.T) {
	for _, tc := range []struct {
		rec    string
		fields []string
	}{
		{`{}`, []string{"eventName", "eventSource", "eventTime"}},
		{`{"eventName":"ConsoleLogin","eventSource":"signin.amazonaws.com","eventTime":"1 May"}`, []string{"eventTime"}},
		{`{"eventName":"ConsoleLogin","eventSource":"signin.amazonaws.com","eventTime":"2024-05-01T08:00:00Z","userIdentity":"root"}`, []string{"userIdentity"}},
	} {
		_, err := cloudtrail.Decode([]byte(tc.rec))
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
	f.Add([]byte(consoleLogin))
	for _, r := range importertest.Records(f, "testdata/panther.ndjson")[:20] {
		f.Add(r)
	}
	f.Fuzz(func(t *testing.T, raw []byte) { importertest.Fuzz(t, cloudtrail.Format, cloudtrail.Decode, raw) })
}
