package detect_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/mock"
)

// counter reads one of the engine's counters from reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func byRule(fs []audit.Finding, rule string) []audit.Finding {
	var out []audit.Finding
	for _, f := range detect.Latest(fs) {
		if f.RuleID == rule {
			out = append(out, f)
		}
	}
	return out
}

func TestLateEventIsEvaluatedInItsOwnTimeCountedAndNoted(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEngine(t, detect.Options{AllowedLateness: time.Minute, Registerer: reg})
	var recs []*audit.Record
	for i := range 9 {
		recs = append(recs, failure(i, fmt.Sprintf("u%d", i), "203.0.113.7"))
	}
	run(t, e, recs, 100) // evaluated to the end (Flush)

	// A tenth account, an hour before the others: late, evaluated in its
	// own time, where the window holds nothing else.
	late := failure(9, "u9", "203.0.113.7")
	late.Event.Time = late.Event.Time.Add(-time.Hour)
	if fs := byRule(run(t, e, []*audit.Record{late}, 1), "credential-stuffing"); len(fs) != 0 {
		t.Fatalf("an hour-old event completed a 10-minute window: %v", fs)
	}
	if got := counter(t, reg, "vigil_detect_late_events_total"); got != 1 {
		t.Fatalf("late events counted %v, want 1", got)
	}
	// A replayed Seq is skipped.
	dup := failure(10, "u10", "203.0.113.7")
	dup.Seq = 5
	if fs := run(t, e, []*audit.Record{dup}, 1); len(fs) != 0 {
		t.Fatalf("replayed seq produced %v", fs)
	}
	// Another late account, 30 s behind what was evaluated: in its own
	// time it completes the window, and the finding says detection was
	// degraded.
	ok := failure(11, "u11", "203.0.113.7")
	ok.Event.Time = ok.Event.Time.Add(-40 * time.Second)
	fs := byRule(run(t, e, []*audit.Record{ok}, 1), "credential-stuffing")
	if len(fs) != 1 {
		t.Fatalf("late event in its own time did not complete the window: %v", fs)
	}
	if !strings.Contains(fs[0].Degraded, "2 events arrived after later events") {
		t.Errorf("finding does not carry the degradation note: %q", fs[0].Degraded)
	}
}

// bruteForce is n failures for one account from one address, 5 s apart.
func bruteForce(tenant string, seq0, n int, at time.Time) []*audit.Record {
	var out []*audit.Record
	for i := range n {
		ev := audit.Event{ID: fmt.Sprintf("%s-bf%03d", tenant, i), Tenant: tenant, Action: audit.ActionLoginFailure,
			Reason: "invalid_password", Time: at.Add(time.Duration(i) * 5 * time.Second), Actor: audit.Actor{ID: "victim@example.com"}}
		ev.Context.IP = mustAddr("198.51.100.9")
		ev.Context.UserAgent = "Mozilla/5.0 Chrome/122"
		ev.Enrichment.UserAgent = &audit.UserAgent{Class: audit.UAClassBrowser}
		ev.Normalize(ev.Time)
		out = append(out, &audit.Record{Seq: uint64(seq0 + i), Event: ev})
	}
	return out
}

func TestOneFutureStampDoesNotHideLaterEvents(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	want := byRule(run(t, newEngine(t, detect.Options{}), bruteForce("acme", 1, 20, at), 7), "brute-force")
	if len(want) != 1 {
		t.Fatalf("the brute force alone gave %d findings", len(want))
	}
	// One application server stamps an event 10 minutes ahead, just
	// before the attack. In review, it made every later event over 2
	// minutes older late, and late events skipped the rules.
	ahead := failure(0, "someone", "192.0.2.1")
	ahead.Event.Tenant, ahead.Event.Time = "acme", at.Add(10*time.Minute)
	recs := append([]*audit.Record{ahead}, bruteForce("acme", 2, 20, at)...)
	reg := prometheus.NewRegistry()
	got := byRule(run(t, newEngine(t, detect.Options{Registerer: reg}), recs, 7), "brute-force")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("one future-stamped event changed the brute-force finding (-alone +with it):\n%s", diff)
	}
	if n := counter(t, reg, "vigil_detect_late_events_total"); n != 0 {
		t.Errorf("%v events counted late", n)
	}
}

