package sqlite

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// mapDict is an in-memory dictionary for codec tests.
type mapDict struct {
	ids   map[string]uint64
	names []string
}

func (d *mapDict) lookup(s string) (uint64, bool) {
	if id, ok := d.ids[s]; ok {
		return id, true
	}
	if d.ids == nil {
		d.ids = map[string]uint64{}
	}
	d.ids[s] = uint64(len(d.names))
	d.names = append(d.names, s)
	return uint64(len(d.names) - 1), true
}

func (d *mapDict) name(id uint64) (string, bool) {
	if id >= uint64(len(d.names)) {
		return "", false
	}
	return d.names[id], true
}

func codecSamples() []audit.Event {
	lat := 1.5
	full := audit.Event{
		ID: "01J9ZZZZZZZZZZZZZZZZZZZZZZ", Tenant: "acme", Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 999, time.UTC), Action: "auth.login.failure",
		Outcome: audit.OutcomeFailure, Reason: "invalid_password",
		Actor:  audit.Actor{ID: "alice", Type: "user", Email: "a@example.com", Name: "Alice"},
		Target: audit.Target{Type: "user", ID: "bob", Name: "Bob"},
		Context: audit.Context{IP: netip.MustParseAddr("2001:db8::1"), UserAgent: "curl/8", SessionID: "s", RequestID: "r",
			AuthMethod: "password", DeviceID: "d", Geo: &audit.ClientGeo{Country: "FR", Latitude: &lat}},
		Metadata: map[string]any{"a": "b", "n": 1.25, "nested": map[string]any{"x": []any{true, nil}}},
		Enrichment: audit.Enrichment{
			Geo:       &audit.Geo{Country: "FR", City: "Paris", Latitude: 1, Longitude: -2, HasLocation: true, AccuracyKM: 5, TimeZone: "Europe/Paris", Source: "geoip"},
			Network:   &audit.Network{Scope: "public", ASN: 4294967295, ASOrg: "X", Tor: true, VPN: true, Lists: []string{"a", "b"}},
			UserAgent: &audit.UserAgent{Browser: "curl", Class: "scripted"},
		},
		Risk: &audit.Risk{Score: 90, Reasons: []string{}, Decision: "deny"},
	}
	return []audit.Event{
		{},
		{ID: "x", Tenant: "t", Time: time.Unix(0, 0).UTC(), Action: "a.b"},
		{ID: "v4", Tenant: "t", Time: time.Unix(-5, 3).UTC(), Action: "a.b", Context: audit.Context{IP: netip.MustParseAddr("10.0.0.1")},
			Metadata: map[string]any{}, Enrichment: audit.Enrichment{Network: &audit.Network{Lists: []string{}}}},
		full,
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, ev := range codecSamples() {
		for _, o := range []encodeOpts{{}, {dict: &mapDict{}}, {omitKey: true, dict: &mapDict{}}} {
			b, err := encodeEvent(nil, &ev, o)
			if err != nil {
				t.Fatal(err)
			}
			var got audit.Event
			if err := decodeEvent(b, &got, o); err != nil {
				t.Fatalf("decode %s: %v", ev.ID, err)
			}
			if o.omitKey {
				got.ID, got.Tenant, got.Time, got.Action = ev.ID, ev.Tenant, ev.Time, ev.Action
			}
			wj, _ := json.Marshal(ev)
			gj, _ := json.Marshal(got)
			if !bytes.Equal(wj, gj) {
				t.Fatalf("round trip (omitKey %v):\n got %s\nwant %s", o.omitKey, gj, wj)
			}
			// Re-encoding the decoded event gives the same bytes.
			b2, err := encodeEvent(nil, &got, o)
			if err != nil || !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding differs (err %v)", err)
			}
		}
	}
}

func TestCodecRejectsCorruptInputNamingTheField(t *testing.T) {
	ev := codecSamples()[3]
	b, _ := encodeEvent(nil, &ev, encodeOpts{})
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "version"},
		{"bad version", append([]byte{9}, b[1:]...), "version"},
		{"truncated", b[:len(b)-1], "risk"},
		{"trailing", append(bytes.Clone(b), 0), "end"},
		{"dictionary ref without dictionary", []byte{1, 1, 'x', 5}, "tenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got audit.Event
			err := decodeEvent(tc.in, &got, encodeOpts{})
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
}

