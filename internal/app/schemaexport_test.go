package app_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/client"
)

// TestOCSFExportOverHTTP exports the seeded story as OCSF through POST
// /v1/export: each stored event comes back as its OCSF class (the failed
// sign-ins and the login as Authentication, the e-mail change as Account
// Change) with the tenant and event id in metadata, and a stats query is
// refused with a clear 400 rather than a half-written stream.
func TestOCSFExportOverHTTP(t *testing.T) {
	n, c, key := seedInvestigation(t)
	var buf bytes.Buffer
	rows, err := c.Export(t.Context(), `time:>=-1h actor.id:u3`, &buf, client.ExportOptions{Format: client.FormatOCSF})
	if err != nil || rows != 4 {
		t.Fatalf("ocsf export: %d rows, %v", rows, err)
	}
	classes := map[string]int{}
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var o struct {
			ClassUID   int    `json:"class_uid"`
			TypeUID    int    `json:"type_uid"`
			ActivityID int    `json:"activity_id"`
			Message    string `json:"message"`
			StatusID   int    `json:"status_id"`
			Time       int64  `json:"time"`
			Metadata   struct {
				UID       string `json:"uid"`
				TenantUID string `json:"tenant_uid"`
				Version   string `json:"version"`
			} `json:"metadata"`
			User        struct{ UID string } `json:"user"`
			SrcEndpoint struct{ IP string }  `json:"src_endpoint"`
		}
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if o.TypeUID != o.ClassUID*100+o.ActivityID || o.Metadata.UID == "" || o.Metadata.TenantUID != "inv" || o.Metadata.Version != "1.3.0" ||
			o.Time == 0 || o.SrcEndpoint.IP != "203.0.113.66" || o.User.UID != "u3" {
			t.Errorf("line %s", line)
		}
		switch o.Message {
		case "auth.login.failure":
			if o.ClassUID != 3002 || o.ActivityID != 1 || o.StatusID != 2 {
				t.Errorf("failure: %s", line)
			}
		case "auth.login.success":
			if o.ClassUID != 3002 || o.StatusID != 1 {
				t.Errorf("login: %s", line)
			}
		case "user.email.changed":
			if o.ClassUID != 3001 || o.ActivityID != 99 {
				t.Errorf("e-mail change: %s", line)
			}
		}
		classes[o.Message]++
	}
	if classes["auth.login.failure"] != 2 || classes["auth.login.success"] != 1 || classes["user.email.changed"] != 1 {
		t.Errorf("exported %v", classes)
	}

	status, body := raw(t, "POST", n.url+"/v1/export", key, `{"q":"time:>=-1h | stats count() by actor.id","format":"ocsf"}`)
	if status != http.StatusBadRequest || !bytes.Contains(body, []byte(`"code":"invalid"`)) {
		t.Errorf("stats as ocsf: %d %s", status, body)
	}
}
