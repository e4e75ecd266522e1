package ecs_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/export/ecs"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

func finding() *audit.Finding {
	return &audit.Finding{
		ID: "f_1", Tenant: "acme", RuleID: "brute-force", RuleName: "Brute force against one account",
		Severity: audit.SeverityHigh, Score: 80, Status: audit.StatusResolved, Resolution: audit.ResolutionMalicious, Note: "locked the account",
		GroupKey: "actor:u_123", ActorID: "u_123", IP: "198.51.100.7", SessionID: "s_9",
		Explanation: "25 failed sign-ins for u_123 from 198.51.100.7 in 5m",
		Evidence:    []string{"01JEVT0000000000000000002", "01JEVT0000000000000000005"},
		Facts:       map[string]any{"failures": 25}, Count: 25, IncidentID: "inc_1",
		FirstSeen: t0, LastSeen: t0.Add(5 * time.Minute), CreatedAt: t0.Add(5 * time.Minute), UpdatedAt: t0.Add(time.Hour),
	}
}

func incident() *audit.Incident {
	return &audit.Incident{
		ID: "inc_1", Tenant: "acme", Status: audit.StatusAcknowledged, Note: "looking",
		Severity: audit.SeverityCritical, Score: 95, Headline: "Account takeover", HeadlineRule: "login-takeover-change", Family: "account-takeover",
		Summary:   "u_123 signed in from a new country and removed MFA",
		FirstSeen: t0, LastSeen: t0.Add(10 * time.Minute),
		Findings: []string{"f_1", "f_2", "f_3"}, FindingCount: 3, Rules: []string{"brute-force", "credential-stuffing-subnet", "login-takeover-change"},
		IPs: []string{"198.51.100.7", "2001:db8::1"}, IPCount: 2, Networks: []string{"198.51.100.0/24", "2001:db8::/48"},
		Accounts: []audit.AccountAtRisk{{Actor: "u_123", Reason: audit.RiskTakeoverChange, Severity: audit.SeverityCritical, Findings: []string{"f_2"}, LastSeen: t0.Add(10 * time.Minute)},
			{Actor: "u_456", Reason: audit.RiskTakeoverChange, Severity: audit.SeverityHigh, Findings: []string{"f_3"}, LastSeen: t0.Add(9 * time.Minute)}},
		Evidence:  []string{"01JEVT0000000000000000002", "01JEVT0000000000000000004"},
		CreatedAt: t0.Add(5 * time.Minute), UpdatedAt: t0.Add(10 * time.Minute),
	}
}

// TestGolden pins the mapping of a finding and an incident.
func TestGolden(t *testing.T) {
	cases := []struct {
		name string
		doc  ecs.Object
	}{
		{"finding", ecs.Finding(finding())},
		{"incident", ecs.Incident(incident())},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(c.doc); err != nil {
				t.Fatal(err)
			}
			got := b.Bytes()
			path := filepath.Join("testdata", "golden", c.name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/export/ecs -run TestGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s:\n%s", c.name, path, got)
			}
		})
	}
}