// FuzzDecodeEvent checks that arbitrary bytes never panic the decoder, and
// that whatever decodes re-encodes to the same bytes (the encoding is
// canonical) and decodes again to the same event.
func FuzzDecodeEvent(f *testing.F) {
	for _, ev := range codecSamples() {
		b, _ := encodeEvent(nil, &ev, encodeOpts{})
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 64<<10 {
			return
		}
		var ev audit.Event
		if err := decodeEvent(in, &ev, encodeOpts{}); err != nil {
			return
		}
		out, err := encodeEvent(nil, &ev, encodeOpts{})
		if err != nil {
			// Metadata that JSON accepted must marshal again.
			t.Fatalf("re-encode: %v", err)
		}
		var again audit.Event
		if err := decodeEvent(out, &again, encodeOpts{}); err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		j1, _ := json.Marshal(ev)
		j2, _ := json.Marshal(again)
		if !bytes.Equal(j1, j2) {
			t.Fatalf("not stable:\n%s\n%s", j1, j2)
		}
	})
}

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []cursor{{ns: 1, id: "x"}, {ns: -5, tenant: "acme", id: "01J"}, {ns: 1 << 62, id: "a|b"}} {
		got, err := parseCursor(c.String())
		if err != nil || got != c {
			t.Fatalf("parse(%#v.String()) = %#v, %v", c, got, err)
		}
	}
	for _, bad := range []string{"", "=", "AQ", "AgAB", "AQIEYWJj"} {
		if _, err := parseCursor(bad); audit.ErrorCode(err) != audit.EINVALID || audit.ErrorField(err) != "cursor" {
			t.Fatalf("parse(%q) = %v, want EINVALID on field cursor", bad, err)
		}
	}
}

// FuzzParseCursor: a cursor is outside input (a query parameter). It parses
// to EINVALID or to a cursor that prints back to an equivalent cursor.
func FuzzParseCursor(f *testing.F) {
	f.Add(cursor{ns: 1, id: "x"}.String())
	f.Add(cursor{ns: -1, tenant: "t", id: "01J"}.String())
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCursor(s)
		if err != nil {
			if audit.ErrorCode(err) != audit.EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		again, err := parseCursor(c.String())
		if err != nil || again != c {
			t.Fatalf("round trip %#v → %#v, %v", c, again, err)
		}
	})
}

func TestPrefixRange(t *testing.T) {
	for _, tc := range []struct{ p, lo, hi string }{
		{"203.0.113.0/24", "203.0.113.0", "203.0.113.255"},
		{"203.0.113.7/32", "203.0.113.7", "203.0.113.7"},
		{"10.0.0.0/7", "10.0.0.0", "11.255.255.255"},
		{"2001:db8::/32", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"},
	} {
		lo, hi := prefixRange(netip.MustParsePrefix(tc.p))
		l, _ := netip.AddrFromSlice(lo)
		h, _ := netip.AddrFromSlice(hi)
		if l.String() != tc.lo || h.String() != tc.hi {
			t.Fatalf("%s: %s–%s, want %s–%s", tc.p, l, h, tc.lo, tc.hi)
		}
	}
}

func TestIDMillis(t *testing.T) {
	var g audit.IDGenerator
	at := time.UnixMilli(1_760_000_000_123)
	if got := idMillis(g.New(at)); got != uint64(at.UnixMilli()) {
		t.Fatalf("ULID millis = %d, want %d", got, at.UnixMilli())
	}
	if got := idMillis("0190e1b2-3c4d-7abc-8def-0123456789ab"); got != 0x0190e1b23c4d {
		t.Fatalf("UUIDv7 millis = %x", got)
	}
	for _, id := range []string{"", "abc", "0190e1b2-3c4d-4abc-8def-0123456789ab", "ZZZZZZZZZZZZZZZZZZZZZZZZZZ"} {
		if idMillis(id) != 0 {
			t.Fatalf("idMillis(%q) != 0", id)
		}
	}
}
