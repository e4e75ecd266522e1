package ecs_test

import (
	"bufio"
	"encoding/json"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/export/ecs"
)

func readTSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rows = append(rows, strings.Split(sc.Text(), "\t"))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestSchema maps an event of every catalog action (and richer ones) and
// checks each emitted field against ECS 9.4.0's published field list, and
// event.kind/category/type/outcome against its allowed values (each type
// one the category expects).
func TestSchema(t *testing.T) {
	types := map[string]string{}
	for _, r := range readTSV(t, "testdata/ecs-9.4.0-fields.tsv") {
		types[r[0]] = r[1]
	}
	allowed := map[string]map[string][]string{}
	for _, r := range readTSV(t, "testdata/ecs-9.4.0-allowed.tsv") {
		if allowed[r[0]] == nil {
			allowed[r[0]] = map[string][]string{}
		}
		allowed[r[0]][r[1]] = strings.Split(r[2], ",")
	}
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	evs := []*audit.Event{{
		ID: "e1", Tenant: "acme", Time: at, ReceivedAt: at.Add(time.Second), Action: audit.ActionLoginSuccess, Outcome: audit.OutcomeSuccess,
		Actor:   audit.Actor{ID: "u1", Type: audit.ActorUser, Name: "Alice", Email: "a@example.com"},
		Context: audit.Context{IP: netip.MustParseAddr("198.51.100.7"), UserAgent: "Mozilla/5.0", SessionID: "s1", RequestID: "r1", AuthMethod: "password", DeviceID: "d1"},
		Enrichment: audit.Enrichment{
			Geo:       &audit.Geo{Country: "FR", Region: "IDF", City: "Paris", Latitude: 48.8, Longitude: 2.3, HasLocation: true, TimeZone: "Europe/Paris"},
			Network:   &audit.Network{ASN: 64500, ASOrg: "Example"},
			UserAgent: &audit.UserAgent{Browser: "Firefox", BrowserVersion: "133", OS: "Linux", OSVersion: "6", Device: "Other"},
		},
		Risk: &audit.Risk{Score: 20},
	}, {
		ID: "e2", Time: at, Action: audit.ActionLoginFailure, Outcome: audit.OutcomeFailure, Reason: "invalid_password",
		Actor: audit.Actor{ID: "bob"}, Context: audit.Context{IP: netip.MustParseAddr("2001:db8::1"), Geo: &audit.ClientGeo{Country: "DE"}},
	}, {
		ID: "e3", Time: at, Action: audit.ActionMFARemoved, Actor: audit.Actor{ID: "admin"}, Target: audit.Target{Type: "user", ID: "u1", Name: "Alice"},
	}}
	for _, a := range audit.CatalogActions() {
		evs = append(evs, &audit.Event{ID: "x", Time: at, Action: a, Actor: audit.Actor{ID: "u"}})
	}
	evs = append(evs, &audit.Event{ID: "y", Time: at, Action: "billing.plan.changed", Actor: audit.Actor{ID: "u"}})
	for _, ev := range evs {
		b, err := json.Marshal(ecs.Event(ev))
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		leaves := map[string]any{}
		walk("", doc, leaves)
		for p := range leaves {
			if !listed(types, p) {
				t.Errorf("%s: %s is not an ECS field", ev.Action, p)
			}
		}
		e := doc["event"].(map[string]any)
		if _, ok := allowed["event.kind"][e["kind"].(string)]; !ok {
			t.Errorf("%s: event.kind %v", ev.Action, e["kind"])
		}
		if _, ok := allowed["event.outcome"][e["outcome"].(string)]; !ok {
			t.Errorf("%s: event.outcome %v", ev.Action, e["outcome"])
		}
		for _, c := range e["category"].([]any) {
			expected, ok := allowed["event.category"][c.(string)]
			if !ok {
				t.Errorf("%s: event.category %v", ev.Action, c)
			}
			for _, ty := range e["type"].([]any) {
				if _, ok := allowed["event.type"][ty.(string)]; !ok || !slices.Contains(expected, ty.(string)) {
					t.Errorf("%s: event.type %v with category %v", ev.Action, ty, c)
				}
			}
		}
		if doc["@timestamp"] != "2026-12-05T10:00:00Z" || e["action"] != ev.Action {
			t.Errorf("%s: %s", ev.Action, b)
		}
	}
}

// listed: the path is a field, or lies inside an object, flattened or
// geo_point field (labels.*, source.geo.location.lat).
func listed(types map[string]string, p string) bool {
	if _, ok := types[p]; ok {
		return true
	}
	for i := strings.LastIndexByte(p, '.'); i > 0; i = strings.LastIndexByte(p[:i], '.') {
		switch types[p[:i]] {
		case "object", "flattened", "geo_point":
			return true
		}
	}
	return false
}

func walk(path string, v any, out map[string]any) {
	if m, ok := v.(map[string]any); ok {
		for k, c := range m {
			p := k
			if path != "" {
				p = path + "." + k
			}
			walk(p, c, out)
		}
		return
	}
	out[path] = v
}