func TestFlagsExpireInTheirTenantsTime(t *testing.T) {
	// acme is stuffed from one address (flagged stuffing_source for an
	// hour), then 30 minutes later a success comes from it: a stuffing hit.
	// Meanwhile another tenant's clock is days ahead (a backfill, a wrong
	// clock). Its traffic must not expire acme's flag.
	base := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var recs []*audit.Record
	for i := range 12 {
		r := failure(i, fmt.Sprintf("leak%d@example.com", i), "203.0.113.50")
		r.Event.Time = base.Add(time.Duration(i) * 10 * time.Second)
		recs = append(recs, r)
	}
	hit := failure(12, "victim@example.com", "203.0.113.50")
	hit.Event.Action, hit.Event.Outcome, hit.Event.Reason = audit.ActionLoginSuccess, audit.OutcomeSuccess, ""
	hit.Event.Time = base.Add(30 * time.Minute)
	other := failure(13, "x@other.example", "192.0.2.77")
	other.Event.Tenant, other.Event.Time = "other", base.Add(72*time.Hour)

	alone := run(t, newEngine(t, detect.Options{}), append(slices.Clone(recs), hit), 100)
	if len(byRule(alone, "stuffing-hit")) != 1 {
		t.Fatalf("no stuffing hit without the other tenant: %v", detect.Latest(alone))
	}
	// The other tenant's far-ahead event arrives between acme's batches.
	e := newEngine(t, detect.Options{})
	mixed := run(t, e, recs, 100)
	for i := range 3 {
		o := *other
		o.Seq, o.Event.ID = uint64(100+i), fmt.Sprintf("o%d", i)
		mixed = append(mixed, run(t, e, []*audit.Record{&o}, 1)...)
	}
	h := *hit
	h.Seq = 200
	mixed = append(mixed, run(t, e, []*audit.Record{&h}, 1)...)
	if diff := cmp.Diff(byRule(alone, "stuffing-hit"), byRule(mixed, "stuffing-hit")); diff != "" {
		t.Errorf("another tenant's clock changed acme's stuffing hit (-alone +mixed):\n%s", diff)
	}
}

