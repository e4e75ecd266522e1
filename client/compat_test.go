package client_test

// This file checks the wire types against the server's domain types. It is
// the only place client code touches internal/...: a test-only import, so
// the package itself stays standard-library only (TestStdlibOnly).

import (
	"bytes"
	"encoding/json"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/audit"
)

func ptr[T any](v T) *T { return &v }

func fullEvent() client.Event {
	return client.Event{
		ID: "01JAAAAAAAAAAAAAAAAAAAAAAA", Tenant: "acme",
		Time:       time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC),
		ReceivedAt: time.Date(2026, 3, 1, 12, 0, 1, 5, time.UTC),
		Action:     client.ActionLoginSuccess, Outcome: client.OutcomeSuccess, Reason: "ok",
		Actor:  client.Actor{ID: "u1", Type: client.ActorUser, Email: "a@example.com", Name: "Alice"},
		Target: client.Target{Type: "user", ID: "u2", Name: "Bob"},
		Context: client.Context{IP: "2001:db8::7", UserAgent: "Mozilla/5.0", SessionID: "s1", RequestID: "r1",
			AuthMethod: "password", DeviceID: "d1",
			Geo: &client.ClientGeo{Country: "NL", Region: "NH", City: "Amsterdam", Latitude: ptr(52.37), Longitude: ptr(4.89)}},
		Metadata: map[string]any{"factor": "totp", "n": 3.0, "nested": map[string]any{"k": "v"}},
		Enrichment: client.Enrichment{
			Geo:       &client.Geo{Country: "NL", City: "Amsterdam", Latitude: 52.37, Longitude: 4.89, HasLocation: true, AccuracyKM: 20, TimeZone: "Europe/Amsterdam", Source: "geoip"},
			Network:   &client.Network{Scope: "public", ASN: 64500, ASOrg: "Example", Tor: true, Datacenter: true, VPN: true, Lists: []string{"tor"}},
			UserAgent: &client.UserAgent{Browser: "Firefox", BrowserVersion: "128", OS: "Linux", OSVersion: "6", Device: "desktop", Class: "browser"},
		},
		Risk: &client.Risk{Score: 72, Reasons: []string{"new_country"}, Decision: client.DecisionChallenge},
	}
}

// TestEventWireCompat round-trips events through internal/audit.Event with
// unknown fields rejected on both sides.
func TestEventWireCompat(t *testing.T) {
	for _, want := range []client.Event{
		fullEvent(),
		{Action: "custom.thing", Actor: client.Actor{ID: "svc"}},
		{ID: "x", Action: client.ActionLoginFailure, Actor: client.Actor{ID: "bob"}, Context: client.Context{IP: "203.0.113.7"}, Reason: "unknown_user"},
	} {
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var a audit.Event
		strict(t, b, &a)
		if want.Context.IP != "" && a.Context.IP.String() != want.Context.IP {
			t.Errorf("audit ip = %s, want %s", a.Context.IP, want.Context.IP)
		}
		back, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var got client.Event
		strict(t, back, &got)
		// audit.Event always writes time and received_at; the zero values
		// come back as zero times.
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("round trip via audit.Event (-want +got):\n%s\nwire: %s", diff, back)
		}
	}
}

func strict(t *testing.T, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s into %T: %v", b, v, err)
	}
}

// TestWireFieldNames compares the JSON field names of the wire types with
// the domain types', recursively, so a field added on one side is noticed.
func TestWireFieldNames(t *testing.T) {
	for _, pair := range [][2]any{
		{client.Event{}, audit.Event{}},
		{client.Finding{}, audit.Finding{}},
		{client.Tenant{}, audit.Tenant{}},
		{client.Key{}, audit.APIKey{}},
		{client.ViewerToken{}, audit.ViewerToken{}},
	} {
		got, want := jsonNames(reflect.TypeOf(pair[0]), ""), jsonNames(reflect.TypeOf(pair[1]), "")
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%T vs %T field names (-audit +client):\n%s", pair[0], pair[1], diff)
		}
	}
}

func jsonNames(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		path := prefix + name
		out = append(out, path)
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Time]() && ft.PkgPath() != "net/netip" {
			out = append(out, jsonNames(ft, path+".")...)
		}
	}
	slices.Sort(out)
	return out
}

// TestStdlibOnly checks that the package's non-test files import only the
// standard library.
func TestStdlibOnly(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if first, _, _ := strings.Cut(p, "/"); strings.Contains(first, ".") {
				t.Errorf("%s imports %s: the SDK must use only the standard library", name, p)
			}
		}
	}
}
