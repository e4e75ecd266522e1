package detect_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// city is a home location of generated users.
type city struct {
	country, name string
	lat, lon      float64
	asn           uint32
	org           string
}

var cities = []city{
	{"FR", "Paris", 48.8566, 2.3522, 3215, "Orange"}, {"DE", "Berlin", 52.52, 13.405, 3320, "DTAG"},
	{"GB", "London", 51.5074, -0.1278, 2856, "BT"}, {"US", "New York", 40.7128, -74.006, 7922, "Comcast"},
	{"US", "Chicago", 41.8781, -87.6298, 7018, "AT&T"}, {"BR", "Sao Paulo", -23.55, -46.63, 28573, "Claro"},
	{"IN", "Mumbai", 19.076, 72.8777, 55836, "Jio"}, {"JP", "Tokyo", 35.6762, 139.6503, 2516, "KDDI"},
}

// genStream makes a realistic mixed stream: users of a few tenants logging
// in from home (with the odd typo, logout, password change and export),
// plus credential-stuffing bursts from datacenter addresses every so often.
// Deterministic for a seed.
func genStream(n, users int, seed uint64) []*audit.Record {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	recs := make([]*audit.Record, 0, n)
	t := start
	add := func(ev audit.Event) {
		ev.ID = fmt.Sprintf("ev%08d", len(recs)+1)
		ev.Time = t
		ev.Normalize(t)
		recs = append(recs, &audit.Record{Seq: uint64(len(recs) + 1), Event: ev})
	}
	for len(recs) < n {
		t = t.Add(time.Duration(200+rng.IntN(600)) * time.Millisecond)
		if rng.IntN(2000) == 0 { // a stuffing burst
			ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(rng.IntN(250))})
			tenant := fmt.Sprintf("t%d", rng.IntN(4))
			for i := 0; i < 30 && len(recs) < n; i++ {
				t = t.Add(time.Duration(rng.IntN(5000)) * time.Millisecond)
				add(audit.Event{Tenant: tenant, Action: audit.ActionLoginFailure, Reason: "unknown_user",
					Actor:   audit.Actor{ID: fmt.Sprintf("leak%d@example.com", rng.IntN(100000))},
					Context: audit.Context{IP: ip, UserAgent: "python-requests/2.31"},
					Enrichment: audit.Enrichment{Network: &audit.Network{Scope: "public", ASN: 64500, ASOrg: "Example Hosting", Datacenter: true},
						Geo:       &audit.Geo{Country: "US", City: "Ashburn", Latitude: 39.04, Longitude: -77.48, HasLocation: true, AccuracyKM: 50},
						UserAgent: &audit.UserAgent{Class: audit.UAClassScripted}}})
			}
			continue
		}
		u := rng.IntN(users)
		home := cities[u%len(cities)]
		tenant := fmt.Sprintf("t%d", u%4)
		ip := netip.AddrFrom4([4]byte{100, byte(64 + u%60), byte(u >> 8), byte(u)})
		ev := audit.Event{Tenant: tenant, Actor: audit.Actor{ID: fmt.Sprintf("user%d", u)},
			Context: audit.Context{IP: ip, UserAgent: "Mozilla/5.0 Chrome/122", SessionID: fmt.Sprintf("s%d-%d", u, t.Unix()/3600),
				AuthMethod: "password", DeviceID: fmt.Sprintf("dev%d", u)},
			Enrichment: audit.Enrichment{
				Geo:       &audit.Geo{Country: home.country, City: home.name, Latitude: home.lat, Longitude: home.lon, HasLocation: true, AccuracyKM: 20},
				Network:   &audit.Network{Scope: "public", ASN: home.asn, ASOrg: home.org},
				UserAgent: &audit.UserAgent{Class: audit.UAClassBrowser, Browser: "Chrome", OS: "Windows"}}}
		switch r := rng.IntN(100); {
		case r < 60:
			ev.Action = audit.ActionLoginSuccess
		case r < 70:
			ev.Action, ev.Reason = audit.ActionLoginFailure, "invalid_password"
		case r < 80:
			ev.Action, ev.Reason = audit.ActionLogout, "user"
		case r < 85 && rng.IntN(50) == 0:
			ev.Action = audit.ActionPasswordChanged
		case r < 90 && rng.IntN(10) == 0:
			ev.Action = audit.ActionDataExported
		default:
			ev.Action = audit.ActionSessionCreated
		}
		add(ev)
	}
	return recs
}

// clone deep-copies records so two engines never share events.
func clone(recs []*audit.Record) []*audit.Record {
	out := make([]*audit.Record, len(recs))
	for i, r := range recs {
		c := *r
		c.Event.Risk = nil
		out[i] = &c
	}
	return out
}

// travellers is ten days of logins of n actors from home (Paris), then one
// each from far away, to a place and network of its own so that no shared
// destination looks like a corporate gateway: a new location for every
// actor with a history.
func travellers(n int) []*audit.Record {
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	var recs []*audit.Record
	login := func(u int, at time.Time, ip netip.Addr, country, city string, lat, lon float64, asn uint32) {
		ev := audit.Event{ID: fmt.Sprintf("ev%06d", len(recs)+1), Tenant: "acme", Action: audit.ActionLoginSuccess, Time: at,
			Actor: audit.Actor{ID: fmt.Sprintf("user%d", u)},
			Context: audit.Context{IP: ip, UserAgent: "Mozilla/5.0 Chrome/122", SessionID: fmt.Sprintf("s%d-%d", u, len(recs)),
				AuthMethod: "password", DeviceID: fmt.Sprintf("dev%d", u)},
			Enrichment: audit.Enrichment{
				Geo:       &audit.Geo{Country: country, City: city, Latitude: lat, Longitude: lon, HasLocation: true, AccuracyKM: 20},
				Network:   &audit.Network{Scope: "public", ASN: asn, ASOrg: "net"},
				UserAgent: &audit.UserAgent{Class: audit.UAClassBrowser, Browser: "Chrome", OS: "Windows"}}}
		ev.Normalize(at)
		recs = append(recs, &audit.Record{Seq: uint64(len(recs) + 1), Event: ev})
	}
	for d := range 10 {
		for u := range n {
			at := start.Add(time.Duration(d)*24*time.Hour + time.Duration(u)*time.Minute)
			login(u, at, netip.AddrFrom4([4]byte{100, 64, byte(u), 10}), "FR", "Paris", 48.8566, 2.3522, 3215)
		}
	}
	for u := range n {
		at := start.Add(10*24*time.Hour + time.Duration(u)*time.Minute)
		login(u, at, netip.AddrFrom4([4]byte{byte(20 + u%100), byte(u), 7, 20}), "JP", fmt.Sprintf("City%d", u),
			-40+float64(u%80), 100+float64(u%60), uint32(60000+u))
	}
	return recs
}
