package detect_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
)

// gatewayWorld is a tenant whose staff live in European cities and log in,
// from time to time, through a corporate gateway in Ashburn (US) that no IP
// list knows as a VPN.
type gatewayWorld struct {
	t0  time.Time
	seq uint64
	id  int
}

var homes = []struct {
	city     string
	lat, lon float64
}{{"Paris", 48.85, 2.35}, {"Berlin", 52.52, 13.40}, {"Madrid", 40.42, -3.70}, {"Rome", 41.90, 12.50},
	{"Warsaw", 52.23, 21.01}, {"Lisbon", 38.72, -9.14}, {"Vienna", 48.21, 16.37}, {"Oslo", 59.91, 10.75}}

const gatewayIP = "198.51.100.10"

func (w *gatewayWorld) login(actor string, at time.Duration, ip string, city string, lat, lon float64, asn uint32) *audit.Record {
	w.seq++
	w.id++
	return &audit.Record{Seq: w.seq, Event: audit.Event{
		ID: fmt.Sprintf("e%04d", w.id), Tenant: "acme", Time: w.t0.Add(at), Action: audit.ActionLoginSuccess, Outcome: audit.OutcomeSuccess,
		Actor:   audit.Actor{ID: actor, Type: audit.ActorUser},
		Context: audit.Context{IP: netip.MustParseAddr(ip), UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", DeviceID: "laptop-" + actor},
		Enrichment: audit.Enrichment{
			Geo:       &audit.Geo{Country: "XX", City: city, Latitude: lat, Longitude: lon, HasLocation: true, AccuracyKM: 20},
			Network:   &audit.Network{ASN: asn, Scope: audit.ScopePublic},
			UserAgent: &audit.UserAgent{Class: audit.UAClassBrowser, Browser: "Chrome", OS: "Windows"},
		},
	}}
}

// staff: each actor logs in at home, then through the gateway six hours later.
func (w *gatewayWorld) staff(n int) []*audit.Record {
	var recs []*audit.Record
	for i := range n {
		h := homes[i%len(homes)]
		actor := fmt.Sprintf("staff-%d", i)
		recs = append(recs, w.login(actor, time.Duration(i)*time.Minute, fmt.Sprintf("203.0.%d.20", 110+i), h.city, h.lat, h.lon, uint32(64600+i)))
	}
	for i := range n {
		recs = append(recs, w.login(fmt.Sprintf("staff-%d", i), 6*time.Hour+time.Duration(i)*time.Minute, gatewayIP, "Ashburn", 39.04, -77.49, 64500))
	}
	return recs
}

// traveller: Paris, then the gateway 30 minutes later: impossible travel
// unless the gateway is a relay.
func (w *gatewayWorld) traveller(at time.Duration) []*audit.Record {
	return []*audit.Record{
		w.login("victim", at, "203.0.200.5", "Paris", 48.85, 2.35, 64999),
		w.login("victim", at+30*time.Minute, gatewayIP, "Ashburn", 39.04, -77.49, 64500),
	}
}

func ruleFired(fs []audit.Finding, rule, actor string) bool {
	for _, f := range fs {
		if f.RuleID == rule && f.ActorID == actor {
			return true
		}
	}
	return false
}

func egressOf(gs []audit.Egress, kind, value string) *audit.Egress {
	for i := range gs {
		if gs[i].Kind == kind && gs[i].Value == value {
			return &gs[i]
		}
	}
	return nil
}

func TestEgressIsLearnedListedAndTunable(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

	// Learned: five staff through the gateway make it a relay; the listing
	// shows the address, its /24 and its network with what taught them (the
	// traveller, coming from Paris, is one more far-away actor).
	w := &gatewayWorld{t0: t0}
	e := newEngine(t, detect.Options{})
	fs := run(t, e, append(w.staff(6), w.traveller(8*time.Hour)...), 100)
	gs := e.Egresses("acme", false)
	ip := egressOf(gs, "ip", gatewayIP)
	if ip == nil || !ip.Learned || !ip.Relay || ip.FarActors != 7 || ip.Successes != 7 || ip.Tuning != "" {
		t.Fatalf("learned egresses %+v: want %s learned from 6 far-away actors", gs, gatewayIP)
	}
	if ip.LearnedSince.IsZero() || ip.FirstSeen.IsZero() || !ip.FirstSeen.Before(ip.LearnedSince) || ip.LastSeen.Before(ip.LearnedSince) {
		t.Fatalf("egress times: %+v", ip)
	}
	if egressOf(gs, "net", "198.51.100.0/24") == nil || egressOf(gs, "asn", "AS64500") == nil {
		t.Fatalf("learned egresses %+v: want the /24 and AS64500 too", gs)
	}
	if egressOf(e.Egresses("other", true), "ip", gatewayIP) != nil {
		t.Fatal("another tenant sees acme's egress")
	}
	if ruleFired(fs, "impossible-travel", "victim") {
		t.Fatal("impossible-travel through a learned gateway")
	}

	// Forbidden: once learned, the tenant says the /24 is no egress of
	// theirs; its addresses are judged as anyone's again, even though
	// AS64500 stays learned. Removing the entry restores what was learned.
	w = &gatewayWorld{t0: t0}
	e = newEngine(t, detect.Options{})
	run(t, e, w.staff(6), 100)
	forbid := []audit.AllowEntry{{Tenant: "acme", Kind: "cidr", Value: "198.51.100.0/24", Mode: audit.AllowNotEgress}}
	if err := e.SetTenantConfig("acme", nil, forbid); err != nil {
		t.Fatal(err)
	}
	gs = e.Egresses("acme", true)
	if g := egressOf(gs, "ip", gatewayIP); g == nil || g.Tuning != "forbidden" || g.Relay || !g.Learned {
		t.Fatalf("forbidden egress listed as %+v", g)
	}
	if g := egressOf(gs, "asn", "AS64500"); g == nil || g.Tuning != "" || !g.Relay {
		t.Fatalf("the network around a forbidden /24 listed as %+v", g)
	}
	if fs = run(t, e, w.traveller(8*time.Hour), 100); !ruleFired(fs, "impossible-travel", "victim") {
		t.Fatal("no impossible-travel through a gateway the tenant forbade")
	}
	if err := e.SetTenantConfig("acme", nil, nil); err != nil {
		t.Fatal(err)
	}
	if g := egressOf(e.Egresses("acme", false), "ip", gatewayIP); g == nil || !g.Relay {
		t.Fatalf("after removing the entry: %+v", g)
	}
	// Forbidden before anything was learned: never even a candidate.
	w = &gatewayWorld{t0: t0}
	e = newEngine(t, detect.Options{})
	if err := e.SetTenantConfig("acme", nil, forbid); err != nil {
		t.Fatal(err)
	}
	run(t, e, w.staff(6), 100)
	if g := egressOf(e.Egresses("acme", true), "ip", gatewayIP); g != nil {
		t.Fatalf("a range forbidden from the start became a candidate: %+v", g)
	}

	// Pinned: with learning off, the tenant declares the gateway; before
	// any staff used it, it is a relay.
	w = &gatewayWorld{t0: t0}
	e = newEngine(t, detect.Options{Egress: detect.EgressOptions{Off: true}})
	fs = run(t, e, append(w.staff(6), w.traveller(8*time.Hour)...), 100)
	if len(e.Egresses("acme", true)) != 0 {
		t.Fatal("learning off still learned")
	}
	if !ruleFired(fs, "impossible-travel", "victim") {
		t.Fatal("no impossible-travel with learning off and no pin")
	}
	w = &gatewayWorld{t0: t0}
	e = newEngine(t, detect.Options{Egress: detect.EgressOptions{Off: true}})
	if err := e.SetTenantConfig("acme", nil, []audit.AllowEntry{{Tenant: "acme", Kind: "asn", Value: "AS64500", Mode: audit.AllowEgress}}); err != nil {
		t.Fatal(err)
	}
	if fs = run(t, e, w.traveller(time.Hour), 100); ruleFired(fs, "impossible-travel", "victim") {
		t.Fatal("impossible-travel through a pinned egress")
	}
	if err := e.SetTenantConfig("acme", nil, []audit.AllowEntry{{Tenant: "acme", Kind: "asn", Value: "AS64500", Mode: "sometimes"}}); audit.ErrorCode(err) != audit.EINVALID {
		t.Fatalf("an unknown mode: %v", err)
	}

	// The threshold is configurable: with 8 actors needed, 6 teach nothing.
	w = &gatewayWorld{t0: t0}
	e = newEngine(t, detect.Options{Egress: detect.EgressOptions{MinActors: 8}})
	run(t, e, w.staff(6), 100)
	if g := egressOf(e.Egresses("acme", true), "ip", gatewayIP); g == nil || g.Learned || g.Relay {
		t.Fatalf("with min 8 actors, 6 made %+v", g)
	}
	if len(e.Egresses("acme", false)) != 0 {
		t.Fatal("an unlearned candidate listed without all")
	}

	// A deny list keeps a range from ever being learned.
	w = &gatewayWorld{t0: t0}
	e = newEngine(t, detect.Options{Egress: detect.EgressOptions{Deny: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}})
	run(t, e, w.staff(6), 100)
	if g := egressOf(e.Egresses("acme", false), "ip", gatewayIP); g != nil {
		t.Fatalf("a denied range was learned: %+v", g)
	}
}
