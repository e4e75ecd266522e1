package audit_test

import (
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// complete returns an event of action carrying every field the catalog may require.
func complete(action string) audit.Event {
	return audit.Event{
		Tenant: "acme", Action: action, Time: now.Add(-time.Minute),
		Actor:  audit.Actor{ID: "u_1"},
		Target: audit.Target{ID: "t_1"},
		Reason: map[string]string{
			audit.ActionLoginFailure: "invalid_password", audit.ActionLogout: "user", audit.ActionSessionRevoked: "admin",
		}[action],
		Context:  audit.Context{IP: netip.MustParseAddr("203.0.113.7"), UserAgent: "Mozilla/5.0", AuthMethod: "password", SessionID: "s_1"},
		Metadata: map[string]any{"factor": "totp", "stage": "requested", "new_role": "admin"},
	}
}

func TestCatalogAcceptsCompleteEvents(t *testing.T) {
	actions := audit.CatalogActions()
	if len(actions) != 15 {
		t.Fatalf("catalog has %d actions, want the 15 of PRODUCT.md §2", len(actions))
	}
	for _, a := range actions {
		ev := complete(a)
		ev.Normalize(now)
		if err := ev.Validate(now); err != nil {
			t.Errorf("%s: complete event rejected: %v", a, err)
		}
	}
}

// TestCatalogNamesMissingField removes each required field of each action in
// turn and checks the rejection names exactly that field.
func TestCatalogNamesMissingField(t *testing.T) {
	for _, a := range audit.CatalogActions() {
		for _, field := range audit.RequiredFields(a) {
			t.Run(a+"/"+field, func(t *testing.T) {
				ev := complete(a)
				switch field {
				case "actor.id":
					ev.Actor.ID = ""
				case "target.id":
					ev.Target.ID = ""
				case "reason":
					ev.Reason = ""
				case "context.ip":
					ev.Context.IP = netip.Addr{}
				case "context.user_agent":
					ev.Context.UserAgent = ""
				case "context.auth_method":
					ev.Context.AuthMethod = ""
				case "context.session_id":
					ev.Context.SessionID = ""
				default:
					delete(ev.Metadata, strings.TrimPrefix(field, "metadata."))
				}
				ev.Normalize(now)
				err := ev.Validate(now)
				if got := audit.ErrorField(err); got != field {
					t.Fatalf("error field = %q, want %q (err %v)", got, field, err)
				}
				want := field + " is required for " + a
				if audit.ErrorMessage(err) != want {
					t.Fatalf("message = %q, want %q", audit.ErrorMessage(err), want)
				}
				if audit.ErrorCode(err) != audit.EINVALID {
					t.Fatalf("code = %q", audit.ErrorCode(err))
				}
			})
		}
	}
}

func TestValidateRules(t *testing.T) {
	base := func() audit.Event { return complete(audit.ActionLoginSuccess) }
	tests := []struct {
		name  string
		edit  func(e *audit.Event)
		field string // "" means valid
	}{
		{"valid", func(e *audit.Event) {}, ""},
		{"custom action", func(e *audit.Event) { e.Action = "billing.invoice.paid"; e.Context = audit.Context{} }, ""},
		{"no tenant", func(e *audit.Event) { e.Tenant = "" }, "tenant"},
		{"bad tenant", func(e *audit.Event) { e.Tenant = "a b" }, "tenant"},
		{"no action", func(e *audit.Event) { e.Action = "" }, "action"},
		{"uppercase action", func(e *audit.Event) { e.Action = "Auth.Login" }, "action"},
		{"one segment", func(e *audit.Event) { e.Action = "login" }, "action"},
		{"empty segment", func(e *audit.Event) { e.Action = "auth..login" }, "action"},
		{"long action", func(e *audit.Event) { e.Action = "a." + strings.Repeat("b", 127) }, "action"},
		{"future", func(e *audit.Event) { e.Time = now.Add(6 * time.Minute) }, "time"},
		{"near future ok", func(e *audit.Event) { e.Time = now.Add(4 * time.Minute) }, ""},
		{"ancient", func(e *audit.Event) { e.Time = time.Unix(1000, 0) }, "time"},
		{"outcome contradicts", func(e *audit.Event) { e.Outcome = audit.OutcomeFailure }, "outcome"},
		{"bad outcome", func(e *audit.Event) { e.Action = "x.y"; e.Outcome = "maybe" }, "outcome"},
		{"bad actor type", func(e *audit.Event) { e.Actor.Type = "robot" }, "actor.type"},
		{"bad auth method", func(e *audit.Event) { e.Context.AuthMethod = "telepathy" }, "context.auth_method"},
		{"control char", func(e *audit.Event) { e.Actor.ID = "u\x00" }, "actor.id"},
		{"invalid utf8", func(e *audit.Event) { e.Actor.Email = "\xff" }, "actor.email"},
		{"long ua", func(e *audit.Event) { e.Context.UserAgent = strings.Repeat("x", 1025) }, "context.user_agent"},
		{"long id", func(e *audit.Event) { e.ID = strings.Repeat("x", 129) }, "id"},
		{"too many keys", func(e *audit.Event) {
			m := map[string]any{}
			for i := range 65 {
				m[strings.Repeat("k", i+1)] = 1
			}
			e.Metadata = m
		}, "metadata"},
		{"nested keys count", func(e *audit.Event) {
			inner := map[string]any{}
			for i := range 60 {
				inner[strings.Repeat("k", i+1)] = 1
			}
			e.Metadata = map[string]any{"a": inner, "b": 1, "c": 2, "d": 3, "e": 4}
		}, "metadata"},
		{"latitude range", func(e *audit.Event) {
			lat, lon := 91.0, 0.0
			e.Context.Geo = &audit.ClientGeo{Latitude: &lat, Longitude: &lon}
		}, "context.geo.latitude"},
		{"longitude not a number", func(e *audit.Event) {
			lat, lon := 1.0, math.NaN()
			e.Context.Geo = &audit.ClientGeo{Latitude: &lat, Longitude: &lon}
		}, "context.geo.longitude"},
		{"half a location", func(e *audit.Event) {
			lat := 1.0
			e.Context.Geo = &audit.ClientGeo{Latitude: &lat}
		}, "context.geo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := base()
			tt.edit(&ev)
			ev.Normalize(now)
			err := ev.Validate(now)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want an error naming %s", tt.field)
			}
			if got := audit.ErrorField(err); got != tt.field {
				t.Fatalf("field = %q, want %q (%v)", got, tt.field, err)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	ev := audit.Event{Action: "auth.login.failure", Actor: audit.Actor{ID: "x"},
		Time:    time.Date(2026, 1, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600)),
		Context: audit.Context{IP: netip.MustParseAddr("::ffff:203.0.113.7")}}
	ev.Normalize(now)
	if ev.Time.Location() != time.UTC || ev.Time.Hour() != 11 {
		t.Errorf("time = %v, want 11:00 UTC", ev.Time)
	}
	if ev.Context.IP.String() != "203.0.113.7" {
		t.Errorf("ip = %v, want unmapped", ev.Context.IP)
	}
	if ev.Outcome != audit.OutcomeFailure {
		t.Errorf("outcome = %q", ev.Outcome)
	}
	if ev.Actor.Type != audit.ActorUser {
		t.Errorf("actor type = %q", ev.Actor.Type)
	}
	var zero audit.Event
	zero.Normalize(now)
	if !zero.Time.Equal(now) {
		t.Errorf("zero time defaults to %v, want now", zero.Time)
	}
}

func TestIDGeneratorSortsAndIsUnique(t *testing.T) {
	var g audit.IDGenerator
	seen := map[string]bool{}
	prev := ""
	for i := range 10000 {
		id := g.New(now.Add(time.Duration(i/100) * time.Millisecond))
		if len(id) != 26 {
			t.Fatalf("id %q has length %d", id, len(id))
		}
		if id <= prev {
			t.Fatalf("id %q does not sort after %q", id, prev)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id], prev = true, id
	}
	// Time dominates the order across generators.
	var g2 audit.IDGenerator
	if a, b := g2.New(now), g2.New(now.Add(time.Second)); a >= b {
		t.Fatalf("%s should sort before %s", a, b)
	}
}

func TestKeys(t *testing.T) {
	id, full, hash := audit.NewKeySecret()
	gotID, secret, ok := audit.ParseKey(full)
	if !ok || gotID != id {
		t.Fatalf("ParseKey(%q) = %q, %v", full, gotID, ok)
	}
	if !audit.SecretMatches(secret, hash) {
		t.Fatal("secret does not match its hash")
	}
	if audit.SecretMatches(secret+"x", hash) {
		t.Fatal("wrong secret matches")
	}
	for _, bad := range []string{"", "vgl_", "vgl_abc_def", "xyz_" + full[4:], full[:20]} {
		if _, _, ok := audit.ParseKey(bad); ok {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
	if strings.Contains(string(hash), secret) {
		t.Fatal("hash contains the secret")
	}
}
