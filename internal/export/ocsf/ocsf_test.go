package ocsf_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/export/ocsf"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

func loginSuccess() *audit.Event {
	return &audit.Event{
		ID: "01JEVT0000000000000000001", Tenant: "acme", Time: t0, ReceivedAt: t0.Add(150 * time.Millisecond),
		Action: audit.ActionLoginSuccess, Outcome: audit.OutcomeSuccess,
		Actor: audit.Actor{ID: "u_123", Type: audit.ActorUser, Email: "alice@example.com", Name: "Alice"},
		Context: audit.Context{IP: netip.MustParseAddr("198.51.100.7"), UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
			SessionID: "s_9", RequestID: "req_1", AuthMethod: "password", DeviceID: "dev_1"},
		Enrichment: audit.Enrichment{
			Geo:     &audit.Geo{Country: "FR", Region: "IDF", City: "Paris", Latitude: 48.8566, Longitude: 2.3522, HasLocation: true, Source: "geoip"},
			Network: &audit.Network{Scope: audit.ScopePublic, ASN: 64500, ASOrg: "Example Net", Lists: []string{"datacenter"}},
		},
		Risk: &audit.Risk{Score: 35, Reasons: []string{"new_country"}, Decision: audit.DecisionAllow},
	}
}

func loginFailure() *audit.Event {
	return &audit.Event{
		ID: "01JEVT0000000000000000002", Tenant: "acme", Time: t0.Add(time.Second), ReceivedAt: t0.Add(time.Second),
		Action: audit.ActionLoginFailure, Outcome: audit.OutcomeFailure, Reason: "invalid_password",
		Actor:   audit.Actor{ID: "bob@example.com", Type: audit.ActorUser},
		Context: audit.Context{IP: netip.MustParseAddr("2001:db8::1"), AuthMethod: "oauth", Geo: &audit.ClientGeo{Country: "DE"}},
	}
}

func passwordChanged() *audit.Event {
	return &audit.Event{
		ID: "01JEVT0000000000000000003", Tenant: "acme", Time: t0.Add(2 * time.Second), ReceivedAt: t0.Add(2 * time.Second),
		Action: audit.ActionPasswordChanged, Outcome: audit.OutcomeSuccess,
		Actor:   audit.Actor{ID: "u_123", Type: audit.ActorUser},
		Context: audit.Context{IP: netip.MustParseAddr("198.51.100.7"), SessionID: "s_9"},
	}
}

func mfaRemoved() *audit.Event {
	return &audit.Event{
		ID: "01JEVT0000000000000000004", Tenant: "acme", Time: t0.Add(3 * time.Second), ReceivedAt: t0.Add(3 * time.Second),
		Action:   audit.ActionMFARemoved,
		Actor:    audit.Actor{ID: "admin_1", Type: audit.ActorUser},
		Target:   audit.Target{Type: "user", ID: "u_123"},
		Context:  audit.Context{IP: netip.MustParseAddr("203.0.113.9"), UserAgent: "curl/8.5.0"},
		Metadata: map[string]any{"factor": "totp"},
	}
}

