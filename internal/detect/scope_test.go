package detect_test

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/detect/rulelang"
	"github.com/vigilhq/vigil/internal/mock"
)

// crossTenantStream is genStream's traffic of four tenants with, two
// hours in, one slow campaign spread over twelve other tenants: 300
// unknown-user failures in eight minutes from 150 addresses, two each, so
// that no tenant and no address stands out and only the installation-wide
// rule sees it.
func crossTenantStream(seed uint64) []*audit.Record {
	base := genStream(20000, 500, seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	// The campaign goes where no single-source burst of genStream is
	// within the installation window: one source over the per-source bar
	// rightly makes the rule step aside for credential-stuffing.
	var bursts []time.Time
	for _, r := range base {
		if r.Event.Reason == "unknown_user" {
			bursts = append(bursts, r.Event.Time)
		}
	}
	start := base[0].Event.Time.Add(90 * time.Minute)
	for slices.ContainsFunc(bursts, func(b time.Time) bool {
		return b.After(start.Add(-15*time.Minute)) && b.Before(start.Add(25*time.Minute))
	}) {
		start = start.Add(time.Minute)
	}
	var wave []*audit.Record
	for i := range 300 {
		ev := audit.Event{ID: fmt.Sprintf("wave%04d", i), Tenant: fmt.Sprintf("w%d", rng.IntN(12)),
			Action: audit.ActionLoginFailure, Reason: "unknown_user",
			Time:  start.Add(time.Duration(i) * 1600 * time.Millisecond),
			Actor: audit.Actor{ID: fmt.Sprintf("leak%d@example.org", rng.IntN(1_000_000))}}
		ev.Context.IP = netip.AddrFrom4([4]byte{198, 18, byte(i / 2 / 250), byte(i / 2 % 250)})
		ev.Context.UserAgent = "Mozilla/5.0 (Windows NT 10.0) Chrome/122"
		ev.Enrichment = audit.Enrichment{Network: &audit.Network{Scope: "public", ASN: 64501, ASOrg: "Example Residential"},
			UserAgent: &audit.UserAgent{Class: audit.UAClassBrowser, Browser: "Chrome"}}
		ev.Normalize(ev.Time)
		wave = append(wave, &audit.Record{Event: ev})
	}
	all := append(base, wave...)
	slices.SortStableFunc(all, func(a, b *audit.Record) int { return a.Event.Time.Compare(b.Event.Time) })
	for i, r := range all {
		r.Seq = uint64(i + 1)
	}
	return all
}

// partOf is the partition of a tenant among n, as a stream partitions by
// tenant.
func partOf(tenant string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(tenant))
	return int(h.Sum32() % uint32(n))
}

// TestPartitionedEnginesFindWhatOneEngineFinds: the stream split by tenant
// over three engines of ScopeTenants, each in its own namespace of one
// state store and restarted from its checkpoint halfway, plus one engine
// of ScopeInstallation over the whole stream, give exactly the findings
// and incidents of one engine over everything.
func TestPartitionedEnginesFindWhatOneEngineFinds(t *testing.T) {
	recs := crossTenantStream(21)
	wantF, wantI := runIncidents(t, newEngine(t, detect.Options{}), clone(recs), 500)
	want := asJSON(t, wantF)
	rules := ruleSet(detect.Latest(wantF))
	if rules["distributed-credential-stuffing-installation"] == 0 || rules["credential-stuffing"] == 0 {
		t.Fatalf("the reference run lacks the findings this test is about: %v", rules)
	}

	const parts = 3
	store := mock.NewStateStore()
	var gotF []audit.Finding
	var gotI []audit.Incident
	for p := range parts {
		var mine []*audit.Record
		for _, r := range clone(recs) {
			if partOf(r.Event.Tenant, parts) == p {
				mine = append(mine, r)
			}
		}
		opts := detect.Options{Scope: detect.ScopeTenants, Namespace: fmt.Sprintf("detect.p%d", p), StateStore: store}
		half := len(mine) / 2
		e1 := newEngine(t, opts)
		for i := 0; i < half; i += 97 {
			fs, err := e1.Process(t.Context(), mine[i:min(i+97, half)])
			if err != nil {
				t.Fatal(err)
			}
			gotF = append(gotF, fs...)
			gotI = append(gotI, e1.TakeIncidents()...)
		}
		if err := e1.Checkpoint(t.Context()); err != nil {
			t.Fatal(err)
		}
		fs, is := runIncidents(t, newEngine(t, opts), mine[half:], 313)
		for _, f := range fs {
			if f.RuleID == "distributed-credential-stuffing-installation" {
				t.Fatalf("an engine of ScopeTenants raised an installation-wide finding: %+v", f)
			}
		}
		gotF, gotI = append(gotF, fs...), append(gotI, is...)
	}
	// The installation engine takes the reference's batches: the moment
	// an installation-wide window learns its baseline depends on where
	// batches end (tenants are released one after another at the end of
	// a batch), in one engine as in this one; the tenants' engines above
	// do not depend on it.
	fs, is := runIncidents(t, newEngine(t, detect.Options{Scope: detect.ScopeInstallation, Namespace: "detect.installation", StateStore: store}), clone(recs), 500)
	for _, f := range fs {
		if f.RuleID != "distributed-credential-stuffing-installation" {
			t.Fatalf("the engine of ScopeInstallation raised a finding of rule %s", f.RuleID)
		}
	}
	gotF, gotI = append(gotF, fs...), append(gotI, is...)

	if got := asJSON(t, gotF); got != want {
		t.Errorf("partitioned findings differ from one engine's: %v, want %v", ruleSet(detect.Latest(gotF)), rules)
	}
	sameIncidents(t, "partitioned", incidents(wantI), incidents(gotI))
}