// TestFindingSchema checks finding and incident documents of every status,
// severity and shape against ECS, and what they say.
func TestFindingSchema(t *testing.T) {
	var docs []ecs.Object
	for _, st := range []audit.FindingStatus{audit.StatusOpen, audit.StatusAcknowledged, audit.StatusResolved} {
		for _, sev := range []audit.Severity{audit.SeverityLow, audit.SeverityMedium, audit.SeverityHigh, audit.SeverityCritical, ""} {
			f := finding()
			f.Status, f.Severity = st, sev
			docs = append(docs, ecs.Finding(f))
			in := incident()
			in.Status, in.Severity = st, sev
			docs = append(docs, ecs.Incident(in))
		}
	}
	// Sparse records: no actor, a network instead of an address, no rule.
	docs = append(docs,
		ecs.Finding(&audit.Finding{ID: "f", RuleID: "custom", IP: "198.51.100.0/24", CreatedAt: t0, FirstSeen: t0, LastSeen: t0, UpdatedAt: t0}),
		ecs.Incident(&audit.Incident{ID: "i", Status: audit.StatusOpen, CreatedAt: t0, FirstSeen: t0, LastSeen: t0, UpdatedAt: t0}))
	for i, d := range docs {
		if _, err := checkDoc(d); err != nil {
			t.Errorf("document %d (%v): %v", i, d["event"].(ecs.Object)["dataset"], err)
		}
	}

	doc, err := checkDoc(ecs.Finding(finding()))
	if err != nil {
		t.Fatal(err)
	}
	e := doc["event"].(map[string]any)
	if e["kind"] != "alert" || e["severity"] != json.Number("4") || e["risk_score"] != json.Number("80") || e["id"] != "f_1" {
		t.Errorf("finding event: %v", e)
	}
	if r := doc["related"].(map[string]any); len(r["user"].([]any)) != 1 || r["ip"].([]any)[0] != "198.51.100.7" {
		t.Errorf("finding related: %v", r)
	}
	v := doc["vigil"].(map[string]any)["finding"].(map[string]any)
	if ev := v["evidence"].([]any); len(ev) != 2 || ev[0] != "01JEVT0000000000000000002" {
		t.Errorf("finding evidence: %v", v["evidence"])
	}
	if th := doc["threat"].(map[string]any)["technique"].(map[string]any); th["id"].([]any)[0] != "T1110" || th["subtechnique"] != nil {
		t.Errorf("brute force technique: %v", th)
	}

	// The network key is not an address: it stays in vigil.finding.
	sparse, _ := checkDoc(ecs.Finding(&audit.Finding{ID: "f", RuleID: "custom", IP: "198.51.100.0/24", CreatedAt: t0}))
	if sparse["source"] != nil || sparse["related"] != nil || sparse["threat"] != nil ||
		sparse["vigil"].(map[string]any)["finding"].(map[string]any)["ip"] != "198.51.100.0/24" {
		t.Errorf("sparse finding: %v", sparse)
	}

	// An incident is the group of its findings: every account and address
	// is related, the techniques of all its rules are listed once each.
	doc, err = checkDoc(ecs.Incident(incident()))
	if err != nil {
		t.Fatal(err)
	}
	r := doc["related"].(map[string]any)
	if len(r["user"].([]any)) != 2 || len(r["ip"].([]any)) != 2 || doc["user"] != nil || doc["source"] != nil {
		t.Errorf("incident related: %v, user %v, source %v", r, doc["user"], doc["source"])
	}
	th := doc["threat"].(map[string]any)["technique"].(map[string]any)
	if ids := th["id"].([]any); len(ids) != 1 || ids[0] != "T1110" {
		t.Errorf("incident techniques: %v", th)
	}
	if sub := th["subtechnique"].(map[string]any)["id"].([]any); len(sub) != 1 || sub[0] != "T1110.004" {
		t.Errorf("incident subtechniques: %v", th)
	}
	vi := doc["vigil"].(map[string]any)["incident"].(map[string]any)
	if f := vi["findings"].([]any); len(f) != 3 || vi["finding_count"] != json.Number("3") {
		t.Errorf("incident findings: %v", vi)
	}
	if doc["rule"].(map[string]any)["category"] != "account-takeover" {
		t.Errorf("incident rule: %v", doc["rule"])
	}
}

// TestCheckerRejects: the checker fails on an unknown field, a value of
// the wrong type, a category value ECS does not have, and a custom field
// outside the namespace's two objects.
func TestCheckerRejects(t *testing.T) {
	cases := []struct {
		name, want string
		spoil      func(ecs.Object)
	}{
		{"unknown field", "rule.nickname is not an ECS field", func(d ecs.Object) { d["rule"].(ecs.Object)["nickname"] = "x" }},
		{"wrong type", "event.severity (long)", func(d ecs.Object) { d["event"].(ecs.Object)["severity"] = "high" }},
		{"not an ip", "related.ip (ip)", func(d ecs.Object) { d["related"].(ecs.Object)["ip"] = []string{"198.51.100.0/24"} }},
		{"category", "event.category case", func(d ecs.Object) { d["event"].(ecs.Object)["category"] = []string{"case"} }},
		{"kind", "event.kind incident", func(d ecs.Object) { d["event"].(ecs.Object)["kind"] = "incident" }},
		{"namespace", "vigil.extra is outside", func(d ecs.Object) { d["vigil"].(ecs.Object)["extra"] = "x" }},
	}
	for _, c := range cases {
		d := ecs.Finding(finding())
		c.spoil(d)
		if _, err := checkDoc(d); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}