func TestTenantKeyCapEvictsItsOwnLeastRecentlyUsedKeys(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEngine(t, detect.Options{MaxKeys: 1000, MaxTenantKeys: 200, Registerer: reg})
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	// The victim tenant's brute force starts first...
	bf := bruteForce("victim", 1, 20, at)
	var recs []*audit.Record
	recs = append(recs, bf[:5]...)
	// ...then a flood from another tenant: thousands of addresses and
	// accounts, each a new key, interleaved with the brute force.
	seq := 1000
	for i := range 3000 {
		ev := audit.Event{ID: fmt.Sprintf("fl%05d", i), Tenant: "flood", Action: audit.ActionLoginFailure, Reason: "unknown_user",
			Time: at.Add(time.Duration(i) * 20 * time.Millisecond), Actor: audit.Actor{ID: fmt.Sprintf("a%d@x.example", i)}}
		ev.Context.IP = mustAddr(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
		ev.Normalize(ev.Time)
		seq++
		recs = append(recs, &audit.Record{Seq: uint64(seq), Event: ev})
	}
	for _, r := range bf[5:] {
		seq++
		r.Seq = uint64(seq)
		recs = append(recs, r)
	}
	slices.SortStableFunc(recs, func(a, b *audit.Record) int { return a.Event.Time.Compare(b.Event.Time) })
	for i, r := range recs {
		r.Seq = uint64(i + 1)
	}
	fs := run(t, e, recs, 250)
	want := byRule(run(t, newEngine(t, detect.Options{}), bruteForce("victim", 1, 20, at), 7), "brute-force")
	if diff := cmp.Diff(want, byRule(onlyTenant(fs, "victim"), "brute-force")); diff != "" {
		t.Errorf("another tenant's flood changed the victim's brute-force finding (-alone +flooded):\n%s", diff)
	}
	if n := counter(t, reg, "vigil_detect_keys_evicted_total"); n == 0 {
		t.Error("the flooding tenant reached its cap but no key was evicted")
	}
	var noted bool
	for _, f := range detect.Latest(fs) {
		if f.Tenant == "flood" && strings.Contains(f.Degraded, "evicted at the tenant's state cap") {
			noted = true
		}
		if f.Tenant == "victim" && f.Degraded != "" {
			t.Errorf("the victim's finding is marked degraded: %q", f.Degraded)
		}
	}
	if !noted {
		t.Error("no finding of the flooding tenant says its detection was degraded")
	}
}

func onlyTenant(fs []audit.Finding, tenant string) []audit.Finding {
	var out []audit.Finding
	for _, f := range fs {
		if f.Tenant == tenant {
			out = append(out, f)
		}
	}
	return out
}

// arrival is one way a stream could reach the engine.
type arrival struct {
	name string
	recs []*audit.Record
	// idle are positions (record counts) after which the consumer caught
	// up and called Advance with the wall clock of that moment.
	idle map[int]time.Time
	// batches are the Process batch sizes, cycled.
	batches []int
}

// TestFindingsDoNotDependOnArrival is the determinism property: the same
// events give the same findings whether they arrive in time order or
// shuffled within the allowed lateness, interleaved with other tenants in
// any way, in batches of any size with idle pauses in between (machine
// load), and with one application server of a tenant whose clock runs
// minutes fast. Findings are compared whole (ids, severities, counts,
// evidence, explanations) after the stream ends.
func TestFindingsDoNotDependOnArrival(t *testing.T) {
	const lateness = 2 * time.Minute
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			base := clone(genStream(6000, 200, seed))
			// One sender of tenant t1 (its users with ids ending in 7)
			// stamps events 4 minutes ahead of real time.
			const skew = 4 * time.Minute
			real := map[string]time.Time{}
			for _, r := range base {
				real[r.Event.ID] = r.Event.Time
				if r.Event.Tenant == "t1" && strings.HasSuffix(r.Event.Actor.ID, "7") {
					r.Event.Time = r.Event.Time.Add(skew)
				}
			}
			// A brute force in t2, so every property run has an attack
			// whose window straddles reordering.
			bf := bruteForce("t2", 0, 15, base[len(base)/2].Event.Time)
			for _, r := range bf {
				real[r.Event.ID] = r.Event.Time
			}
			base = append(base, bf...)

			sorted := slices.Clone(base)
			slices.SortStableFunc(sorted, func(a, b *audit.Record) int {
				if c := a.Event.Time.Compare(b.Event.Time); c != 0 {
					return c
				}
				return strings.Compare(a.Event.ID, b.Event.ID)
			})
			ways := []arrival{{name: "in time order, one batch", recs: sorted, batches: []int{len(sorted)}}}
			// Shuffled: each event arrives at its real time plus a delay
			// below the lateness (network, retries, batching SDKs).
			at := map[string]time.Time{}
			for _, r := range base {
				at[r.Event.ID] = real[r.Event.ID].Add(time.Duration(rng.Int64N(int64(lateness))))
			}
			shuffled := slices.Clone(base)
			slices.SortStableFunc(shuffled, func(a, b *audit.Record) int { return at[a.Event.ID].Compare(at[b.Event.ID]) })
			idle := map[int]time.Time{}
			for i := 50; i < len(shuffled); i += 50 + rng.IntN(400) {
				idle[i] = at[shuffled[i-1].Event.ID]
			}
			ways = append(ways, arrival{name: "shuffled within the lateness, idle pauses", recs: shuffled, idle: idle, batches: []int{1, 7, 300, 64}})
			// Tenants interleaved differently: each tenant keeps its
			// shuffled order, but tenants are taken in runs of random
			// length, as separate ingest connections would deliver them.
			byTenant := map[string][]*audit.Record{}
			var names []string
			for _, r := range shuffled {
				if byTenant[r.Event.Tenant] == nil {
					names = append(names, r.Event.Tenant)
				}
				byTenant[r.Event.Tenant] = append(byTenant[r.Event.Tenant], r)
			}
			var inter []*audit.Record
			for len(inter) < len(shuffled) {
				tn := names[rng.IntN(len(names))]
				n := min(1+rng.IntN(40), len(byTenant[tn]))
				inter = append(inter, byTenant[tn][:n]...)
				byTenant[tn] = byTenant[tn][n:]
			}
			ways = append(ways, arrival{name: "tenants interleaved in runs", recs: inter, batches: []int{500, 13}})

			var want string
			for i, w := range ways {
				recs := clone(w.recs)
				for j, r := range recs {
					r.Seq = uint64(j + 1)
				}
				e := newEngine(t, detect.Options{AllowedLateness: lateness, StateStore: mock.NewStateStore()})
				var all []audit.Finding
				pos, bi := 0, 0
				for pos < len(recs) {
					n := min(w.batches[bi%len(w.batches)], len(recs)-pos)
					bi++
					fs, err := e.Process(t.Context(), recs[pos:pos+n])
					if err != nil {
						t.Fatal(err)
					}
					all = append(all, fs...)
					for k := pos + 1; k <= pos+n; k++ {
						if now, ok := w.idle[k]; ok {
							fs, err := e.Advance(t.Context(), now)
							if err != nil {
								t.Fatal(err)
							}
							all = append(all, fs...)
						}
					}
					pos += n
				}
				fs, err := e.Flush(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				got := asJSON(t, append(all, fs...))
				if i == 0 {
					want = got
					if len(byRule(append(all, fs...), "brute-force")) == 0 {
						t.Fatal("the brute force was not detected")
					}
					continue
				}
				if got != want {
					t.Errorf("%s: findings differ from the time-ordered run:\n%s", w.name, cmp.Diff(want, got))
				}
			}
		})
	}
}
