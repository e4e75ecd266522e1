package detect_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/mock"
)

// TestEvictedProfilesGiveTheSameFindings: the in-memory profile cap only
// trades memory for store reads. An engine that must evict profiles at
// every checkpoint (cap 40, for 120 actors) raises exactly the findings
// of one that keeps every profile in memory. It did not: an evicted
// profile was reloaded only while memory was at the cap, and eviction
// leaves it at 90 %, so an evicted actor's next login was judged as a
// first login (no new-location) and overwrote their stored history.
func TestEvictedProfilesGiveTheSameFindings(t *testing.T) {
	const actors = 120
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
	// Ten days of each actor logging in from home (Paris), then each one
	// once from far away: a new location for every actor with a history.
	for d := range 10 {
		for u := range actors {
			at := start.Add(time.Duration(d)*24*time.Hour + time.Duration(u)*time.Minute)
			login(u, at, netip.AddrFrom4([4]byte{100, 64, byte(u), 10}), "FR", "Paris", 48.8566, 2.3522, 3215)
		}
	}
	for u := range actors {
		at := start.Add(10*24*time.Hour + time.Duration(u)*time.Minute)
		// Each to a place and network of their own, so no shared
		// destination looks like a corporate gateway.
		login(u, at, netip.AddrFrom4([4]byte{byte(20 + u%100), byte(u), 7, 20}), "JP", fmt.Sprintf("City%d", u),
			-40+float64(u%80), 100+float64(u%60), uint32(60000+u))
	}
	run := func(opts detect.Options) []audit.Finding {
		opts.StateStore = mock.NewStateStore()
		e := newEngine(t, opts)
		var all []audit.Finding
		for i := 0; i < len(recs); i += 50 {
			fs, err := e.Process(t.Context(), clone(recs[i:min(i+50, len(recs))]))
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, fs...)
			if err := e.Checkpoint(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		fs, err := e.Flush(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return detect.Latest(append(all, fs...))
	}
	count := func(fs []audit.Finding, rule string) int {
		n := 0
		for _, f := range fs {
			if f.RuleID == rule {
				n++
			}
		}
		return n
	}
	want := run(detect.Options{})
	t.Logf("rules: %v", ruleSet(want))
	if n := count(want, "new-location"); n < 10 {
		t.Fatalf("with every profile in memory: %d new-location findings for %d travellers; the stream does not test what it should", n, actors)
	}
	got := run(detect.Options{MaxProfiles: 40})
	if a, b := asJSON(t, got), asJSON(t, want); a != b {
		t.Fatalf("findings differ when profiles are evicted: new-location %d, want %d; %d findings, want %d",
			count(got, "new-location"), count(want, "new-location"), len(got), len(want))
	}
}
