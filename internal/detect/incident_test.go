package detect_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/mock"
)

// waveStream is two hours of one tenant's ordinary failures (a typo now
// and then, so the distributed-stuffing baseline warms up), then a wave:
// 300 residential addresses, each trying two or three leaked accounts with
// a scripted client within 15 minutes, then one success from a wave
// address for a real account (the hit), who then changes their email.
func waveStream(seed uint64) []*audit.Record {
	rng := rand.New(rand.NewPCG(seed, 7))
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	var evs []audit.Event
	for i := range 48 { // one typo every 2.5 minutes
		ev := audit.Event{Tenant: "acme", Action: audit.ActionLoginFailure, Reason: "invalid_password",
			Time: start.Add(time.Duration(i) * 150 * time.Second), Actor: audit.Actor{ID: fmt.Sprintf("bg%d@acme.example", i%20)}}
		ev.Context.IP = netip.AddrFrom4([4]byte{192, 0, 2, byte(2 + i%20)})
		ev.Context.UserAgent, ev.Context.DeviceID = "Mozilla/5.0 (Windows NT 10.0) Chrome/122", fmt.Sprintf("d%d", i%20)
		ev.Enrichment.UserAgent = &audit.UserAgent{Class: audit.UAClassBrowser}
		evs = append(evs, ev)
	}
	waveAt := start.Add(2 * time.Hour)
	var addrs []netip.Addr
	for i := range 300 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{byte(81 + i%40), byte(10 + i/40), byte(rng.IntN(250)), byte(1 + i)}))
	}
	for i, ip := range addrs {
		for j := range 2 + rng.IntN(2) {
			ev := audit.Event{Tenant: "acme", Action: audit.ActionLoginFailure, Reason: "unknown_user",
				Time:  waveAt.Add(time.Duration(rng.IntN(15*60)) * time.Second),
				Actor: audit.Actor{ID: fmt.Sprintf("leak%d-%d@example.com", i, j)}}
			ev.Context.IP, ev.Context.UserAgent = ip, "python-requests/2.31"
			ev.Enrichment.UserAgent = &audit.UserAgent{Class: audit.UAClassScripted}
			evs = append(evs, ev)
		}
	}
	hit := audit.Event{Tenant: "acme", Action: audit.ActionLoginSuccess, Time: waveAt.Add(16 * time.Minute),
		Actor: audit.Actor{ID: "carol@acme.example"}}
	hit.Context.IP, hit.Context.UserAgent, hit.Context.SessionID = addrs[17], "python-requests/2.31", "s-stolen"
	hit.Enrichment.UserAgent = &audit.UserAgent{Class: audit.UAClassScripted}
	change := audit.Event{Tenant: "acme", Action: audit.ActionEmailChanged, Time: waveAt.Add(18 * time.Minute),
		Actor: audit.Actor{ID: "carol@acme.example"}}
	change.Context = hit.Context
	change.Enrichment.UserAgent = hit.Enrichment.UserAgent
	evs = append(evs, hit, change)
	slices.SortStableFunc(evs, func(a, b audit.Event) int { return a.Time.Compare(b.Time) })
	recs := make([]*audit.Record, len(evs))
	for i := range evs {
		evs[i].ID = fmt.Sprintf("w%05d", i)
		evs[i].Normalize(evs[i].Time)
		recs[i] = &audit.Record{Seq: uint64(i + 1), Event: evs[i]}
	}
	return recs
}

// incidents folds incident versions into the final form of each, merged
// ones left out.
func incidents(vs []audit.Incident) map[string]audit.Incident {
	out := map[string]audit.Incident{}
	for _, v := range vs {
		out[v.ID] = v
	}
	for id, v := range out {
		if v.MergedInto != "" {
			delete(out, id)
		}
	}
	return out
}

// resolve follows merges: the incident a finding's stored incident id
// ends in.
func resolve(vs []audit.Incident, id string) string {
	into := map[string]string{}
	for _, v := range vs {
		if v.MergedInto != "" {
			into[v.ID] = v.MergedInto
		}
	}
	for into[id] != "" {
		id = into[id]
	}
	return id
}

func runIncidents(t *testing.T, e *detect.Engine, recs []*audit.Record, batch int) ([]audit.Finding, []audit.Incident) {
	t.Helper()
	var fs []audit.Finding
	var is []audit.Incident
	for i := 0; i < len(recs); i += batch {
		out, err := e.Process(t.Context(), recs[i:min(i+batch, len(recs))])
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, out...)
		is = append(is, e.TakeIncidents()...)
	}
	out, err := e.Flush(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return append(fs, out...), append(is, e.TakeIncidents()...)
}

