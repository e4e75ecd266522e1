package detect_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/mock"
)

// homeLogins are n daily logins of actor from one city, network and device.
func homeLogins(actor string, seq0, n int) []*audit.Record {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	recs := make([]*audit.Record, n)
	for i := range recs {
		ev := audit.Event{ID: fmt.Sprintf("%s-%d", actor, i), Tenant: "acme", Action: audit.ActionLoginSuccess, Outcome: audit.OutcomeSuccess,
			Time:       t0.Add(time.Duration(i) * 24 * time.Hour),
			Actor:      audit.Actor{ID: actor, Type: audit.ActorUser},
			Context:    audit.Context{IP: netip.MustParseAddr("192.0.2.10"), UserAgent: "Mozilla/5.0 Firefox/128.0", DeviceID: "laptop-" + actor},
			Enrichment: audit.Enrichment{Geo: &audit.Geo{Country: "FR", City: "Paris", Latitude: 48.85, Longitude: 2.35, HasLocation: true, AccuracyKM: 20}, Network: &audit.Network{ASN: 3215, Scope: audit.ScopePublic}}}
		recs[i] = &audit.Record{Seq: uint64(seq0 + i + 1), Event: ev}
	}
	return recs
}

// probe is the next login of actor, an hour after its last, from a new
// country, network and device: risky for an actor with a profile.
func probe(recs []*audit.Record, actor string) *audit.Event {
	ev := recs[len(recs)-1].Event
	ev.ID, ev.Actor.ID, ev.Context.DeviceID, ev.Risk = "probe", actor, "phone-"+actor, nil
	ev.Time = ev.Time.Add(time.Hour)
	ev.Context.IP = netip.MustParseAddr("203.0.113.7")
	ev.Enrichment = audit.Enrichment{Geo: &audit.Geo{Country: "JP", City: "Tokyo", Latitude: 35.68, Longitude: 139.69, HasLocation: true, AccuracyKM: 20},
		Network: &audit.Network{ASN: 2516, Scope: audit.ScopePublic}}
	return &ev
}

func TestForgetProfile(t *testing.T) {
	for _, tc := range []struct {
		name        string
		maxProfiles int
	}{{"in memory", 0}, {"evicted to the store", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			store := mock.NewStateStore()
			e := newEngine(t, detect.Options{StateStore: store, MaxProfiles: tc.maxProfiles})
			alice := homeLogins("alice", 0, 20)
			bob := homeLogins("bob", 20, 20)
			dave := homeLogins("dave", 40, 20)
			run(t, e, clone(slices.Concat(alice, bob, dave)), 10)
			if err := e.Checkpoint(t.Context()); err != nil {
				t.Fatal(err)
			}
			if tc.maxProfiles > 0 {
				// The checkpoint evicted alice and bob from memory (the cap
				// is 2); another tenant's actor fills memory up again, so
				// the engine reads evicted profiles from the store.
				erin := homeLogins("erin", 60, 1)
				erin[0].Event.Tenant = "other"
				run(t, e, clone(erin), 1)
				if n := e.ProfileCount(); n != tc.maxProfiles {
					t.Fatalf("%d profiles in memory, want %d", n, tc.maxProfiles)
				}
			}
			stranger := e.Score(probe(alice, "carol")) // never seen: a first login
			known := e.Score(probe(alice, "alice"))
			bobBefore := e.Score(probe(bob, "bob"))
			if slices.Equal(known.Reasons, stranger.Reasons) && known.Score == stranger.Score {
				t.Fatalf("a known actor scores like a stranger: %+v", known)
			}

			found, err := e.ForgetProfile(t.Context(), "acme", "alice")
			if err != nil || !found {
				t.Fatalf("forget alice: %v %v", found, err)
			}
			check := func(e *detect.Engine) {
				t.Helper()
				if got := e.Score(probe(alice, "alice")); got.Score != stranger.Score || !slices.Equal(got.Reasons, stranger.Reasons) {
					t.Errorf("alice after forgetting scores %+v, a stranger %+v", got, stranger)
				}
				if got := e.Score(probe(bob, "bob")); got.Score != bobBefore.Score || !slices.Equal(got.Reasons, bobBefore.Reasons) {
					t.Errorf("bob changed: %+v, was %+v", got, bobBefore)
				}
			}
			check(e)
			if _, err := store.GetState(t.Context(), "detect", "p/acme|alice"); audit.ErrorCode(err) != audit.ENOTFOUND {
				t.Errorf("alice's profile is still stored: %v", err)
			}
			if _, err := store.GetState(t.Context(), "detect", "p/acme|bob"); err != nil {
				t.Errorf("bob's profile: %v", err)
			}
			// A checkpoint does not write it back, and a restart does not
			// bring it back.
			if err := e.Checkpoint(t.Context()); err != nil {
				t.Fatal(err)
			}
			check(newEngine(t, detect.Options{StateStore: store, MaxProfiles: tc.maxProfiles}))
			if found, err := e.ForgetProfile(t.Context(), "acme", "alice"); err != nil || found {
				t.Errorf("forgetting again: %v %v", found, err)
			}
		})
	}
}

func TestForgetProfileWithoutStore(t *testing.T) {
	e := newEngine(t, detect.Options{})
	alice := homeLogins("alice", 0, 5)
	run(t, e, clone(alice), 5)
	if found, err := e.ForgetProfile(t.Context(), "acme", "alice"); err != nil || !found {
		t.Fatalf("forget alice: %v %v", found, err)
	}
	if n := e.ProfileCount(); n != 0 {
		t.Fatalf("%d profiles left", n)
	}
	if _, err := e.ForgetProfile(t.Context(), "", "alice"); audit.ErrorCode(err) != audit.EINVALID {
		t.Fatalf("no tenant: %v", err)
	}
}

func TestRewriteOpenIncidents(t *testing.T) {
	store := mock.NewStateStore()
	c := clone(waveStream(3))
	half := len(c) / 2
	e1 := newEngine(t, detect.Options{StateStore: store})
	_, first := runIncidents(t, e1, c[:half], 13)
	if len(first) == 0 {
		t.Fatal("the first half opened no incident")
	}
	mark := func(inc *audit.Incident) bool {
		if inc.Note == "rewritten" {
			return false
		}
		inc.Note = "rewritten"
		return true
	}
	if n := e1.RewriteOpenIncidents("other", mark); n != 0 {
		t.Fatalf("rewrote %d incidents of another tenant", n)
	}
	n := e1.RewriteOpenIncidents("acme", mark)
	if n == 0 {
		t.Fatal("no open incident was rewritten")
	}
	if got := e1.TakeIncidents(); len(got) != 0 {
		t.Fatalf("a rewrite handed out %d incidents", len(got))
	}
	if err := e1.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	// After a restart, the incidents' next changes carry the rewrite.
	e2 := newEngine(t, detect.Options{StateStore: store})
	if again := e2.RewriteOpenIncidents("acme", mark); again != 0 {
		t.Fatalf("%d incidents were restored without the rewrite", again)
	}
	_, rest := runIncidents(t, e2, c[half:], 31)
	seen := map[string]bool{}
	for _, inc := range first {
		seen[inc.ID] = true
	}
	for _, inc := range rest {
		if seen[inc.ID] && inc.Note != "rewritten" {
			t.Errorf("incident %s lost the rewrite: %+v", inc.ID, inc)
		}
	}
}