// TestScopedEnginesKeepTheirStateApart: two engines on one state store in
// namespaces of their own each restore their own state only.
func TestScopedEnginesKeepTheirStateApart(t *testing.T) {
	store := mock.NewStateStore()
	recs := genStream(3000, 100, 9)
	a := newEngine(t, detect.Options{Namespace: "detect.p0", StateStore: store})
	run(t, a, clone(recs[:1000]), 500)
	if err := a.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	if p := newEngine(t, detect.Options{Namespace: "detect.p0", StateStore: store}).Position(); p != 1000 {
		t.Errorf("the engine restored position %d from its namespace, want 1000", p)
	}
	if p := newEngine(t, detect.Options{Namespace: "detect.p1", StateStore: store}).Position(); p != 0 {
		t.Errorf("an engine of another namespace restored position %d, want 0 (nothing of its own)", p)
	}
	if p := newEngine(t, detect.Options{StateStore: store}).Position(); p != 0 {
		t.Errorf("the default namespace restored position %d, want 0", p)
	}
}

// TestUnpartitionableInstallationRulesAreRefused: an installation-wide rule
// that sets or reads what only one engine over everything has (flags, risk
// scores, tenant statistics, profiles) is refused by the engines of
// partitioned detection, naming the rule and the reason, and accepted by
// one engine.
func TestUnpartitionableInstallationRulesAreRefused(t *testing.T) {
	const head = `name: Installation-wide test
description: test
severity: high
on: [auth.login.failure]
group_by: [installation]
explain: "{count} events"
`
	agg := "kind: threshold\nwindow: 10m\n"
	for _, c := range []struct{ id, body, why string }{
		{"sets-flag", agg + "condition: count >= 20\nflag: {name: wide_wave, ttl: 1h}\n", "wide_wave"},
		{"reads-risk", agg + "condition: count >= 20 && max_risk > 50\n", "risk"},
		{"reads-flags", "kind: match\nwhen: '\"stuffing_source\" in flags'\n", "flags"},
		{"reads-tenant", agg + "condition: count >= 20 && tenant.logins > 100\n", "tenant.logins"},
	} {
		rs, err := rulelang.Parse(c.id+".yaml", []byte("id: "+c.id+"\n"+head+c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.id, err)
		}
		if _, err := detect.New(detect.Options{Rules: rs}); err != nil {
			t.Fatalf("%s: one engine refused the rule: %v", c.id, err)
		}
		for _, s := range []detect.Scope{detect.ScopeTenants, detect.ScopeInstallation} {
			_, err := detect.New(detect.Options{Rules: rs, Scope: s})
			if err == nil || !strings.Contains(err.Error(), c.id) || !strings.Contains(err.Error(), c.why) {
				t.Errorf("%s, scope %s: error %v, want a refusal naming the rule and %q", c.id, s, err, c.why)
			}
		}
	}
	// The built-in installation-wide rule is partitionable.
	if _, err := detect.New(detect.Options{Rules: builtin(t), Scope: detect.ScopeInstallation}); err != nil {
		t.Fatalf("the built-in rules are refused when partitioned: %v", err)
	}
}

