package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

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
		if o.TypeUID != o.ClassUID*100+o.ActivityID || o.Metadata.UID == "" || o.Metadata.TenantUID != "inv" || o.Metadata.Version != "1.2.0" ||
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

	buf.Reset()
	if rows, err = c.Export(t.Context(), `time:>=-1h actor.id:u3`, &buf, client.ExportOptions{Format: client.FormatECS}); err != nil || rows != 4 {
		t.Fatalf("ecs export: %d rows, %v", rows, err)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var d struct {
			Timestamp string `json:"@timestamp"`
			Event     struct {
				Action   string   `json:"action"`
				Category []string `json:"category"`
			} `json:"event"`
			Organization struct{ ID string } `json:"organization"`
			User         struct{ ID string } `json:"user"`
			Source       struct{ IP string } `json:"source"`
		}
		if err := json.Unmarshal([]byte(line), &d); err != nil || d.Timestamp == "" || d.Organization.ID != "inv" || d.User.ID != "u3" ||
			d.Source.IP != "203.0.113.66" || len(d.Event.Category) != 1 || d.Event.Action == "" {
			t.Errorf("ecs line %s (%v)", line, err)
		}
	}

	status, body := raw(t, "POST", n.url+"/v1/export", key, `{"q":"time:>=-1h | stats count() by actor.id","format":"ocsf"}`)
	if status != http.StatusBadRequest || !bytes.Contains(body, []byte(`"code":"invalid"`)) {
		t.Errorf("stats as ocsf: %d %s", status, body)
	}
}

// TestOCSFFindingsAndIncidentsOverHTTP: a brute force raises a finding and
// an incident; GET /v1/findings?format=ocsf and /v1/incidents?format=ocsf
// (through the SDK's ExportFindings/ExportIncidents) answer them as OCSF
// Detection Findings, paged with X-Vigil-Next-Cursor, format=ecs as ECS
// alert documents, and an unknown format is a 400.
func TestOCSFFindingsAndIncidentsOverHTTP(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()
	c, key := n.tenantClient(t, "acme")
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	var evs []client.Event
	for i := range 30 {
		evs = append(evs, client.Event{ID: fmt.Sprintf("bf%d", i), Action: "auth.login.failure", Time: at.Add(time.Duration(i) * 5 * time.Second),
			Reason: "invalid_password", Actor: client.Actor{ID: "ceo@acme.example"}, Context: client.Context{IP: "203.0.113.66"}})
	}
	if _, err := c.Send(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		fp, err := c.SearchFindings(ctx, client.FindingParams{Rule: "brute-force"})
		if err != nil {
			t.Fatal(err)
		}
		ip, err := c.SearchIncidents(ctx, client.IncidentParams{})
		if err != nil {
			t.Fatal(err)
		}
		if len(fp.Findings) > 0 && len(ip.Incidents) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no brute-force finding and incident after 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	type detection struct {
		ClassUID    int `json:"class_uid"`
		TypeUID     int `json:"type_uid"`
		ActivityID  int `json:"activity_id"`
		SeverityID  int `json:"severity_id"`
		StatusID    int `json:"status_id"`
		FindingInfo struct {
			UID           string   `json:"uid"`
			Types         []string `json:"types"`
			RelatedEvents []struct {
				UID string `json:"uid"`
			} `json:"related_events"`
		} `json:"finding_info"`
		Metadata struct {
			TenantUID string `json:"tenant_uid"`
		} `json:"metadata"`
	}
	check := func(what string, buf *bytes.Buffer, want int) []detection {
		t.Helper()
		var out []detection
		for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
			var d detection
			if err := json.Unmarshal([]byte(line), &d); err != nil {
				t.Fatalf("%s line %q: %v", what, line, err)
			}
			if d.ClassUID != 2004 || d.TypeUID != 200400+d.ActivityID || d.SeverityID < 2 || d.StatusID != 99 || d.FindingInfo.UID == "" ||
				len(d.FindingInfo.RelatedEvents) == 0 || d.Metadata.TenantUID != "acme" {
				t.Errorf("%s: %s", what, line)
			}
			out = append(out, d)
		}
		if len(out) < want {
			t.Errorf("%s: %d objects, want at least %d", what, len(out), want)
		}
		return out
	}
	var buf bytes.Buffer
	nf, err := c.ExportFindings(ctx, client.FindingParams{Rule: "brute-force", Limit: 1}, client.FormatOCSF, &buf, 0)
	if err != nil || nf == 0 {
		t.Fatalf("findings: %d, %v", nf, err)
	}
	fs := check("findings", &buf, nf)
	if fs[0].FindingInfo.Types[0] != "brute-force" {
		t.Errorf("finding types %v", fs[0].FindingInfo.Types)
	}
	buf.Reset()
	ni, err := c.ExportIncidents(ctx, client.IncidentParams{}, client.FormatOCSF, &buf, 1)
	if err != nil || ni != 1 {
		t.Fatalf("incidents: %d, %v", ni, err)
	}
	check("incidents", &buf, 1)

	// The same records as ECS alert documents (format=ecs).
	type alertDoc struct {
		Event struct {
			Kind     string `json:"kind"`
			Dataset  string `json:"dataset"`
			ID       string `json:"id"`
			Severity int    `json:"severity"`
		} `json:"event"`
		Rule struct {
			ID string `json:"id"`
		} `json:"rule"`
		Organization struct {
			ID string `json:"id"`
		} `json:"organization"`
		Related struct {
			User []string `json:"user"`
		} `json:"related"`
		Vigil map[string]struct {
			Evidence []string `json:"evidence"`
			Findings []string `json:"findings"`
		} `json:"vigil"`
	}
	checkECS := func(what, dataset string, buf *bytes.Buffer) alertDoc {
		t.Helper()
		var d alertDoc
		line, _, _ := strings.Cut(buf.String(), "\n")
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("%s %q: %v", what, line, err)
		}
		if d.Event.Kind != "alert" || d.Event.Dataset != dataset || d.Event.ID == "" || d.Event.Severity < 2 || d.Organization.ID != "acme" ||
			len(d.Related.User) == 0 || d.Related.User[0] != "ceo@acme.example" {
			t.Errorf("%s: %s", what, line)
		}
		return d
	}
	buf.Reset()
	if nf, err := c.ExportFindings(ctx, client.FindingParams{Rule: "brute-force"}, client.FormatECS, &buf, 1); err != nil || nf != 1 {
		t.Fatalf("ecs findings: %d, %v", nf, err)
	}
	if d := checkECS("ecs finding", "vigil.finding", &buf); d.Rule.ID != "brute-force" || len(d.Vigil["finding"].Evidence) == 0 {
		t.Errorf("ecs finding: %+v", d)
	}
	buf.Reset()
	if ni, err := c.ExportIncidents(ctx, client.IncidentParams{}, client.FormatECS, &buf, 1); err != nil || ni != 1 {
		t.Fatalf("ecs incidents: %d, %v", ni, err)
	}
	if d := checkECS("ecs incident", "vigil.incident", &buf); len(d.Vigil["incident"].Findings) == 0 {
		t.Errorf("ecs incident: %+v", d)
	}
	for _, path := range []string{"/v1/findings?format=xml", "/v1/incidents?format=csv"} {
		if status, body := raw(t, "GET", n.url+path, key, ""); status != http.StatusBadRequest || !bytes.Contains(body, []byte(`"code":"invalid"`)) {
			t.Errorf("%s: %d %s", path, status, body)
		}
	}
}