func otherEvents() []*audit.Event {
	return []*audit.Event{
		{ID: "e5", Tenant: "acme", Time: t0, Action: audit.ActionAPIKeyCreated, Actor: audit.Actor{ID: "u_1", Type: audit.ActorUser}, Target: audit.Target{Type: "api_key", ID: "key_1"}},
		{ID: "e6", Tenant: "acme", Time: t0, Action: audit.ActionEmailChanged, Actor: audit.Actor{ID: "u_1"}, Target: audit.Target{ID: "u_2", Name: "Bob"}},
		{ID: "e7", Tenant: "acme", Time: t0, Action: audit.ActionRoleChanged, Actor: audit.Actor{ID: "u_1"}, Target: audit.Target{ID: "u_2"}, Metadata: map[string]any{"new_role": "admin"}},
		{ID: "e8", Tenant: "acme", Time: t0, Action: audit.ActionPasswordReset, Actor: audit.Actor{ID: "u_1"}, Metadata: map[string]any{"stage": "requested"}},
		{ID: "e9", Tenant: "acme", Time: t0, Action: audit.ActionLogout, Actor: audit.Actor{ID: "u_1"}, Reason: "user", Context: audit.Context{SessionID: "s"}},
		{ID: "e10", Tenant: "acme", Time: t0, Action: audit.ActionSessionRevoked, Actor: audit.Actor{ID: "u_1"}, Reason: "security", Context: audit.Context{SessionID: "s"}},
		{ID: "e11", Tenant: "acme", Time: t0, Action: audit.ActionSessionCreated, Actor: audit.Actor{ID: "u_1"}, Context: audit.Context{SessionID: "s"}},
		{ID: "e12", Tenant: "acme", Time: t0, Action: audit.ActionMFAEnrolled, Actor: audit.Actor{ID: "u_1"}, Metadata: map[string]any{"factor": "webauthn"}},
		{ID: "e13", Tenant: "acme", Time: t0, Action: audit.ActionDataExported, Actor: audit.Actor{ID: "u_1"}, Target: audit.Target{Type: "report", ID: "r1", Name: "Q4"}},
		{ID: "e14", Tenant: "acme", Time: t0, Action: "billing.plan.changed", Actor: audit.Actor{ID: "u_1"}},
		{ID: "e15", Tenant: "acme", Time: t0, Action: audit.ActionExport, Actor: audit.Actor{ID: "key_1", Type: audit.ActorAPIKey}},
		{ID: "e16", Tenant: "acme", Time: t0, Action: "session.refreshed", Actor: audit.Actor{ID: "u_1"}},
		{ID: "e17", Tenant: "acme", Time: t0, Action: audit.ActionAPIKeyRevoked, Actor: audit.Actor{ID: "u_1"}, Target: audit.Target{Type: "api_key", ID: "key_1"}},
	}
}

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
		Severity: audit.SeverityCritical, Score: 95, Headline: "Account takeover", HeadlineRule: "ato-change-after-risky-login", Family: "account-takeover",
		Summary:   "u_123 signed in from a new country and removed MFA",
		FirstSeen: t0, LastSeen: t0.Add(10 * time.Minute),
		Findings: []string{"f_1", "f_2"}, FindingCount: 2, Rules: []string{"ato-change-after-risky-login", "brute-force"},
		IPs: []string{"198.51.100.7"}, IPCount: 1, Networks: []string{"198.51.100.0/24"},
		Accounts:  []audit.AccountAtRisk{{Actor: "u_123", Reason: audit.RiskTakeoverChange, Severity: audit.SeverityCritical, Findings: []string{"f_2"}, LastSeen: t0.Add(10 * time.Minute)}},
		Evidence:  []string{"01JEVT0000000000000000002", "01JEVT0000000000000000004"},
		CreatedAt: t0.Add(5 * time.Minute), UpdatedAt: t0.Add(10 * time.Minute),
	}
}

// TestGolden pins the mapping of one record of each kind.
func TestGolden(t *testing.T) {
	cases := []struct {
		name string
		obj  ocsf.Object
	}{
		{"login-success", ocsf.Event(loginSuccess())},
		{"login-failure", ocsf.Event(loginFailure())},
		{"password-changed", ocsf.Event(passwordChanged())},
		{"mfa-removed", ocsf.Event(mfaRemoved())},
		{"finding", ocsf.Finding(finding())},
		{"incident", ocsf.Incident(incident())},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(c.obj); err != nil {
				t.Fatal(err)
			}
			got := b.Bytes()
			path := filepath.Join("testdata", "golden", c.name+".json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/export/ocsf -run TestGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s:\n%s", c.name, path, got)
			}
		})
	}
}