// TestSeededUnitsGoOnWhereOneEngineStopped: one engine over everything
// checkpoints halfway; the units' engines, seeded from its state
// (SeedState), take the second half; together the findings and incidents
// are those of one engine over the whole stream, so switching to
// partitioned detection loses nothing learned.
func TestSeededUnitsGoOnWhereOneEngineStopped(t *testing.T) {
	recs := crossTenantStream(23)
	wantF, wantI := runIncidents(t, newEngine(t, detect.Options{}), clone(recs), 500)
	want := asJSON(t, wantF)

	store := mock.NewStateStore()
	all := clone(recs)
	half := len(all) / 2 / 500 * 500 // on a batch boundary of the reference run
	one := newEngine(t, detect.Options{StateStore: store})
	var gotF []audit.Finding
	var gotI []audit.Incident
	for i := 0; i < half; i += 500 {
		fs, err := one.Process(t.Context(), all[i:i+500])
		if err != nil {
			t.Fatal(err)
		}
		gotF, gotI = append(gotF, fs...), append(gotI, one.TakeIncidents()...)
	}
	if err := one.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	heldAtSwitch, profilesAtSwitch := one.Held(), one.ProfileCount()
	if heldAtSwitch == 0 {
		t.Fatal("the engine holds no event at the checkpoint: the test would not see held events lost")
	}
	// The reference's risk scores of the second half's logins, which
	// depend on the profiles learned in the first.
	ref := clone(recs)
	run(t, newEngine(t, detect.Options{}), ref, 500)

	const parts = 3
	unitsHeld, unitsProfiles := 0, 0
	for p := range parts {
		ns := fmt.Sprintf("detect.p%d", p)
		owns := func(tenant string) bool { return partOf(tenant, parts) == p }
		if ok, err := detect.SeedState(t.Context(), store, detect.DefaultNamespace, ns, owns, false); err != nil || !ok {
			t.Fatalf("seed %s: %v, %v", ns, ok, err)
		}
		if ok, err := detect.SeedState(t.Context(), store, detect.DefaultNamespace, ns, owns, false); err != nil || ok {
			t.Fatalf("seeding %s again wrote over its state: %v, %v", ns, ok, err)
		}
		var mine []*audit.Record
		for _, r := range all[half:] {
			if owns(r.Event.Tenant) {
				mine = append(mine, r)
			}
		}
		e := newEngine(t, detect.Options{Scope: detect.ScopeTenants, Namespace: ns, StateStore: store})
		unitsHeld, unitsProfiles = unitsHeld+e.Held(), unitsProfiles+e.ProfileCount()
		fs, is := runIncidents(t, e, mine, 171)
		gotF, gotI = append(gotF, fs...), append(gotI, is...)
	}
	if unitsProfiles != profilesAtSwitch {
		t.Errorf("the tenants' units hold %d profiles after seeding, the engine held %d", unitsProfiles, profilesAtSwitch)
	}
	if unitsHeld != heldAtSwitch {
		t.Errorf("the tenants' units hold %d events after seeding, the engine held %d", unitsHeld, heldAtSwitch)
	}
	for i, r := range all[half:] {
		if want := ref[half+i].Event.Risk; r.Event.Action == audit.ActionLoginSuccess && (r.Event.Risk == nil || want == nil || r.Event.Risk.Score != want.Score) {
			t.Fatalf("event %s: risk %+v after seeding, one engine's %+v", r.Event.ID, r.Event.Risk, want)
		}
	}
	none := func(string) bool { return false }
	if ok, err := detect.SeedState(t.Context(), store, detect.DefaultNamespace, "detect.installation", none, true); err != nil || !ok {
		t.Fatalf("seed the installation unit: %v, %v", ok, err)
	}
	fs, is := runIncidents(t, newEngine(t, detect.Options{Scope: detect.ScopeInstallation, Namespace: "detect.installation", StateStore: store}), clone(recs)[half:], 500)
	gotF, gotI = append(gotF, fs...), append(gotI, is...)

	if got := asJSON(t, gotF); got != want {
		t.Errorf("findings after seeding differ from one engine's: %v, want %v", ruleSet(detect.Latest(gotF)), ruleSet(detect.Latest(wantF)))
	}
	sameIncidents(t, "after seeding", incidents(wantI), incidents(gotI))
}

// TestEvaluatesFollowsTheScope: an engine says it evaluates an action only
// when a rule of its scope looks at it.
func TestEvaluatesFollowsTheScope(t *testing.T) {
	all := newEngine(t, detect.Options{})
	tenants := newEngine(t, detect.Options{Scope: detect.ScopeTenants})
	inst := newEngine(t, detect.Options{Scope: detect.ScopeInstallation})
	for _, c := range []struct {
		action             string
		all, tenants, inst bool
	}{
		{audit.ActionLoginFailure, true, true, true},
		{audit.ActionLoginSuccess, true, true, false},
	} {
		if got := all.Evaluates(c.action); got != c.all {
			t.Errorf("ScopeAll evaluates %s: %v", c.action, got)
		}
		if got := tenants.Evaluates(c.action); got != c.tenants {
			t.Errorf("ScopeTenants evaluates %s: %v", c.action, got)
		}
		if got := inst.Evaluates(c.action); got != c.inst {
			t.Errorf("ScopeInstallation evaluates %s: %v", c.action, got)
		}
	}
}
