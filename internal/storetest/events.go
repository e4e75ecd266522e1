package storetest

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// baseTime is the suite's reference event time.
var baseTime = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

// sampleEvent is a fully populated login failure.
func sampleEvent(tenant, id string, at time.Time) audit.Event {
	lat, lon := 48.85, 2.35
	return audit.Event{
		ID: id, Tenant: tenant, Time: at, ReceivedAt: at.Add(1500 * time.Microsecond),
		Action: audit.ActionLoginFailure, Outcome: audit.OutcomeFailure, Reason: "invalid_password",
		Actor:  audit.Actor{ID: "alice@example.com", Type: audit.ActorUser, Email: "alice@example.com", Name: "Alice"},
		Target: audit.Target{Type: "user", ID: "u-1", Name: "Alice"},
		Context: audit.Context{IP: netip.MustParseAddr("203.0.113.7"), UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
			SessionID: "s-1", RequestID: "r-1", AuthMethod: "password", DeviceID: "d-1",
			Geo: &audit.ClientGeo{Country: "FR", City: "Paris", Latitude: &lat, Longitude: &lon}},
		Metadata: map[string]any{"plan": "Enterprise", "attempt": 3, "nested": map[string]any{"note": "Hello World"}},
		Enrichment: audit.Enrichment{
			Geo:       &audit.Geo{Country: "FR", City: "Paris", Latitude: 48.85, Longitude: 2.35, HasLocation: true, AccuracyKM: 20, Source: "geoip"},
			Network:   &audit.Network{Scope: audit.ScopePublic, ASN: 64500, ASOrg: "Example Hosting", Datacenter: true, Lists: []string{"hosting", "tor"}},
			UserAgent: &audit.UserAgent{Browser: "Firefox", BrowserVersion: "128.0", OS: "Linux", Class: audit.UAClassBrowser},
		},
		Risk: &audit.Risk{Score: 72, Reasons: []string{"new_country"}, Decision: audit.DecisionChallenge},
	}
}

func eventsOf(t *testing.T, open func(t *testing.T) Backend) (Backend, audit.EventStore) {
	t.Helper()
	b := open(t)
	if b.Events == nil {
		t.Skip("backend has no event store")
	}
	return b, b.Events
}

func search(t *testing.T, s audit.EventStore, f audit.EventFilter) []audit.Event {
	t.Helper()
	var all []audit.Event
	for range 1000 {
		page, err := s.SearchEvents(t.Context(), f)
		noErr(t, err)
		all = append(all, page.Events...)
		if page.Next == "" {
			return all
		}
		f.Cursor = page.Next
	}
	t.Fatal("paging did not end")
	return nil
}

func ids(evs []audit.Event) string {
	s := ""
	for i, e := range evs {
		if i > 0 {
			s += ","
		}
		s += e.ID
	}
	return s
}

// variant returns the i-th event of a small, varied data set: times one
// minute apart, spread over two days so that time-partitioned backends
// span several partitions.
func variant(tenant string, i int) audit.Event {
	e := sampleEvent(tenant, fmt.Sprintf("e%02d", i), baseTime.Add(time.Duration(i)*37*time.Minute))
	e.Actor.ID = fmt.Sprintf("user%d", i%3)
	e.Context.SessionID = fmt.Sprintf("s%d", i%4)
	e.Target.ID = ""
	if i%5 == 0 {
		e.Target.ID = "victim"
	}
	switch i % 4 {
	case 0:
		e.Context.IP = netip.MustParseAddr("203.0.113.7")
	case 1:
		e.Context.IP = netip.MustParseAddr("203.0.113.200")
	case 2:
		e.Context.IP = netip.MustParseAddr("2001:db8::1")
	case 3:
		e.Context.IP = netip.MustParseAddr("198.51.100.1")
	}
	if i%2 == 1 {
		e.Action, e.Outcome, e.Reason = audit.ActionLoginSuccess, audit.OutcomeSuccess, ""
	}
	if i%6 == 0 {
		e.Action, e.Outcome = "user.role.changed", ""
	}
	if i%3 == 0 {
		e.Enrichment.Geo.Country = "DE"
		e.Enrichment.Network.ASN = 64501
		e.Enrichment.Network.Lists = nil
		e.Enrichment.UserAgent.Class = audit.UAClassScripted
	}
	e.Metadata = map[string]any{"note": fmt.Sprintf("Ticket-%d", i)}
	return e
}

