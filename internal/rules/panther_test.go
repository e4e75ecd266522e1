package rules_test

// Panther's multi-event Okta scenarios (testdata/panther/scenarios,
// Apache-2.0, see its README): the pack runs over each whole stream and we
// compare with what the scenario is about. Panther's single-event rule
// tests are in panther_peers_test.go.

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/rules"
)

// field walks a decoded vendor event by keys, case-insensitively (Panther
// lower-cases some Okta keys: eventtype, debugcontext).
func field(m any, path ...string) any {
	for _, k := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		v, ok := mm[k]
		if !ok {
			for kk, vv := range mm {
				if strings.EqualFold(kk, k) {
					v, ok = vv, true
					break
				}
			}
		}
		if !ok {
			return nil
		}
		m = v
	}
	return m
}

func fstr(m any, path ...string) string {
	switch v := field(m, path...).(type) {
	case string:
		return v
	case float64:
		return fmt.Sprint(v)
	case int:
		return fmt.Sprint(v)
	}
	return ""
}

func fnum(m any, path ...string) (float64, bool) {
	switch v := field(m, path...).(type) {
	case float64:
		return v, true
	case int:
		return float64(v), true
	}
	return 0, false
}

// countryCodes are the country names the vendor samples use.
var countryCodes = map[string]string{"United States": "US", "France": "FR", "Argentina": "AR", "Japan": "JP",
	"Italy": "IT", "Romania": "RO", "Brazil": "BR", "Ireland": "IE", "Russia": "RU"}

func parseTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// uaClass is the user-agent class the enricher would give a raw agent.
func uaClass(raw string) string {
	l := strings.ToLower(raw)
	switch {
	case raw == "":
		return audit.UAClassEmpty
	case strings.Contains(l, "python") || strings.Contains(l, "curl") || strings.Contains(l, "go-http"):
		return audit.UAClassScripted
	case strings.HasPrefix(raw, "Mozilla/"):
		return audit.UAClassBrowser
	}
	return "other"
}

// noUA stands for a user agent the vendor log does not record at all
// (OneLogin, some Entra samples): our catalog requires one on logins, and
// an absent field says nothing about the client, so it must not read as
// "no user agent" (which automated-client reports).
const noUA = "(not in the vendor log)"

// newEvent builds an audit.Event with the enrichment the pipeline adds.
func newEvent(action, actor, ip, ua string, at time.Time) audit.Event {
	ev := audit.Event{Tenant: "acme", Action: action, Time: at, Actor: audit.Actor{ID: actor, Type: audit.ActorUser}}
	if ua == "" {
		ev.Context.UserAgent = noUA
		ev.Enrichment.UserAgent = &audit.UserAgent{Class: "other"}
	} else {
		ev.Context.UserAgent = ua
		ev.Enrichment.UserAgent = &audit.UserAgent{Class: uaClass(ua)}
	}
	if a, err := netip.ParseAddr(ip); err == nil {
		ev.Context.IP = a
	}
	ev.Enrichment.Network = &audit.Network{Scope: audit.ScopePublic}
	return ev
}

func setGeo(ev *audit.Event, country, city string, lat, lon float64, located bool) {
	if country == "" {
		return
	}
	if cc, ok := countryCodes[country]; ok {
		country = cc
	}
	ev.Enrichment.Geo = &audit.Geo{Country: country, City: city, Latitude: lat, Longitude: lon, HasLocation: located,
		AccuracyKM: 25, Source: "client"}
}

