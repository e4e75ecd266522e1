package ocsf_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
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
		if err := checkObject(o); err != nil {
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
		objs = append(objs, ocsf.Event(ev))
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
	// The checker itself rejects what is not listed.
	bad := ocsf.Event(loginSuccess())
	bad["user"].(ocsf.Object)["nickname"] = "x"
	bad["activity_id"] = 7
	if err := checkObject(bad); err == nil || !strings.Contains(err.Error(), "user.nickname") || !strings.Contains(err.Error(), "activity_id") {
		t.Errorf("checker accepted an unlisted attribute or value: %v", err)
	}
}

type schema struct {
	fields map[string]map[string]bool           // class → path
	enums  map[string]map[string]map[int]string // class → attribute → value → caption
}

func load() (*schema, error) {
	s := &schema{fields: map[string]map[string]bool{}, enums: map[string]map[string]map[int]string{}}
	err := readTSV("testdata/ocsf-1.3.0-fields.tsv", 2, func(r []string) error {
		if s.fields[r[0]] == nil {
			s.fields[r[0]] = map[string]bool{}
		}
		s.fields[r[0]][r[1]] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = readTSV("testdata/ocsf-1.3.0-enums.tsv", 4, func(r []string) error {
		v, err := strconv.Atoi(r[2])
		if err != nil {
			return fmt.Errorf("enum value %q", r[2])
		}
		if s.enums[r[0]] == nil {
			s.enums[r[0]] = map[string]map[int]string{}
		}
		if s.enums[r[0]][r[1]] == nil {
			s.enums[r[0]][r[1]] = map[int]string{}
		}
		s.enums[r[0]][r[1]][v] = r[3]
		return nil
	})
	return s, err
}

func readTSV(path string, cols int, row func([]string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := strings.Split(line, "\t")
		if len(r) != cols {
			return fmt.Errorf("%s: %q has %d columns, want %d", path, line, len(r), cols)
		}
		if err := row(r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return sc.Err()
}

// captions pairs an enumerated attribute with the attribute holding its
// caption.
var captions = map[string]string{
	"activity_id": "activity_name", "category_uid": "category_name", "class_uid": "class_name",
	"severity_id": "severity", "status_id": "status", "auth_protocol_id": "auth_protocol",
	"finding_info.analytic.type_id": "finding_info.analytic.type",
}

var checkSchema *schema

// checkObject reports every unlisted path and every invalid enum value
// of o, after a JSON round trip (what a reader of the export sees).
func checkObject(o ocsf.Object) error {
	s := checkSchema
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return err
	}
	cls := fmt.Sprint(doc["class_uid"])
	leaves := map[string]any{}
	walk("", doc, leaves)
	var problems []string
	for p := range leaves {
		if s.fields["*"][p] || s.fields[cls][p] || freeForm(s, cls, p) {
			continue
		}
		problems = append(problems, "unlisted attribute "+p)
	}
	for _, req := range []string{"class_uid", "category_uid", "activity_id", "type_uid", "severity_id", "time", "metadata.version", "metadata.product.name"} {
		if _, ok := leaves[req]; !ok {
			problems = append(problems, "missing "+req)
		}
	}
	for attr, capAttr := range captions {
		v, ok := leaves[attr]
		if !ok {
			continue
		}
		n, _ := v.(float64)
		want, ok := s.enums[cls][attr][int(n)]
		if !ok {
			want, ok = s.enums["*"][attr][int(n)]
		}
		if !ok {
			problems = append(problems, fmt.Sprintf("%s %v is not a value of class %s", attr, v, cls))
			continue
		}
		if c, _ := leaves[capAttr].(string); c != want && int(n) != 99 {
			problems = append(problems, fmt.Sprintf("%s %q, want %q for %s %v", capAttr, c, want, attr, v))
		}
	}
	if a, _ := leaves["activity_id"].(float64); leaves["type_uid"] != float64(int(leaves["class_uid"].(float64))*100+int(a)) {
		problems = append(problems, fmt.Sprintf("type_uid %v is not class_uid*100+activity_id", leaves["type_uid"]))
	}
	if cls != "2004" && leaves["severity_id"] == nil {
		problems = append(problems, "no severity_id")
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

func freeForm(s *schema, cls, p string) bool {
	for prefix := p; ; {
		i := strings.LastIndexByte(prefix, '.')
		if i < 0 {
			return false
		}
		prefix = prefix[:i]
		if s.fields["*"][prefix+".*"] || s.fields[cls][prefix+".*"] {
			return true
		}
	}
}

// walk records the leaf paths of v; an array's elements share its path,
// and an array of scalars is one leaf.
func walk(path string, v any, out map[string]any) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			walk(p, c, out)
		}
	case []any:
		scalar := true
		for _, c := range x {
			switch c.(type) {
			case map[string]any, []any:
				scalar = false
				walk(path, c, out)
			}
		}
		if scalar {
			out[path] = x
		}
	default:
		out[path] = v
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	var err error
	if checkSchema, err = load(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}
