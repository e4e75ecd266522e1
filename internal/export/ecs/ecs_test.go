package ecs_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/export/ecs"
)

// TestSchema maps an event of every catalog action (and richer ones) and
// checks each emitted field against ECS 9.4.0's published field list, and
// event.kind/category/type/outcome against its allowed values (each type
// one the category expects).
func TestSchema(t *testing.T) {
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
		doc, err := checkDoc(ecs.Event(ev))
		if err != nil {
			t.Errorf("%s: %v", ev.Action, err)
			continue
		}
		e := doc["event"].(map[string]any)
		if doc["@timestamp"] != "2026-12-05T10:00:00Z" || e["action"] != ev.Action {
			t.Errorf("%s: %v", ev.Action, doc)
		}
	}
}
