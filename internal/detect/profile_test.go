package detect

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// typicalProfile is an actor with a month of logins from two cities, three
// networks and two devices.
func typicalProfile() *Profile {
	p := &Profile{}
	t0 := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	places := []struct {
		country, city string
		lat, lon      float64
		asn           uint32
	}{{"FR", "Paris", 48.85, 2.35, 3215}, {"FR", "Lyon", 45.76, 4.83, 12322}, {"FR", "Paris", 48.85, 2.35, 51207}}
	for i := range 60 {
		pl := places[i%3]
		ev := &audit.Event{Action: audit.ActionLoginSuccess, Outcome: audit.OutcomeSuccess, Time: t0.Add(time.Duration(i*13) * time.Hour),
			Actor:   audit.Actor{ID: "alice@example.com", Type: audit.ActorUser},
			Context: audit.Context{IP: netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", i%7)), SessionID: fmt.Sprintf("sess-%d-abcdef0123456789", i), DeviceID: fmt.Sprintf("device-%d", i%2)},
			Enrichment: audit.Enrichment{Geo: &audit.Geo{Country: pl.country, City: pl.city, Latitude: pl.lat, Longitude: pl.lon, HasLocation: true, AccuracyKM: 20},
				Network: &audit.Network{ASN: pl.asn, Scope: audit.ScopePublic}}}
		p.observe(ev, false)
	}
	return p
}

func TestProfileRoundTripAndSize(t *testing.T) {
	p := typicalProfile()
	b := p.encode(nil)
	var q Profile
	if err := decodeProfile(b, &q); err != nil {
		t.Fatal(err)
	}
	// Place texts stay encoded after decoding; materialise them to compare.
	for _, pl := range []*place{&q.LastLogin, &q.LastAct} {
		pl.Country, pl.City, pl.IP, pl.Session = pl.text(textCountry), pl.text(textCity), pl.text(textIP), pl.text(textSession)
		pl.raw = nil
	}
	if !reflect.DeepEqual(p, &q) {
		t.Fatalf("round trip differs:\n%+v\n%+v", p, &q)
	}
	if len(b) > 512 {
		t.Errorf("typical profile encodes to %d bytes; goal is ≤ 512", len(b))
	}
	t.Logf("typical profile: %d bytes", len(b))
}

func TestHourOfWeek(t *testing.T) {
	mon := time.Date(2026, 3, 2, 0, 30, 0, 0, time.UTC) // a Monday
	if h := hourOfWeek(mon.Unix()); h != 0 {
		t.Fatalf("Monday 00:30 is bin %d", h)
	}
	if h := hourOfWeek(mon.Add(24*time.Hour + 3*time.Hour).Unix()); h != 27 {
		t.Fatalf("Tuesday 03:30 is bin %d", h)
	}
}

func TestRender(t *testing.T) {
	got := render("{n} accounts from {ip} in {span} {nope}", map[string]any{"n": int64(12), "ip": "203.0.113.7", "span": "4m10s"})
	if got != "12 accounts from 203.0.113.7 in 4m10s {nope}" {
		t.Fatal(got)
	}
}

// FuzzDecodeProfile: decoding arbitrary bytes never panics, and whatever
// decodes re-encodes to a value that decodes the same.
func FuzzDecodeProfile(f *testing.F) {
	f.Add(typicalProfile().encode(nil))
	f.Add((&Profile{}).encode(nil))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Profile
		if err := decodeProfile(data, &p); err != nil {
			return
		}
		var q Profile
		if err := decodeProfile(p.encode(nil), &q); err != nil {
			t.Fatalf("re-encoded profile does not decode: %v", err)
		}
		if !reflect.DeepEqual(p.encode(nil), q.encode(nil)) {
			t.Fatal("encode is not stable")
		}
	})
}

// FuzzReadEvents: the fixture reader rejects bad lines with the line number.
func FuzzReadEvents(f *testing.F) {
	f.Add(`{"id":"e1","tenant":"acme","time":"2026-03-02T09:00:00Z","action":"auth.login.failure","actor":{"id":"a"}}`)
	f.Add("# comment\n\n{\"id\":1}")
	f.Fuzz(func(t *testing.T, s string) {
		evs, err := ReadEvents(strings.NewReader(s))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error %q does not name the line", err)
			}
			return
		}
		for _, ev := range evs {
			if ev.ID == "" || ev.Time.IsZero() {
				t.Fatalf("accepted %+v", ev)
			}
		}
	})
}