// TestClasses checks which class and activity each catalog action gets.
func TestClasses(t *testing.T) {
	want := map[string][2]int{
		audit.ActionLoginSuccess: {3002, 1}, audit.ActionLoginFailure: {3002, 1}, audit.ActionLogout: {3002, 2},
		audit.ActionSessionCreated: {3002, 1}, audit.ActionSessionRevoked: {3002, 2}, "session.refreshed": {3002, 99},
		audit.ActionPasswordChanged: {3001, 3}, audit.ActionPasswordReset: {3001, 4},
		audit.ActionMFAEnrolled: {3001, 10}, audit.ActionMFARemoved: {3001, 11},
		audit.ActionEmailChanged: {3001, 99}, audit.ActionRoleChanged: {3001, 99},
		audit.ActionAPIKeyCreated: {3001, 99}, audit.ActionAPIKeyRevoked: {3001, 99},
		audit.ActionDataExported: {6003, 2}, audit.ActionExport: {6003, 2}, "billing.plan.changed": {6003, 99},
	}
	for _, ev := range allEvents() {
		o := ocsf.Event(ev)
		w, ok := want[ev.Action]
		if !ok {
			continue
		}
		if o["class_uid"] != w[0] || o["activity_id"] != w[1] {
			t.Errorf("%s: class %v activity %v, want %v", ev.Action, o["class_uid"], o["activity_id"], w)
		}
		delete(want, ev.Action)
	}
	for a := range want {
		t.Errorf("no test event for %s", a)
	}
	// Every catalog action maps onto IAM or API Activity with a listed
	// activity (checked against the schema by TestSchema).
	for _, a := range audit.CatalogActions() {
		o := ocsf.Event(&audit.Event{Action: a, Time: t0, Actor: audit.Actor{ID: "u"}})
		if err := checkObject(o, "src_endpoint"); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
}

func allEvents() []*audit.Event {
	return append([]*audit.Event{loginSuccess(), loginFailure(), passwordChanged(), mfaRemoved()}, otherEvents()...)
}

// TestSchema walks every object the mappers produce for the test records
// and checks each attribute path against the OCSF field list of its class
// and each enumerated value (with its caption) against the enum list.
func TestSchema(t *testing.T) {
	var objs []ocsf.Object
	for _, ev := range allEvents() {
		o := ocsf.Event(ev)
		if !ev.Context.IP.IsValid() {
			// API Activity requires src_endpoint, which an event without
			// a client address cannot give (see checkObject).
			if err := checkObject(o, "src_endpoint"); err != nil {
				t.Errorf("%s without an address: %v", ev.Action, err)
			}
			continue
		}
		objs = append(objs, o)
	}
	f := finding()
	objs = append(objs, ocsf.Finding(f))
	for _, st := range []audit.FindingStatus{audit.StatusOpen, audit.StatusAcknowledged} {
		g := *f
		g.Status, g.Resolution, g.Severity = st, "", audit.SeverityLow
		objs = append(objs, ocsf.Finding(&g))
	}
	g := *f
	g.Resolution, g.Severity = audit.ResolutionBenign, audit.SeverityMedium
	objs = append(objs, ocsf.Finding(&g))
	objs = append(objs, ocsf.Incident(incident()), ocsf.Incident(&audit.Incident{ID: "i", Status: audit.StatusOpen, Severity: audit.SeverityLow}))
	for i, o := range objs {
		if err := checkObject(o); err != nil {
			t.Errorf("object %d (%v %v): %v", i, o["class_name"], o["message"], err)
		}
	}
}

// TestCheckerRejects: the schema check fails on what the schema does not
// allow, so TestSchema passing means something.
func TestCheckerRejects(t *testing.T) {
	cases := []struct {
		name, want string
		obj        func() ocsf.Object
	}{
		{"unknown nested attribute", "user.nickname is not an attribute", func() ocsf.Object {
			o := ocsf.Event(loginSuccess())
			o["user"].(ocsf.Object)["nickname"] = "x"
			return o
		}},
		{"unknown deep attribute", "src_endpoint.location.planet is not an attribute", func() ocsf.Object {
			o := ocsf.Event(loginSuccess())
			o["src_endpoint"].(ocsf.Object)["location"].(ocsf.Object)["planet"] = "Mars"
			return o
		}},
		{"activity outside the enumeration", "activity_id 7 is not a value", func() ocsf.Object {
			o := ocsf.Event(loginSuccess())
			o["activity_id"], o["type_uid"] = 7, 300207
			return o
		}},
		{"wrong caption", `activity_name "Login", want "Logon"`, func() ocsf.Object {
			o := ocsf.Event(loginSuccess())
			o["activity_name"] = "Login"
			return o
		}},
		{"type_name of Other", `type_name "API Activity: billing", want "API Activity: Other"`, func() ocsf.Object {
			o := ocsf.Event(&audit.Event{Action: "billing.x", Time: t0, Actor: audit.Actor{ID: "u"}, Context: audit.Context{IP: netip.MustParseAddr("192.0.2.1")}})
			o["type_name"] = "API Activity: billing"
			return o
		}},
		{"finding status New as 1", `status "New", want "Success"`, func() ocsf.Object {
			o := ocsf.Finding(finding())
			o["status_id"], o["status"] = 1, "New"
			return o
		}},
		{"scalar type", "time (timestamp_t)", func() ocsf.Object {
			o := ocsf.Event(loginSuccess())
			o["time"] = "2026-12-05T10:00:00Z"
			return o
		}},
		{"ip type", "src_endpoint.ip (ip_t)", func() ocsf.Object {
			o := ocsf.Event(loginSuccess())
			o["src_endpoint"].(ocsf.Object)["ip"] = "not-an-ip"
			return o
		}},
		{"array where the schema has one object", "finding_info: array true", func() ocsf.Object {
			o := ocsf.Finding(finding())
			o["finding_info"] = []ocsf.Object{o["finding_info"].(ocsf.Object)}
			return o
		}},
		{"missing required", "finding_info.title is required", func() ocsf.Object {
			o := ocsf.Finding(finding())
			delete(o["finding_info"].(ocsf.Object), "title")
			return o
		}},
		{"at_least_one", "src_endpoint needs at least one of", func() ocsf.Object {
			o := ocsf.Event(loginSuccess())
			o["src_endpoint"] = ocsf.Object{"location": ocsf.Object{"country": "FR"}}
			return o
		}},
		{"version", "metadata.version is not 1.2.0", func() ocsf.Object {
			o := ocsf.Event(loginSuccess())
			o["metadata"].(ocsf.Object)["version"] = "1.3.0"
			return o
		}},
	}
	for _, c := range cases {
		if err := checkObject(c.obj()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	var err error
	if checkSchema, err = loadSchema("testdata/ocsf-1.2.0-schema.json"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}