// mapOkta maps an Okta System Log event; ok is false for event types our
// catalog has no action for.
func mapOkta(l map[string]any) (audit.Event, bool) {
	et := fstr(l, "eventType")
	result := fstr(l, "outcome", "result")
	var action, reason string
	meta := map[string]any{}
	target := ""
	if ts, ok := field(l, "target").([]any); ok && len(ts) > 0 {
		target = fstr(ts[0], "alternateId")
	}
	switch et {
	case "user.session.start":
		action = audit.ActionLoginSuccess
		if result != "SUCCESS" {
			action, reason = audit.ActionLoginFailure, "invalid_password"
			if strings.Contains(fstr(l, "outcome", "reason"), "LOCKED") {
				reason = "account_locked"
			}
		}
	case "user.account.lock":
		action, reason = audit.ActionLoginFailure, "account_locked"
	case "user.account.privilege.grant", "group.privilege.grant":
		action = audit.ActionRoleChanged
		granted := strings.ToLower(fstr(l, "debugContext", "debugData", "privilegeGranted"))
		meta["new_role"] = "admin"
		if strings.Contains(granted, "super") {
			meta["new_role"] = "superadmin"
		}
	case "system.api_token.create":
		action = audit.ActionAPIKeyCreated
	case "user.mfa.factor.deactivate", "user.mfa.factor.reset_all", "user.mfa.factor.suspend":
		action = audit.ActionMFARemoved
		meta["factor"] = "other"
	case "user.account.update_password":
		action = audit.ActionPasswordChanged
	default:
		return audit.Event{}, false
	}
	ev := newEvent(action, fstr(l, "actor", "alternateId"), fstr(l, "client", "ipAddress"), fstr(l, "client", "userAgent", "rawUserAgent"), parseTime(fstr(l, "published")))
	ev.Reason = reason
	ev.Context.SessionID = fstr(l, "authenticationContext", "externalSessionId")
	ev.Context.AuthMethod = "password"
	ev.Context.DeviceID = fstr(l, "debugContext", "debugData", "deviceFingerprint")
	if target != "" {
		ev.Target = audit.Target{Type: "user", ID: target}
	}
	if len(meta) > 0 {
		ev.Metadata = meta
	}
	g := field(l, "client", "geographicalContext")
	lat, okLat := fnum(g, "geolocation", "lat")
	lon, okLon := fnum(g, "geolocation", "lon")
	setGeo(&ev, fstr(g, "country"), fstr(g, "city"), lat, lon, okLat && okLon)
	if asn, ok := fnum(l, "securityContext", "asNumber"); ok {
		ev.Enrichment.Network.ASN = uint32(asn)
		ev.Enrichment.Network.ASOrg = fstr(l, "securityContext", "asOrg")
	}
	if p, ok := field(l, "securityContext", "isProxy").(bool); ok && p {
		ev.Enrichment.Network.VPN = true
	}
	if b := fstr(l, "client", "userAgent", "browser"); b != "" && b != "UNKNOWN" {
		ev.Enrichment.UserAgent.Browser, ev.Enrichment.UserAgent.OS = b, fstr(l, "client", "userAgent", "os")
	}
	return ev, true
}

// runPack runs events (sorted by time) through a fresh engine with the
// built-in pack and returns the final findings.
func runPack(t *testing.T, events []audit.Event) []audit.Finding {
	t.Helper()
	e, err := detect.New(detect.Options{Rules: rules.MustBuiltin()})
	if err != nil {
		t.Fatal(err)
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].Time.Before(events[j].Time) })
	recs := make([]*audit.Record, len(events))
	for i := range events {
		if events[i].ID == "" {
			events[i].ID = fmt.Sprintf("p%03d", i+1)
		}
		events[i].Normalize(events[i].Time)
		recs[i] = &audit.Record{Seq: uint64(i + 1), Event: events[i]}
	}
	fs, err := e.Process(t.Context(), recs)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := e.Flush(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return detect.Latest(append(fs, rest...))
}

func ruleIDs(fs []audit.Finding) []string {
	var out []string
	for _, f := range fs {
		if !slices.Contains(out, f.RuleID) {
			out = append(out, f.RuleID)
		}
	}
	sort.Strings(out)
	return out
}

// TestPantherScenarios runs the pack over Panther's Okta scenario streams.
func TestPantherScenarios(t *testing.T) {
	tests := []struct {
		dir string
		// want are our rules that must fire, exactly, with why.
		want []string
		why  string
	}{
		{"okta-add-administrator", []string{"new-location", "privilege-escalation"},
			"five logins from San Francisco/Austin; nine failures from four countries in nine minutes (below our " +
				"brute-force bar of 10, and Panther's BruteForceByUser threshold of 20), then a success from France: " +
				"new country (25) + recent failures (20) = risk 45; the next day the account grants Organization " +
				"administrator to an outside gmail account: privilege escalation 23h46m after the risky login"},
		{"compromised-root-creds", nil,
			"the Okta part is two failures a day apart for a misspelt user, then the real user's login from home: " +
				"nothing to detect there; the compromise itself is in CloudTrail, outside our catalog"},
	}
	for _, tc := range tests {
		t.Run(tc.dir, func(t *testing.T) {
			files, err := filepath.Glob(filepath.Join("testdata", "panther", "scenarios", tc.dir, "*.yml"))
			if err != nil || len(files) == 0 {
				t.Fatalf("no scenario files: %v", err)
			}
			var events []audit.Event
			skipped := 0
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				var doc struct {
					Logs []map[string]any `yaml:"Logs"`
				}
				if err := yaml.Unmarshal(data, &doc); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				for _, l := range doc.Logs {
					if ev, ok := mapOkta(l); ok {
						events = append(events, ev)
					} else {
						skipped++
					}
				}
			}
			fs := runPack(t, events)
			for _, f := range fs {
				t.Logf("%s (%s): %s", f.RuleID, f.Severity, f.Explanation)
			}
			t.Logf("%d events mapped, %d outside the catalog; expected: %s", len(events), skipped, tc.why)
			if got := ruleIDs(fs); !slices.Equal(got, tc.want) {
				t.Errorf("our rules fired %v, want %v", got, tc.want)
			}
		})
	}
}

func dedup(s []string) []string {
	sort.Strings(s)
	return slices.Compact(s)
}