func TestWaveOf300AddressesIsOneIncident(t *testing.T) {
	recs := waveStream(1)
	fs, versions := runIncidents(t, newEngine(t, detect.Options{}), clone(recs), 97)
	incs := incidents(versions)
	latest := detect.Latest(fs)
	perIP := 0
	for _, f := range latest {
		if f.RuleID == "automated-client" {
			perIP++
		}
	}
	if perIP < 300 {
		t.Fatalf("%d automated-client findings, want one per wave address (300)", perIP)
	}
	var wave *audit.Incident
	for _, inc := range incs {
		if slices.Contains(inc.Rules, "distributed-credential-stuffing") {
			if wave != nil {
				t.Fatalf("two incidents hold the wave: %s and %s", wave.ID, inc.ID)
			}
			wave = &inc
		}
	}
	if wave == nil {
		t.Fatalf("no incident for the wave; rules fired: %v", ruleSet(latest))
	}
	if wave.IPCount != 300 {
		t.Errorf("the wave's incident has %d addresses, want 300", wave.IPCount)
	}
	if wave.Family != "distributed-credential-stuffing" && wave.Family != "stuffing-hit" {
		t.Errorf("headline family %q (%s), want the wave's or the hit's", wave.Family, wave.Headline)
	}
	for _, f := range latest {
		if f.Tenant == "acme" && f.RuleID == "automated-client" && resolve(versions, f.IncidentID) != wave.ID {
			t.Errorf("wave finding %s (%s) is in incident %s, not the wave's", f.ID, f.IP, f.IncidentID)
			break
		}
	}
	// The hit's account is at risk, with its takeover change.
	i := slices.IndexFunc(wave.Accounts, func(a audit.AccountAtRisk) bool { return a.Actor == "carol@acme.example" })
	if i < 0 {
		t.Fatalf("carol is not among the accounts at risk: %+v", wave.Accounts)
	}
	if r := wave.Accounts[i].Reason; r != audit.RiskTakeoverChange && r != audit.RiskHit {
		t.Errorf("carol's reason %q, want hit or takeover-change", r)
	}
	if wave.FindingCount < 301 || len(wave.Timeline) < 301 || len(wave.Evidence) == 0 {
		t.Errorf("incident has %d findings, %d timeline entries, %d evidence ids", wave.FindingCount, len(wave.Timeline), len(wave.Evidence))
	}
	// The benign typos before the wave raise nothing, so no other incident.
	if len(incs) != 1 {
		for _, inc := range incs {
			t.Logf("incident %s: %s %v %d findings", inc.ID, inc.Headline, inc.Rules, inc.FindingCount)
		}
		t.Errorf("%d incidents, want 1", len(incs))
	}
}

func TestIncidentsAreDeterministicAcrossBatchingAndRestart(t *testing.T) {
	recs := waveStream(2)
	_, all := runIncidents(t, newEngine(t, detect.Options{}), clone(recs), len(recs))
	want := incidents(all)

	store := mock.NewStateStore()
	c := clone(recs)
	half := len(c) / 2
	e1 := newEngine(t, detect.Options{StateStore: store})
	var is []audit.Incident
	for i := 0; i < half; i += 13 {
		if _, err := e1.Process(t.Context(), c[i:min(i+13, half)]); err != nil {
			t.Fatal(err)
		}
		is = append(is, e1.TakeIncidents()...)
	}
	if err := e1.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	e2 := newEngine(t, detect.Options{StateStore: store})
	_, rest := runIncidents(t, e2, c[half:], 31)
	sameIncidents(t, "after batching and a restart", want, incidents(append(is, rest...)))
}

// sameIncidents fails unless got holds the incidents of want, each with
// the same findings, addresses, headline rule and rules.
func sameIncidents(t *testing.T, when string, want, got map[string]audit.Incident) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d incidents %s, want %d", len(got), when, len(want))
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			t.Fatalf("incident %s missing %s", id, when)
		}
		if g.FindingCount != w.FindingCount || g.IPCount != w.IPCount || g.HeadlineRule != w.HeadlineRule || !slices.Equal(g.Rules, w.Rules) {
			t.Errorf("incident %s differs %s: %d/%d findings, %d/%d addresses, %s/%s", id, when, g.FindingCount, w.FindingCount, g.IPCount, w.IPCount, g.HeadlineRule, w.HeadlineRule)
		}
	}
}

func ruleSet(fs []audit.Finding) map[string]int {
	m := map[string]int{}
	for _, f := range fs {
		m[f.RuleID]++
	}
	return m
}

// TestSubnetStuffingIncidentNamesItsNetwork: stuffing spread over one /24
// (no address crosses the per-address bar) raises a finding about the
// network, which names no single address; its incident must still name
// the source, as that network, not show "no address" and nothing else.
func TestSubnetStuffingIncidentNamesItsNetwork(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var recs []*audit.Record
	for i := range 24 {
		ev := audit.Event{ID: fmt.Sprintf("s%03d", i), Tenant: "acme", Action: audit.ActionLoginFailure, Reason: "invalid_password",
			Time: start.Add(time.Duration(i) * 13 * time.Second), Actor: audit.Actor{ID: fmt.Sprintf("user%d@acme.example", i)}}
		ev.Context.IP = netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i%8)})
		ev.Context.UserAgent = "Mozilla/5.0 (Windows NT 10.0) Chrome/122"
		ev.Enrichment.UserAgent = &audit.UserAgent{Class: audit.UAClassBrowser}
		ev.Normalize(ev.Time)
		recs = append(recs, &audit.Record{Seq: uint64(i + 1), Event: ev})
	}
	fs, versions := runIncidents(t, newEngine(t, detect.Options{}), recs, 5)
	var sub *audit.Finding
	for _, f := range detect.Latest(fs) {
		if f.RuleID == "credential-stuffing-subnet" {
			sub = &f
		}
	}
	if sub == nil {
		t.Fatalf("no credential-stuffing-subnet finding; rules fired: %v", ruleSet(detect.Latest(fs)))
	}
	if sub.IP != "" {
		t.Fatalf("the subnet finding names one address (%s); this test is about findings that do not", sub.IP)
	}
	inc, ok := incidents(versions)[resolve(versions, sub.IncidentID)]
	if !ok {
		t.Fatalf("the subnet finding's incident %q is not among the incidents", sub.IncidentID)
	}
	if !slices.Contains(inc.Networks, "198.51.100.0/24") {
		t.Errorf("incident networks = %v, want 198.51.100.0/24 among them", inc.Networks)
	}
}
