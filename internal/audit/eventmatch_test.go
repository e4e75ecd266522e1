package audit_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

func TestEventFilterMatches(t *testing.T) {
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	ev := audit.Event{ID: "1", Tenant: "a", Time: at, Action: audit.ActionLoginFailure, Outcome: audit.OutcomeFailure,
		Actor: audit.Actor{ID: "alice"}, Target: audit.Target{ID: "bob"},
		Context:  audit.Context{IP: netip.MustParseAddr("203.0.113.7"), SessionID: "s1"},
		Metadata: map[string]any{"note": map[string]any{"deep": "Hello World"}, "n": 42.0},
		Enrichment: audit.Enrichment{Geo: &audit.Geo{Country: "FR"}, Network: &audit.Network{ASN: 64500, Lists: []string{"tor"}},
			UserAgent: &audit.UserAgent{Class: audit.UAClassBrowser}},
	}
	tests := []struct {
		name string
		f    audit.EventFilter
		want bool
	}{
		{"empty", audit.EventFilter{}, true},
		{"tenant", audit.EventFilter{Tenant: "a"}, true},
		{"other tenant", audit.EventFilter{Tenant: "b"}, false},
		{"since inclusive", audit.EventFilter{Since: at}, true},
		{"until exclusive", audit.EventFilter{Until: at}, false},
		{"action", audit.EventFilter{Action: audit.ActionLoginFailure}, true},
		{"action prefix", audit.EventFilter{Action: "auth.*"}, true},
		{"action prefix is per segment", audit.EventFilter{Action: "aut.*"}, false},
		{"other action", audit.EventFilter{Action: audit.ActionLoginSuccess}, false},
		{"actor", audit.EventFilter{ActorID: "alice"}, true},
		{"other actor", audit.EventFilter{ActorID: "Alice"}, false},
		{"session", audit.EventFilter{SessionID: "s2"}, false},
		{"target", audit.EventFilter{TargetID: "bob"}, true},
		{"cidr", audit.EventFilter{IP: netip.MustParsePrefix("203.0.113.0/24")}, true},
		{"mapped cidr", audit.EventFilter{IP: netip.MustParsePrefix("::ffff:203.0.113.0/120")}, true},
		{"other cidr", audit.EventFilter{IP: netip.MustParsePrefix("198.51.100.0/24")}, false},
		{"outcome", audit.EventFilter{Outcome: audit.OutcomeSuccess}, false},
		{"country any case", audit.EventFilter{Country: "fr"}, true},
		{"asn", audit.EventFilter{ASN: 64501}, false},
		{"list", audit.EventFilter{List: "tor"}, true},
		{"ua class", audit.EventFilter{UAClass: audit.UAClassScripted}, false},
		{"text nested, any case", audit.EventFilter{Text: "WORLD"}, true},
		{"text number", audit.EventFilter{Text: "42"}, true},
		{"text not in metadata", audit.EventFilter{Text: "alice"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.f.Matches(&ev); got != tc.want {
				t.Fatalf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
	bare := audit.Event{Tenant: "a", Time: at, Action: "custom.thing"}
	for _, f := range []audit.EventFilter{{Country: "FR"}, {ASN: 1}, {List: "tor"}, {UAClass: "browser"}, {Text: "x"}, {IP: netip.MustParsePrefix("0.0.0.0/0")}} {
		if f.Matches(&bare) {
			t.Errorf("%+v matched an event without the field", f)
		}
	}
}

func TestEventRowDecodesMetadataOnce(t *testing.T) {
	r := audit.EventRow{RawMetadata: []byte(`{"k":"v"}`)}
	if m := r.Metadata(); m["k"] != "v" {
		t.Fatalf("metadata = %v", m)
	}
	r.Event.Metadata["k"] = "changed" // decoded once: later calls return the same map
	if got := r.Own().Metadata["k"]; got != "changed" {
		t.Fatalf("metadata decoded again: %v", got)
	}
	empty := audit.EventRow{RawMetadata: []byte{}, Event: audit.Event{Metadata: map[string]any{"stale": true}}}
	if m := empty.Metadata(); m != nil {
		t.Fatalf("empty raw metadata gave %v", m)
	}
	bad := audit.EventRow{RawMetadata: []byte(`{"k":`)}
	if m := bad.Metadata(); m != nil {
		t.Fatalf("corrupt metadata gave %v", m)
	}
}