func runEvents(t *testing.T, open func(t *testing.T) Backend) {
	t.Run("InsertGetRoundTrip", func(t *testing.T) {
		_, s := eventsOf(t, open)
		ctx := t.Context()
		want := sampleEvent("a", "01J0000000000000000000000A", baseTime.Add(123456789))
		noErr(t, s.InsertEvents(ctx, []audit.Event{want}))
		got, err := s.GetEvent(ctx, "a", want.ID)
		noErr(t, err)
		sameJSON(t, "event", *got, want)
		if !got.Time.Equal(want.Time) {
			t.Fatalf("time %v, want %v (nanoseconds kept)", got.Time, want.Time)
		}
		minimal := audit.Event{ID: "m", Tenant: "a", Time: baseTime, Action: "custom.thing"}
		noErr(t, s.InsertEvents(ctx, []audit.Event{minimal}))
		got, err = s.GetEvent(ctx, "a", "m")
		noErr(t, err)
		sameJSON(t, "minimal event", *got, minimal)
	})

	t.Run("GetUnknownOrOtherTenant", func(t *testing.T) {
		_, s := eventsOf(t, open)
		ctx := t.Context()
		noErr(t, s.InsertEvents(ctx, []audit.Event{sampleEvent("a", "1", baseTime)}))
		_, err := s.GetEvent(ctx, "a", "2")
		wantCode(t, err, audit.ENOTFOUND)
		_, err = s.GetEvent(ctx, "b", "1")
		wantCode(t, err, audit.ENOTFOUND)
	})

	t.Run("IdempotentInsert", func(t *testing.T) {
		_, s := eventsOf(t, open)
		ctx := t.Context()
		e := sampleEvent("a", "1", baseTime)
		changed := e
		changed.Reason = "changed"
		noErr(t, s.InsertEvents(ctx, []audit.Event{e, e}))
		noErr(t, s.InsertEvents(ctx, []audit.Event{changed, sampleEvent("b", "1", baseTime)}))
		got := search(t, s, audit.EventFilter{Tenant: "a"})
		if len(got) != 1 || got[0].Reason != e.Reason {
			t.Fatalf("after repeated inserts tenant a has %d events (reason %q), want 1 unchanged", len(got), got[0].Reason)
		}
		if got := search(t, s, audit.EventFilter{Tenant: "b"}); len(got) != 1 {
			t.Fatalf("tenant b has %d events, want 1 (same id, other tenant)", len(got))
		}
	})

	t.Run("FilterWithoutTenant", func(t *testing.T) {
		_, s := eventsOf(t, open)
		_, err := s.SearchEvents(t.Context(), audit.EventFilter{ActorID: "x"})
		wantCode(t, err, audit.EINVALID)
	})

	t.Run("MalformedCursor", func(t *testing.T) {
		_, s := eventsOf(t, open)
		for _, c := range []string{"%%%", "AAAA", "bm90LWEtY3Vyc29y", "x"} {
			_, err := s.SearchEvents(t.Context(), audit.EventFilter{Tenant: "a", Cursor: c})
			wantCode(t, err, audit.EINVALID)
		}
	})

	t.Run("Filters", func(t *testing.T) {
		_, s := eventsOf(t, open)
		ctx := t.Context()
		var all []audit.Event
		for i := range 40 {
			all = append(all, variant("a", i))
		}
		noErr(t, s.InsertEvents(ctx, all))
		noErr(t, s.InsertEvents(ctx, []audit.Event{variant("b", 1), variant("b", 2)}))
		// expect computes the answer by brute force, newest first.
		expect := func(keep func(e audit.Event) bool) string {
			var out []audit.Event
			for i := len(all) - 1; i >= 0; i-- {
				if keep(all[i]) {
					out = append(out, all[i])
				}
			}
			return ids(out)
		}
		cidr4 := netip.MustParsePrefix("203.0.113.0/24")
		cidr6 := netip.MustParsePrefix("2001:db8::/32")
		tests := []struct {
			name string
			f    audit.EventFilter
			keep func(e audit.Event) bool
		}{
			{"all", audit.EventFilter{}, func(audit.Event) bool { return true }},
			{"since until", audit.EventFilter{Since: baseTime.Add(5 * 37 * time.Minute), Until: baseTime.Add(30 * 37 * time.Minute)},
				func(e audit.Event) bool {
					return !e.Time.Before(baseTime.Add(5*37*time.Minute)) && e.Time.Before(baseTime.Add(30*37*time.Minute))
				}},
			{"action exact", audit.EventFilter{Action: audit.ActionLoginSuccess}, func(e audit.Event) bool { return e.Action == audit.ActionLoginSuccess }},
			{"action prefix", audit.EventFilter{Action: "auth.*"}, func(e audit.Event) bool { return e.Action != "user.role.changed" }},
			{"action prefix user", audit.EventFilter{Action: "user.*"}, func(e audit.Event) bool { return e.Action == "user.role.changed" }},
			{"action prefix not a segment", audit.EventFilter{Action: "aut.*"}, func(audit.Event) bool { return false }},
			{"action unknown", audit.EventFilter{Action: "no.such"}, func(audit.Event) bool { return false }},
			{"actor", audit.EventFilter{ActorID: "user1"}, func(e audit.Event) bool { return e.Actor.ID == "user1" }},
			{"target", audit.EventFilter{TargetID: "victim"}, func(e audit.Event) bool { return e.Target.ID == "victim" }},
			{"session", audit.EventFilter{SessionID: "s2"}, func(e audit.Event) bool { return e.Context.SessionID == "s2" }},
			{"ip exact v4", audit.EventFilter{IP: netip.MustParsePrefix("203.0.113.7/32")}, func(e audit.Event) bool { return e.Context.IP.String() == "203.0.113.7" }},
			{"cidr v4", audit.EventFilter{IP: cidr4}, func(e audit.Event) bool { return cidr4.Contains(e.Context.IP) }},
			{"cidr v6", audit.EventFilter{IP: cidr6}, func(e audit.Event) bool { return cidr6.Contains(e.Context.IP) }},
			{"cidr v4-mapped", audit.EventFilter{IP: netip.MustParsePrefix("::ffff:203.0.113.0/120")}, func(e audit.Event) bool { return cidr4.Contains(e.Context.IP) }},
			{"cidr all v6", audit.EventFilter{IP: netip.MustParsePrefix("::/0")}, func(e audit.Event) bool { return e.Context.IP.Is6() }},
			{"outcome", audit.EventFilter{Outcome: audit.OutcomeFailure}, func(e audit.Event) bool { return e.Outcome == audit.OutcomeFailure }},
			{"country", audit.EventFilter{Country: "DE"}, func(e audit.Event) bool { return e.Enrichment.Geo.Country == "DE" }},
			{"asn", audit.EventFilter{ASN: 64500}, func(e audit.Event) bool { return e.Enrichment.Network.ASN == 64500 }},
			{"list", audit.EventFilter{List: "tor"}, func(e audit.Event) bool { return e.Enrichment.Network.Lists != nil }},
			{"ua class", audit.EventFilter{UAClass: audit.UAClassScripted}, func(e audit.Event) bool { return e.Enrichment.UserAgent.Class == audit.UAClassScripted }},
			{"text case-insensitive", audit.EventFilter{Text: "ticket-1"}, func(e audit.Event) bool {
				n := e.Metadata["note"].(string)
				return n == "Ticket-1" || (len(n) == 9 && n[:8] == "Ticket-1")
			}},
			{"combined", audit.EventFilter{ActorID: "user0", IP: cidr4, Action: "auth.*", Since: baseTime.Add(time.Hour)},
				func(e audit.Event) bool {
					return e.Actor.ID == "user0" && cidr4.Contains(e.Context.IP) && e.Action != "user.role.changed" && !e.Time.Before(baseTime.Add(time.Hour))
				}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				for _, limit := range []int{0, 3} {
					f := tc.f
					f.Tenant, f.Limit = "a", limit
					if got, want := ids(search(t, s, f)), expect(tc.keep); got != want {
						t.Fatalf("limit %d:\n got %s\nwant %s", limit, got, want)
					}
				}
			})
		}
	})

	t.Run("OrderTimeThenID", func(t *testing.T) {
		_, s := eventsOf(t, open)
		ctx := t.Context()
		var evs []audit.Event
		for _, id := range []string{"b", "a", "c"} {
			evs = append(evs, sampleEvent("a", id, baseTime))
		}
		evs = append(evs, sampleEvent("a", "z", baseTime.Add(-time.Nanosecond)), sampleEvent("a", "0", baseTime.Add(time.Nanosecond)))
		noErr(t, s.InsertEvents(ctx, evs))
		noErr(t, s.InsertEvents(ctx, []audit.Event{sampleEvent("b", "b", baseTime)}))
		for _, limit := range []int{1, 2, 100} {
			if got := ids(search(t, s, audit.EventFilter{Tenant: "a", Limit: limit})); got != "0,c,b,a,z" {
				t.Fatalf("limit %d: order %s, want 0,c,b,a,z", limit, got)
			}
		}
		// All tenants: (time, id, tenant) descending; same id in two tenants.
		var all []string
		for _, e := range search(t, s, audit.EventFilter{AllTenants: true, Limit: 1}) {
			all = append(all, e.Tenant+"/"+e.ID)
		}
		if fmt.Sprint(all) != "[a/0 a/c b/b a/b a/a a/z]" {
			t.Fatalf("all tenants: %v", all)
		}
	})

	t.Run("PagingUnderConcurrentInserts", func(t *testing.T) {
		_, s := eventsOf(t, open)
		ctx := t.Context()
		var initial []audit.Event
		for i := range 300 {
			initial = append(initial, sampleEvent("a", fmt.Sprintf("old%04d", i), baseTime.Add(time.Duration(i)*time.Second)))
		}
		noErr(t, s.InsertEvents(ctx, initial))
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// New events, some newer than everything, some interleaved.
				at := baseTime.Add(time.Duration(i%400)*time.Second + 500*time.Millisecond)
				if err := s.InsertEvents(context.WithoutCancel(ctx), []audit.Event{sampleEvent("a", fmt.Sprintf("new%05d", i), at)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
		seen := map[string]bool{}
		f := audit.EventFilter{Tenant: "a", Limit: 7}
		var last audit.Event
		for {
			page, err := s.SearchEvents(ctx, f)
			noErr(t, err)
			for _, e := range page.Events {
				if seen[e.ID] {
					t.Fatalf("event %s returned twice", e.ID)
				}
				if last.ID != "" && (e.Time.After(last.Time) || (e.Time.Equal(last.Time) && e.ID >= last.ID)) {
					t.Fatalf("event %s out of order after %s", e.ID, last.ID)
				}
				seen[e.ID], last = true, e
			}
			if page.Next == "" {
				break
			}
			f.Cursor = page.Next
		}
		close(stop)
		wg.Wait()
		for _, e := range initial {
			if !seen[e.ID] {
				t.Fatalf("event %s present before paging began was skipped", e.ID)
			}
		}
	})

	t.Run("CrossTenantIsolation", func(t *testing.T) {
		_, s := eventsOf(t, open)
		ctx := t.Context()
		noErr(t, s.InsertEvents(ctx, []audit.Event{sampleEvent("a", "1", baseTime), sampleEvent("b", "2", baseTime)}))
		for _, f := range []audit.EventFilter{
			{Tenant: "a"}, {Tenant: "a", ActorID: "alice@example.com"}, {Tenant: "a", IP: netip.MustParsePrefix("0.0.0.0/0")},
			{Tenant: "a", Action: "auth.*"}, {Tenant: "a", SessionID: "s-1"}, {Tenant: "a", TargetID: "u-1"}, {Tenant: "a", Text: "enterprise"},
		} {
			for _, e := range search(t, s, f) {
				if e.Tenant != "a" {
					t.Fatalf("filter %+v returned tenant %s's event", f, e.Tenant)
				}
			}
		}
		_, err := s.GetEvent(ctx, "a", "2")
		wantCode(t, err, audit.ENOTFOUND)
		// A cursor from tenant b's search does not open tenant b to tenant a.
		page, err := s.SearchEvents(ctx, audit.EventFilter{AllTenants: true, Limit: 1})
		noErr(t, err)
		if page.Next != "" {
			for _, e := range search(t, s, audit.EventFilter{Tenant: "a", Cursor: page.Next}) {
				if e.Tenant != "a" {
					t.Fatal("cursor leaked another tenant")
				}
			}
		}
	})

	t.Run("Purge", func(t *testing.T) {
		_, s := eventsOf(t, open)
		r, ok := s.(audit.Retention)
		if !ok {
			t.Skip("event store has no retention")
		}
		ctx := t.Context()
		var evs []audit.Event
		for i := range 10 {
			evs = append(evs, sampleEvent("a", fmt.Sprint(i), baseTime.Add(time.Duration(i)*24*time.Hour)))
			evs = append(evs, sampleEvent("b", fmt.Sprint(i), baseTime.Add(time.Duration(i)*24*time.Hour)))
		}
		noErr(t, s.InsertEvents(ctx, evs))
		_, err := r.Purge(ctx, "", baseTime.Add(100*24*time.Hour))
		wantCode(t, err, audit.EINVALID)
		n, err := r.Purge(ctx, "a", baseTime.Add(4*24*time.Hour))
		noErr(t, err)
		if n != 4 {
			t.Fatalf("purged %d, want 4", n)
		}
		if n, _ := r.Purge(ctx, "a", baseTime.Add(4*24*time.Hour)); n != 0 {
			t.Fatalf("second purge deleted %d", n)
		}
		if got := ids(search(t, s, audit.EventFilter{Tenant: "a"})); got != "9,8,7,6,5,4" {
			t.Fatalf("tenant a after purge: %s", got)
		}
		if got := len(search(t, s, audit.EventFilter{Tenant: "b"})); got != 10 {
			t.Fatalf("tenant b lost events: %d left", got)
		}
		_, err = s.GetEvent(ctx, "a", "0")
		wantCode(t, err, audit.ENOTFOUND)
		// Purge everything of both: later events stay searchable, inserts work.
		_, err = r.Purge(ctx, "b", baseTime.Add(100*24*time.Hour))
		noErr(t, err)
		noErr(t, s.InsertEvents(ctx, []audit.Event{sampleEvent("b", "0", baseTime)}))
		if got := len(search(t, s, audit.EventFilter{Tenant: "b"})); got != 1 {
			t.Fatalf("re-inserted after purge: %d events, want 1", got)
		}
	})
}
