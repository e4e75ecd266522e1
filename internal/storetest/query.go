package storetest

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/query"
)

// This file is the query-language suite: every operator of
// docs/query-language.md, the stats functions, bin, sort, head, fields,
// CIDR matches, scopes, limits and errors, run through the backend's query
// runner. Expected answers are computed here, in plain Go over the events
// the test inserted, never by the engine under test.

// queryNow is the "now" of every query in the suite.
var queryNow = time.Date(2026, 5, 3, 12, 0, 0, 0, time.UTC)

// queryEvent is the i-th event of tenant a's query data set: 24 events 100
// minutes apart over the 40 hours before queryNow (three days, so
// day-partitioned backends read several partitions), with every queryable
// field set on some events and missing on others.
func queryEvent(i int) audit.Event {
	actions := []string{audit.ActionLoginFailure, audit.ActionLoginFailure, audit.ActionLoginSuccess,
		audit.ActionEmailChanged, audit.ActionMFARemoved, audit.ActionLogout}
	e := audit.Event{ID: fmt.Sprintf("a%02d", i), Tenant: "a", Time: queryNow.Add(-time.Duration(i*100+7) * time.Minute),
		Action: actions[i%len(actions)]}
	if e.Action == audit.ActionLoginFailure {
		e.Reason = "unknown_user"
		if i%4 == 0 {
			e.Reason = "invalid_password"
		}
	}
	e.Actor.ID = fmt.Sprintf("u%d", i%5)
	if i%2 == 0 {
		e.Actor.Email = e.Actor.ID + "@example.com"
	}
	if e.Action == audit.ActionEmailChanged || e.Action == audit.ActionMFARemoved {
		e.Target = audit.Target{ID: fmt.Sprintf("t%d", i%3), Type: "user"}
	}
	e.Context.DeviceID = "d-" + e.ID
	if i%7 != 0 {
		e.Context.SessionID = fmt.Sprintf("s%d", i%4)
	}
	e.Context.UserAgent = []string{"Mozilla/5.0 Firefox/128.0", "python-requests/2.31", ""}[i%3]
	e.Context.AuthMethod = []string{"password", "sso"}[i%2]
	switch i % 6 {
	case 0:
		e.Context.IP = netip.MustParseAddr("203.0.113.7")
		e.Enrichment.Geo = &audit.Geo{Country: "RU", City: "Moscow"}
		e.Enrichment.Network = &audit.Network{ASN: 64500, ASOrg: "Example Hosting", Lists: []string{"tor", "datacenter"}}
	case 1:
		e.Context.IP = netip.MustParseAddr("203.0.113.9")
		e.Enrichment.Geo = &audit.Geo{Country: "RU", City: "Moscow"}
		e.Enrichment.Network = &audit.Network{ASN: 64500, ASOrg: "Example Hosting", Lists: []string{"datacenter"}}
	case 2:
		e.Context.IP = netip.MustParseAddr("198.51.100.1")
		e.Enrichment.Geo = &audit.Geo{Country: "DE", City: "Berlin"}
		e.Enrichment.Network = &audit.Network{ASN: 64501, ASOrg: "Other Telecom"}
	case 3:
		e.Context.IP = netip.MustParseAddr("2001:db8::1")
		e.Enrichment.Geo = &audit.Geo{Country: "FR", City: "Paris"}
		e.Enrichment.Network = &audit.Network{ASN: 64502, ASOrg: "V6 Net"}
	case 5:
		e.Context.IP = netip.MustParseAddr("10.1.2.3")
	}
	if e.Context.UserAgent != "" {
		class := audit.UAClassBrowser
		if i%3 == 1 {
			class = audit.UAClassScripted
		}
		e.Enrichment.UserAgent = &audit.UserAgent{Class: class, Browser: []string{"Firefox", "", ""}[i%3]}
	}
	if e.Action == audit.ActionLoginSuccess {
		e.Risk = &audit.Risk{Score: i * 4 % 101, Reasons: []string{"new_asn", "new_device"}}
		if i%4 == 0 {
			e.Risk.Reasons = []string{"new_country"}
		}
	}
	switch i % 5 {
	case 0:
		e.Metadata = map[string]any{"note": "50% off_sale", "nested": map[string]any{"k": "Deep Value"}}
	case 1:
		e.Metadata = map[string]any{"factor": "totp", "count": 3}
	}
	e.Normalize(queryNow)
	return e
}

// queryData is tenant a's 24 events and tenant b's 3, which tenant a's
// queries must never see.
func queryData() (a, b []audit.Event) {
	for i := range 24 {
		a = append(a, queryEvent(i))
	}
	for i := range 3 {
		e := queryEvent(i)
		e.ID, e.Tenant = fmt.Sprintf("b%d", i), "b"
		e.Time = e.Time.Add(30 * time.Second)
		e.Actor.ID = "bob"
		e.Metadata = map[string]any{"secret": "b-only"}
		b = append(b, e)
	}
	return a, b
}

// queryOf returns a backend's query runner and event store with the data
// set inserted, skipping backends without a runner.
func queryOf(t *testing.T, open func(t *testing.T) Backend) (audit.QueryRunner, []audit.Event) {
	t.Helper()
	b := open(t)
	if b.Query == nil || b.Events == nil {
		t.Skip("backend has no query runner")
	}
	a, other := queryData()
	noErr(t, b.Events.InsertEvents(t.Context(), append(slices.Clone(a), other...)))
	return b.Query, a
}

func parse(t *testing.T, src string) *audit.Query {
	t.Helper()
	q, err := query.Parse(src, queryNow)
	if err != nil {
		t.Fatalf("parse %q: %v", src, err)
	}
	return q
}

func runQ(t *testing.T, r audit.QueryRunner, scope audit.QueryScope, src string) *audit.QueryResult {
	t.Helper()
	res, err := r.RunQuery(t.Context(), scope, parse(t, src))
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	return res
}

// cell renders one result value for comparison.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case []string:
		return strings.Join(x, ";")
	}
	return fmt.Sprint(v)
}

// rowsOf renders a result as "col=val col=val" lines.
func rowsOf(res *audit.QueryResult) []string {
	out := []string{}
	for _, row := range res.Rows {
		parts := make([]string, len(row))
		for i, v := range row {
			parts[i] = res.Columns[i].Name + "=" + cell(v)
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out
}

// newestFirst orders events the way event rows come: time, then id,
// descending.
func newestFirst(evs []audit.Event) {
	slices.SortFunc(evs, func(x, y audit.Event) int {
		if c := y.Time.Compare(x.Time); c != 0 {
			return c
		}
		return strings.Compare(y.ID, x.ID)
	})
}

// within returns the events of evs in [now-h, now), newest first, that
// keep accepts.
func within(evs []audit.Event, h time.Duration, keep func(e audit.Event) bool) []audit.Event {
	var out []audit.Event
	for _, e := range evs {
		if !e.Time.Before(queryNow.Add(-h)) && e.Time.Before(queryNow) && keep(e) {
			out = append(out, e)
		}
	}
	newestFirst(out)
	return out
}

func eventIDs(evs []audit.Event) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

// The accessors below read fields the way the language defines them:
// a missing enrichment is an empty value.
func country(e audit.Event) string {
	if e.Enrichment.Geo == nil {
		return ""
	}
	return e.Enrichment.Geo.Country
}

func asn(e audit.Event) int {
	if e.Enrichment.Network == nil {
		return 0
	}
	return int(e.Enrichment.Network.ASN)
}

func lists(e audit.Event) []string {
	if e.Enrichment.Network == nil {
		return nil
	}
	return e.Enrichment.Network.Lists
}

func riskScore(e audit.Event) (int, bool) {
	if e.Risk == nil {
		return 0, false
	}
	return e.Risk.Score, true
}

func uaClass(e audit.Event) string {
	if e.Enrichment.UserAgent == nil {
		return ""
	}
	return e.Enrichment.UserAgent.Class
}

func metaString(e audit.Event, keys ...string) (string, bool) {
	var cur any = e.Metadata
	for _, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		if cur, ok = m[k]; !ok {
			return "", false
		}
	}
	return fmt.Sprint(cur), true
}

func inPrefix(e audit.Event, p string) bool {
	return e.Context.IP.IsValid() && netip.MustParsePrefix(p).Contains(e.Context.IP)
}

func hasText(e audit.Event, needle string) bool {
	needle = strings.ToLower(needle)
	for _, s := range []string{e.Actor.ID, e.Actor.Email, e.Actor.Name, e.Target.ID, e.Target.Name, e.Reason, e.Context.UserAgent} {
		if strings.Contains(strings.ToLower(s), needle) {
			return true
		}
	}
	for _, keys := range [][]string{{"note"}, {"nested", "k"}, {"factor"}, {"count"}, {"secret"}} {
		if v, ok := metaString(e, keys...); ok && strings.Contains(strings.ToLower(v), needle) {
			return true
		}
	}
	return false
}

// filterCases are filters over tenant a's last 48 hours, each with its
// meaning written out in Go.
var filterCases = []struct {
	name string
	src  string
	keep func(e audit.Event) bool
}{
	{"everything", ``, func(audit.Event) bool { return true }},
	{"text equality", `actor.id:u1`, func(e audit.Event) bool { return e.Actor.ID == "u1" }},
	{"quoted value", `user_agent:"python-requests/2.31"`, func(e audit.Event) bool { return e.Context.UserAgent == "python-requests/2.31" }},
	{"prefix", `action:auth.login.*`, func(e audit.Event) bool { return strings.HasPrefix(e.Action, "auth.login.") }},
	{"action is lowercased", `action:AUTH.LOGIN.FAILURE`, func(e audit.Event) bool { return e.Action == audit.ActionLoginFailure }},
	{"suffix", `actor.email:*@example.com`, func(e audit.Event) bool { return strings.HasSuffix(e.Actor.Email, "@example.com") }},
	{"action suffix", `action:*.changed`, func(e audit.Event) bool { return strings.HasSuffix(e.Action, ".changed") }},
	{"contains", `user_agent:*requests*`, func(e audit.Event) bool { return strings.Contains(e.Context.UserAgent, "requests") }},
	{"text is case-sensitive", `user_agent:*REQUESTS*`, func(audit.Event) bool { return false }},
	{"exists", `session:*`, func(e audit.Event) bool { return e.Context.SessionID != "" }},
	{"not exists", `NOT session:*`, func(e audit.Event) bool { return e.Context.SessionID == "" }},
	{"session alias", `session_id:s1`, func(e audit.Event) bool { return e.Context.SessionID == "s1" }},
	{"ip exists", `ip:*`, func(e audit.Event) bool { return e.Context.IP.IsValid() }},
	{"no ip", `-ip:*`, func(e audit.Event) bool { return !e.Context.IP.IsValid() }},
	{"target and type", `target.id:t1 target.type:user`, func(e audit.Event) bool { return e.Target.ID == "t1" && e.Target.Type == "user" }},
	{"outcome", `outcome:failure`, func(e audit.Event) bool { return e.Outcome == audit.OutcomeFailure }},
	{"reason", `reason:invalid_password`, func(e audit.Event) bool { return e.Reason == "invalid_password" }},
	{"actor type", `actor.type:user`, func(e audit.Event) bool { return e.Actor.Type == audit.ActorUser }},
	{"auth method", `auth_method:sso`, func(e audit.Event) bool { return e.Context.AuthMethod == "sso" }},
	{"device", `device_id:d-a05`, func(e audit.Event) bool { return e.ID == "a05" }},
	{"country is uppercased", `geo.country:ru`, func(e audit.Event) bool { return country(e) == "RU" }},
	{"city", `geo.city:Berlin`, func(e audit.Event) bool { return country(e) == "DE" }},
	{"as org prefix", `as_org:"Example*"`, func(e audit.Event) bool { return asn(e) == 64500 }},
	{"ua class", `ua.class:scripted`, func(e audit.Event) bool { return uaClass(e) == audit.UAClassScripted }},
	{"ua browser", `ua.browser:Firefox`, func(e audit.Event) bool {
		return e.Enrichment.UserAgent != nil && e.Enrichment.UserAgent.Browser == "Firefox"
	}},
	{"number equality", `asn:64500`, func(e audit.Event) bool { return asn(e) == 64500 }},
	{"number =", `asn:=64501`, func(e audit.Event) bool { return asn(e) == 64501 }},
	{"number >", `risk.score:>40`, func(e audit.Event) bool { s, ok := riskScore(e); return ok && s > 40 }},
	{"number >=", `risk.score:>=44`, func(e audit.Event) bool { s, ok := riskScore(e); return ok && s >= 44 }},
	{"number <", `risk.score:<20`, func(e audit.Event) bool { s, ok := riskScore(e); return ok && s < 20 }},
	{"number <=", `risk.score:<=20`, func(e audit.Event) bool { s, ok := riskScore(e); return ok && s <= 20 }},
	{"number missing is not < n", `asn:<64501`, func(e audit.Event) bool { return asn(e) != 0 && asn(e) < 64501 }},
	{"ip address", `ip:203.0.113.7`, func(e audit.Event) bool { return e.Context.IP == netip.MustParseAddr("203.0.113.7") }},
	{"ipv4-mapped address", `ip:"::ffff:203.0.113.9"`, func(e audit.Event) bool { return e.Context.IP == netip.MustParseAddr("203.0.113.9") }},
	{"cidr /24", `ip:203.0.113.0/24`, func(e audit.Event) bool { return inPrefix(e, "203.0.113.0/24") }},
	{"cidr /8", `ip:10.0.0.0/8`, func(e audit.Event) bool { return inPrefix(e, "10.0.0.0/8") }},
	{"cidr /0 is ipv4 only", `ip:0.0.0.0/0`, func(e audit.Event) bool { return e.Context.IP.Is4() }},
	{"ipv6 address", `ip:2001:db8::1`, func(e audit.Event) bool { return inPrefix(e, "2001:db8::1/128") }},
	{"ipv6 cidr", `ip:2001:db8::/32`, func(e audit.Event) bool { return inPrefix(e, "2001:db8::/32") }},
	{"not cidr matches missing ip", `NOT ip:203.0.113.0/24`, func(e audit.Event) bool { return !inPrefix(e, "203.0.113.0/24") }},
	{"multi-valued any", `list:datacenter`, func(e audit.Event) bool { return slices.Contains(lists(e), "datacenter") }},
	{"multi-valued second value", `list:tor`, func(e audit.Event) bool { return slices.Contains(lists(e), "tor") }},
	{"multi-valued prefix", `risk.reason:new_*`, func(e audit.Event) bool { return e.Risk != nil }},
	{"risk reason", `risk.reason:new_device`, func(e audit.Event) bool { return e.Risk != nil && slices.Contains(e.Risk.Reasons, "new_device") }},
	{"metadata value", `metadata.factor:totp`, func(e audit.Event) bool { v, _ := metaString(e, "factor"); return v == "totp" }},
	{"metadata number as string", `metadata.count:3`, func(e audit.Event) bool { v, _ := metaString(e, "count"); return v == "3" }},
	{"metadata nested path", `metadata.nested.k:"Deep Value"`, func(e audit.Event) bool { v, _ := metaString(e, "nested", "k"); return v == "Deep Value" }},
	{"metadata exists", `metadata.note:*`, func(e audit.Event) bool { _, ok := metaString(e, "note"); return ok }},
	{"like percent is literal", `metadata.note:*50%*`, func(e audit.Event) bool { _, ok := metaString(e, "note"); return ok }},
	{"like underscore is literal", `metadata.note:*f_s*`, func(e audit.Event) bool { _, ok := metaString(e, "note"); return ok }},
	{"percent matches nothing else", `metadata.note:*5%f*`, func(audit.Event) bool { return false }},
	{"free text user agent", `FIREFOX`, func(e audit.Event) bool { return hasText(e, "firefox") }},
	{"free text nested metadata", `"deep value"`, func(e audit.Event) bool { return hasText(e, "deep value") }},
	{"free text actor", `u3`, func(e audit.Event) bool { return hasText(e, "u3") }},
	{"free text other tenant", `("b-only" OR bob)`, func(audit.Event) bool { return false }},
	{"implicit and", `actor.id:u1 outcome:failure`, func(e audit.Event) bool { return e.Actor.ID == "u1" && e.Outcome == audit.OutcomeFailure }},
	{"explicit and", `actor.id:u1 AND ip:*`, func(e audit.Event) bool { return e.Actor.ID == "u1" && e.Context.IP.IsValid() }},
	{"or across indexed and stored fields", `(actor.id:u4 OR geo.country:DE)`, func(e audit.Event) bool { return e.Actor.ID == "u4" || country(e) == "DE" }},
	{"not of or", `NOT (actor.id:u1 OR actor.id:u2)`, func(e audit.Event) bool { return e.Actor.ID != "u1" && e.Actor.ID != "u2" }},
	{"grouping", `(action:auth.login.failure OR action:auth.logout) -ip:203.0.113.7`,
		func(e audit.Event) bool {
			return (e.Action == audit.ActionLoginFailure || e.Action == audit.ActionLogout) && e.Context.IP != netip.MustParseAddr("203.0.113.7")
		}},
	{"not of a hashed id", `action:auth.login.* -actor.id:u0`, func(e audit.Event) bool { return strings.HasPrefix(e.Action, "auth.login.") && e.Actor.ID != "u0" }},
	{"unknown action", `action:no.such.action`, func(audit.Event) bool { return false }},
	{"other tenant's actor", `actor.id:bob`, func(audit.Event) bool { return false }},
}

// RunQuery runs the query-language suite alone, for a backend (or a test
// store) that offers Events and Query but not the other stores.
func RunQuery(t *testing.T, open func(t *testing.T) Backend) {
	runQuery(t, open)
}

func runQuery(t *testing.T, open func(t *testing.T) Backend) {
	t.Run("Filters", func(t *testing.T) {
		r, evs := queryOf(t, open)
		for _, tc := range filterCases {
			src := "time:>=-48h " + tc.src
			want := eventIDs(within(evs, 48*time.Hour, tc.keep))
			res := runQ(t, r, audit.QueryScope{Tenant: "a"}, src)
			if d := diffStrings(want, eventIDs(res.Events)); d != "" {
				t.Errorf("%s: %s (-want +got):\n%s", tc.name, src, d)
			}
			if len(res.Rows) != len(res.Events) || res.Stats.Rows != int64(len(res.Rows)) || res.Stats.Matched < int64(len(want)) {
				t.Errorf("%s: %d rows, %d events, stats %+v", tc.name, len(res.Rows), len(res.Events), res.Stats)
			}
		}
	})

	// What the store decides natively (filter terms, groupings) must not
	// change an answer: the same queries through a scanner that pushes
	// nothing down, evaluated wholly in Go, give the same rows.
	t.Run("FallbackAgrees", func(t *testing.T) {
		b := open(t)
		sc, ok := b.Events.(audit.EventScanner)
		if b.Query == nil || !ok {
			t.Skip("backend's event store is not an audit.EventScanner")
		}
		a, other := queryData()
		noErr(t, b.Events.InsertEvents(t.Context(), append(slices.Clone(a), other...)))
		slow := query.NewRunner(goScanner{sc}, query.Options{})
		var srcs []string
		for _, tc := range filterCases {
			srcs = append(srcs, "time:>=-48h "+tc.src, "time:>=-48h "+tc.src+" | fields action, ip, actor.id")
		}
		for _, tc := range statsCases {
			srcs = append(srcs, "time:>=-48h "+tc.src)
		}
		for _, scope := range []audit.QueryScope{{Tenant: "a"}, {AllTenants: true}} {
			for _, src := range srcs {
				q := parse(t, src)
				fast, err := b.Query.RunQuery(t.Context(), scope, q)
				noErr(t, err)
				want, err := slow.RunQuery(t.Context(), scope, q)
				noErr(t, err)
				if d := diffStrings(rowsOf(want), rowsOf(fast)); d != "" {
					t.Errorf("%v %s: pushed down and Go answers differ (-go +store):\n%s", scope, src, d)
				}
			}
		}
	})

	t.Run("TimeRange", func(t *testing.T) {
		r, evs := queryOf(t, open)
		for _, tc := range []struct {
			src      string
			from, to time.Duration // hours before now
		}{
			{``, 24 * time.Hour, 0}, // the default range
			{`time:>=-10h`, 10 * time.Hour, 0},
			{`time:>=-30h time:<-10h`, 30 * time.Hour, 10 * time.Hour},
			{`time:>2026-05-02T00:00:00Z time:<=2026-05-03T00:00:00Z`, 36 * time.Hour, 12 * time.Hour},
		} {
			var want []audit.Event
			for _, e := range evs {
				if !e.Time.Before(queryNow.Add(-tc.from)) && e.Time.Before(queryNow.Add(-tc.to)) {
					want = append(want, e)
				}
			}
			newestFirst(want)
			if d := diffStrings(eventIDs(want), eventIDs(runQ(t, r, audit.QueryScope{Tenant: "a"}, tc.src).Events)); d != "" {
				t.Errorf("%q (-want +got):\n%s", tc.src, d)
			}
		}
	})

	t.Run("EventStages", func(t *testing.T) {
		r, evs := queryOf(t, open)
		all := within(evs, 48*time.Hour, func(audit.Event) bool { return true })
		byCountryThenOldest := slices.Clone(all)
		slices.SortStableFunc(byCountryThenOldest, func(x, y audit.Event) int {
			if c := cmp.Compare(country(y), country(x)); c != 0 { // missing sorts first, so last when descending
				return c
			}
			return x.Time.Compare(y.Time)
		})
		byRisk := within(evs, 48*time.Hour, func(e audit.Event) bool { return e.Risk != nil })
		slices.SortStableFunc(byRisk, func(x, y audit.Event) int { return cmp.Compare(y.Risk.Score, x.Risk.Score) })
		for _, tc := range []struct {
			src  string
			want []audit.Event
		}{
			{`| head 3`, all[:3]},
			{`| sort -geo.country, time | head 5`, byCountryThenOldest[:5]},
			{`| sort -geo.country, time`, byCountryThenOldest},
			{`risk.score:* | sort -risk.score`, byRisk},
			{`| head 10 | sort time | head 2`, []audit.Event{all[9], all[8]}},
		} {
			res := runQ(t, r, audit.QueryScope{Tenant: "a"}, "time:>=-48h "+tc.src)
			if d := diffStrings(eventIDs(tc.want), eventIDs(res.Events)); d != "" {
				t.Errorf("%s (-want +got):\n%s", tc.src, d)
			}
		}
		res := runQ(t, r, audit.QueryScope{Tenant: "a"}, `time:>=-48h actor.id:u1 | fields action, ip, list, geo.country`)
		var want []string
		for _, e := range within(evs, 48*time.Hour, func(e audit.Event) bool { return e.Actor.ID == "u1" }) {
			var ip any
			if e.Context.IP.IsValid() {
				ip = e.Context.IP
			}
			want = append(want, fmt.Sprintf("action=%s ip=%s list=%s geo.country=%s", e.Action, cell(ip), cell(nilIfEmpty(lists(e))), cell(nilIfEmptyS(country(e)))))
		}
		if d := diffStrings(want, rowsOf(res)); d != "" {
			t.Errorf("fields (-want +got):\n%s", d)
		}
		if res.Events != nil {
			t.Errorf("a fields stage returned whole events: %d", len(res.Events))
		}
		wantCols := []audit.QueryColumn{{Name: "action", Type: audit.FieldText}, {Name: "ip", Type: audit.FieldIP},
			{Name: "list", Type: audit.FieldText}, {Name: "geo.country", Type: audit.FieldText}}
		if !slices.Equal(res.Columns, wantCols) {
			t.Errorf("columns = %v, want %v", res.Columns, wantCols)
		}
	})

	t.Run("Stats", func(t *testing.T) {
		r, evs := queryOf(t, open)
		all := within(evs, 48*time.Hour, func(audit.Event) bool { return true })
		for _, tc := range statsCases {
			t.Run(tc.name, func(t *testing.T) {
				want := tc.want(all)
				res := runQ(t, r, audit.QueryScope{Tenant: "a"}, "time:>=-48h "+tc.src)
				if d := diffStrings(want, rowsOf(res)); d != "" {
					t.Errorf("%s (-want +got):\n%s", tc.src, d)
				}
				if res.Events != nil {
					t.Errorf("stats returned whole events")
				}
			})
		}
	})

	t.Run("Scopes", func(t *testing.T) {
		r, evs := queryOf(t, open)
		q := parse(t, `action:*`)
		for _, bad := range []audit.QueryScope{{}, {Tenant: "a", AllTenants: true}, {Tenant: "no such tenant!"}} {
			_, err := r.RunQuery(t.Context(), bad, q)
			wantCode(t, err, audit.EINVALID)
			_, err = r.ExportQuery(t.Context(), bad, q, &collect{})
			wantCode(t, err, audit.EINVALID)
		}
		res := runQ(t, r, audit.QueryScope{Tenant: "b"}, `time:>=-48h "b-only"`)
		if got := eventIDs(res.Events); !slices.Equal(got, []string{"b0", "b1", "b2"}) {
			t.Fatalf("tenant b's own search: %v", got)
		}
		// u0 of tenant a and bob of tenant b share 203.0.113.7; across
		// tenants, the same id in two tenants is two accounts.
		res = runQ(t, r, audit.QueryScope{AllTenants: true}, `time:>=-48h ip:203.0.113.7 | stats dc(actor.id) as accounts count()`)
		aOnIP := within(evs, 48*time.Hour, func(e audit.Event) bool { return e.Context.IP == netip.MustParseAddr("203.0.113.7") })
		accounts := map[string]bool{"b/bob": true}
		for _, e := range aOnIP {
			accounts["a/"+e.Actor.ID] = true
		}
		want := fmt.Sprintf("accounts=%d count=%d", len(accounts), len(aOnIP)+1)
		if got := rowsOf(res); !slices.Equal(got, []string{want}) {
			t.Fatalf("all tenants: %v, want %s", got, want)
		}
		res = runQ(t, r, audit.QueryScope{AllTenants: true}, `time:>=-48h ip:203.0.113.0/24 | head 4`)
		if res.Columns[0].Name != "tenant" {
			t.Fatalf("all-tenant columns %v do not start with tenant", res.Columns)
		}
		// b1 is 30 s newer than a01, b0 than a00: newest first across tenants.
		if got := eventIDs(res.Events); !slices.Equal(got, []string{"b0", "a00", "b1", "a01"}) {
			t.Fatalf("all-tenant events are not newest first across tenants: %v", got)
		}
		if got := fmt.Sprint(res.Rows[0][0], "/", res.Rows[1][0]); got != "b/a" {
			t.Fatalf("tenant column = %s", got)
		}
	})

	t.Run("Export", func(t *testing.T) {
		r, _ := queryOf(t, open)
		for _, src := range []string{`time:>=-48h ip:*`, `time:>=-48h | sort asn | head 7 | fields asn, ip`,
			`time:>=-48h | stats count() by action | sort -count`} {
			res := runQ(t, r, audit.QueryScope{Tenant: "a"}, src)
			var c collect
			st, err := r.ExportQuery(t.Context(), audit.QueryScope{Tenant: "a"}, parse(t, src), &c)
			noErr(t, err)
			if !slices.Equal(c.cols, res.Columns) {
				t.Fatalf("%s: export columns %v, run %v", src, c.cols, res.Columns)
			}
			if d := diffStrings(rowsOf(res), rowsOf(&audit.QueryResult{Columns: c.cols, Rows: c.rows})); d != "" {
				t.Errorf("%s: export differs from run (-run +export):\n%s", src, d)
			}
			if st.Rows != int64(len(c.rows)) {
				t.Errorf("%s: export stats %d rows, sent %d", src, st.Rows, len(c.rows))
			}
			if whole := !strings.Contains(src, "|"); whole != (c.events == len(c.rows)) {
				t.Errorf("%s: %d of %d rows came with their event", src, c.events, len(c.rows))
			}
		}
	})

	t.Run("Errors", func(t *testing.T) {
		r, _ := queryOf(t, open)
		a := audit.QueryScope{Tenant: "a"}
		_, err := r.RunQuery(t.Context(), a, nil)
		wantCode(t, err, audit.EINVALID)
		_, err = r.RunQuery(t.Context(), a, &audit.Query{})
		wantCode(t, err, audit.EINVALID)
		_, err = r.RunQuery(t.Context(), a, &audit.Query{Since: queryNow, Until: queryNow.Add(-time.Hour)})
		wantCode(t, err, audit.EINVALID)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := r.RunQuery(ctx, a, parse(t, `time:>=-48h | stats count() by actor.id`)); !isCtxErr(err) {
			t.Fatalf("cancelled query: %v, want the context's error", err)
		}
		if _, err := r.ExportQuery(ctx, a, parse(t, `time:>=-48h`), &collect{}); !isCtxErr(err) {
			t.Fatalf("cancelled export: %v, want the context's error", err)
		}
		var c collect
		c.fail = fmt.Errorf("sink full")
		if _, err := r.ExportQuery(t.Context(), a, parse(t, `time:>=-48h`), &c); err == nil || !strings.Contains(err.Error(), "sink full") {
			t.Fatalf("a sink error did not stop the export: %v", err)
		}
	})

	// The runner's cost limits hold on every backend: the scan and
	// partition limits are enforced by the store (audit.EventScan), the
	// others by the engine.
	t.Run("RunnerLimits", func(t *testing.T) {
		b := open(t)
		sc, ok := b.Events.(audit.EventScanner)
		if !ok {
			t.Skip("backend's event store is not an audit.EventScanner")
		}
		var evs []audit.Event
		for i := range 200 {
			evs = append(evs, audit.Event{ID: fmt.Sprint("e", i), Tenant: "a", Time: queryNow.Add(-time.Duration(i*10+1) * time.Minute),
				Action: audit.ActionLoginFailure, Actor: audit.Actor{ID: fmt.Sprint("u", i)}})
		}
		noErr(t, b.Events.InsertEvents(t.Context(), evs))
		a := audit.QueryScope{Tenant: "a"}
		small := query.NewRunner(sc, query.Options{MaxScanned: 100, MaxDistinct: 50})
		wantLimit := func(r audit.QueryRunner, src, msg string) {
			t.Helper()
			_, err := r.RunQuery(t.Context(), a, parse(t, src))
			wantCode(t, err, audit.EINVALID)
			if !strings.Contains(err.Error(), msg) {
				t.Fatalf("%s: %v, want a message with %q", src, err, msg)
			}
		}
		wantLimit(small, `actor.id:*`, "examined more than 100")
		wantLimit(small, `| stats count() by bin(time, 1h)`, "examined more than 100")
		wantLimit(small, `| head 60 | stats dc(actor.id)`, "distinct")
		wantLimit(query.NewRunner(sc, query.Options{Timeout: time.Nanosecond}), `actor.id:*`, "limit of 1ns")
		var c collect
		st, err := small.ExportQuery(t.Context(), a, parse(t, `actor.id:*`), &c)
		noErr(t, err)
		if len(c.rows) != 144 || st.Scanned < 144 {
			t.Fatalf("an export is not bounded by MaxScanned: %d rows, stats %+v", len(c.rows), st)
		}
		res := runQ(t, query.NewRunner(sc, query.Options{}), a, `time:>=-3d | stats count()`)
		if got := rowsOf(res); !slices.Equal(got, []string{"count=200"}) {
			t.Fatalf("count over three days: %v", got)
		}
		if res.Stats.Partitions > 1 {
			wantLimit(query.NewRunner(sc, query.Options{MaxPartitions: 1}), `time:>=-3d | stats count()`, "partitions")
		}
	})

	t.Run("Limits", func(t *testing.T) {
		b := open(t)
		if b.Query == nil || b.Events == nil {
			t.Skip("backend has no query runner")
		}
		var evs []audit.Event
		for i := range query.MaxGroups + 5 {
			evs = append(evs, audit.Event{ID: fmt.Sprint("e", i), Tenant: "a", Time: queryNow.Add(-time.Duration(i+1) * time.Second),
				Action: audit.ActionLoginFailure, Actor: audit.Actor{ID: fmt.Sprint("u", i)}})
		}
		noErr(t, b.Events.InsertEvents(t.Context(), evs))
		a := audit.QueryScope{Tenant: "a"}
		_, err := b.Query.RunQuery(t.Context(), a, parse(t, `| stats count() by actor.id`))
		wantCode(t, err, audit.EINVALID)
		if !strings.Contains(err.Error(), "groups") {
			t.Fatalf("too many groups: %v", err)
		}
		// A top-N may hold more groups than it returns.
		res := runQ(t, b.Query, a, `| stats count() by actor.id | sort -count, actor.id | head 3`)
		if got := rowsOf(res); !slices.Equal(got, []string{"actor.id=u0 count=1", "actor.id=u1 count=1", "actor.id=u10 count=1"}) {
			t.Fatalf("top-N over %d groups: %v", len(evs), got)
		}
		res = runQ(t, b.Query, a, ``)
		if len(res.Rows) != query.MaxRows || !res.Stats.Truncated || res.Events[0].ID != "e0" {
			t.Fatalf("row cap: %d rows, truncated %v", len(res.Rows), res.Stats.Truncated)
		}
		res = runQ(t, b.Query, a, `| head 10000`)
		if len(res.Rows) != query.MaxRows {
			t.Fatalf("head 10000: %d rows", len(res.Rows))
		}
		res = runQ(t, b.Query, a, `| head 5`)
		if len(res.Rows) != 5 || res.Stats.Truncated {
			t.Fatalf("head 5: %d rows, truncated %v", len(res.Rows), res.Stats.Truncated)
		}
		var c collect
		st, err := b.Query.ExportQuery(t.Context(), a, parse(t, ``), &c)
		noErr(t, err)
		if len(c.rows) != len(evs) || st.Truncated {
			t.Fatalf("an export is not capped at MaxRows: %d of %d rows, truncated %v", len(c.rows), len(evs), st.Truncated)
		}
	})
}

func nilIfEmpty(s []string) any {
	if len(s) == 0 {
		return nil
	}
	return s
}

func nilIfEmptyS(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// collect is a QuerySink that keeps what it is sent.
type collect struct {
	cols   []audit.QueryColumn
	rows   [][]any
	events int
	fail   error
}

func (c *collect) Columns(cols []audit.QueryColumn) error {
	c.cols = slices.Clone(cols)
	return nil
}

func (c *collect) Row(vals []any, ev *audit.Event) error {
	if c.fail != nil {
		return c.fail
	}
	c.rows = append(c.rows, slices.Clone(vals))
	if ev != nil {
		c.events++
	}
	return nil
}

func diffStrings(want, got []string) string {
	if want == nil {
		want = []string{}
	}
	if got == nil {
		got = []string{}
	}
	if slices.Equal(want, got) {
		return ""
	}
	return fmt.Sprintf("- %q\n+ %q", want, got)
}

// group is one group of an expected stats table.
type group struct {
	keys []any
	evs  []audit.Event
}

// groupBy groups evs by the key values key returns (nil for a missing
// value), in the stats stage's default order: by the keys, missing first.
func groupBy(evs []audit.Event, key func(e audit.Event) []any) []group {
	index := map[string]int{}
	var out []group
	for _, e := range evs {
		k := key(e)
		s := fmt.Sprint(k...)
		i, ok := index[s]
		if !ok {
			i = len(out)
			index[s] = i
			out = append(out, group{keys: k})
		}
		out[i].evs = append(out[i].evs, e)
	}
	slices.SortFunc(out, func(x, y group) int {
		for i := range x.keys {
			if c := compareKey(x.keys[i], y.keys[i]); c != 0 {
				return c
			}
		}
		return 0
	})
	return out
}

func compareKey(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	switch x := a.(type) {
	case string:
		return strings.Compare(x, b.(string))
	case int:
		return cmp.Compare(x, b.(int))
	case time.Time:
		return x.Compare(b.(time.Time))
	case netip.Addr:
		return x.Compare(b.(netip.Addr))
	}
	panic(fmt.Sprintf("key type %T", a))
}

func optIP(e audit.Event) any {
	if !e.Context.IP.IsValid() {
		return nil
	}
	return e.Context.IP
}

func optStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func optASN(e audit.Event) any {
	if asn(e) == 0 {
		return nil
	}
	return asn(e)
}

func optScore(e audit.Event) any {
	if s, ok := riskScore(e); ok {
		return s
	}
	return nil
}

// binOf is the start of the epoch-aligned bucket of width w holding t.
func binOf(t time.Time, w time.Duration) time.Time {
	ns := t.UnixNano()
	return time.Unix(0, ns-ns%int64(w)).UTC()
}

func distinct(evs []audit.Event, v func(e audit.Event) any) int {
	seen := map[any]bool{}
	for _, e := range evs {
		if x := v(e); x != nil {
			seen[x] = true
		}
	}
	return len(seen)
}

// extreme is the smallest (max=false) or largest value of v over evs,
// nil when no event has one.
func extreme(evs []audit.Event, v func(e audit.Event) any, max bool) any {
	var best any
	for _, e := range evs {
		x := v(e)
		if x == nil {
			continue
		}
		if c := compareKey(x, best); best == nil || (max && c > 0) || (!max && c < 0) {
			best = x
		}
	}
	return best
}

func eventTime(e audit.Event) any { return e.Time }

// line renders name=value pairs like rowsOf.
func line(kv ...any) string {
	parts := make([]string, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		parts = append(parts, fmt.Sprint(kv[i])+"="+cell(kv[i+1]))
	}
	return strings.Join(parts, " ")
}

func only(evs []audit.Event, keep func(e audit.Event) bool) []audit.Event {
	var out []audit.Event
	for _, e := range evs {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// statsCases are stats pipelines over tenant a's last 48 hours (all,
// newest first), each with its answer computed in Go.
var statsCases = []struct {
	name string
	src  string
	want func(all []audit.Event) []string
}{
	{"count", `| stats count()`, func(all []audit.Event) []string { return []string{line("count", len(all))} }},
	{"count over nothing is one zero row", `action:no.such.action | stats count() dc(ip) min(time)`,
		func([]audit.Event) []string { return []string{"count=0 dc_ip=0 min_time=-"} }},
	{"count and dc by ip, missing first", `| stats count() dc(actor.id) as accounts by ip | sort -count, ip`,
		func(all []audit.Event) []string {
			gs := groupBy(all, func(e audit.Event) []any { return []any{optIP(e)} })
			slices.SortStableFunc(gs, func(x, y group) int { return cmp.Compare(len(y.evs), len(x.evs)) })
			var out []string
			for _, g := range gs {
				out = append(out, line("ip", g.keys[0], "count", len(g.evs), "accounts", distinct(g.evs, func(e audit.Event) any { return e.Actor.ID })))
			}
			return out
		}},
	{"hourly histogram", `action:auth.login.failure | stats count() min(time) max(time) by bin(time, 1h)`,
		func(all []audit.Event) []string {
			var out []string
			for _, g := range groupBy(only(all, func(e audit.Event) bool { return e.Action == audit.ActionLoginFailure }),
				func(e audit.Event) []any { return []any{binOf(e.Time, time.Hour)} }) {
				out = append(out, line("time", g.keys[0], "count", len(g.evs), "min_time", extreme(g.evs, eventTime, false), "max_time", extreme(g.evs, eventTime, true)))
			}
			return out
		}},
	{"daily buckets by outcome", `| stats count() by bin(time, 1d), outcome`,
		func(all []audit.Event) []string {
			var out []string
			for _, g := range groupBy(all, func(e audit.Event) []any { return []any{binOf(e.Time, 24*time.Hour), optStr(string(e.Outcome))} }) {
				out = append(out, line("time", g.keys[0], "outcome", g.keys[1], "count", len(g.evs)))
			}
			return out
		}},
	{"newest ten-minute buckets", `| stats count() by bin(time, 10m) | sort -time | head 3`,
		func(all []audit.Event) []string {
			gs := groupBy(all, func(e audit.Event) []any { return []any{binOf(e.Time, 10*time.Minute)} })
			slices.Reverse(gs)
			var out []string
			for _, g := range gs[:3] {
				out = append(out, line("time", g.keys[0], "count", len(g.evs)))
			}
			return out
		}},
	{"min and max by country", `| stats min(asn) max(asn) max(risk.score) min(time) by geo.country`,
		func(all []audit.Event) []string {
			var out []string
			for _, g := range groupBy(all, func(e audit.Event) []any { return []any{optStr(country(e))} }) {
				out = append(out, line("geo.country", g.keys[0], "min_asn", extreme(g.evs, optASN, false), "max_asn", extreme(g.evs, optASN, true),
					"max_risk_score", extreme(g.evs, optScore, true), "min_time", extreme(g.evs, eventTime, false)))
			}
			return out
		}},
	{"distinct counts by actor", `| stats dc(ip) as ips dc(session) count() by actor.id`,
		func(all []audit.Event) []string {
			var out []string
			for _, g := range groupBy(all, func(e audit.Event) []any { return []any{e.Actor.ID} }) {
				out = append(out, line("actor.id", g.keys[0], "ips", distinct(g.evs, optIP), "dc_session",
					distinct(g.evs, func(e audit.Event) any { return optStr(e.Context.SessionID) }), "count", len(g.evs)))
			}
			return out
		}},
	{"two keys, sort, head, fields", `| stats count() by action, geo.country | sort -count, action, geo.country | head 4 | fields action, count`,
		func(all []audit.Event) []string {
			gs := groupBy(all, func(e audit.Event) []any { return []any{e.Action, optStr(country(e))} })
			slices.SortStableFunc(gs, func(x, y group) int { return cmp.Compare(len(y.evs), len(x.evs)) })
			var out []string
			for _, g := range gs[:4] {
				out = append(out, line("action", g.keys[0], "count", len(g.evs)))
			}
			return out
		}},
	{"metadata key", `| stats count() by metadata.factor`,
		func(all []audit.Event) []string {
			var out []string
			for _, g := range groupBy(all, func(e audit.Event) []any { v, _ := metaString(e, "factor"); return []any{optStr(v)} }) {
				out = append(out, line("metadata.factor", g.keys[0], "count", len(g.evs)))
			}
			return out
		}},
	{"cidr or cidr by ip", `(ip:203.0.113.0/24 OR ip:10.0.0.0/8) | stats count() max(time) by ip`,
		func(all []audit.Event) []string {
			var out []string
			for _, g := range groupBy(only(all, func(e audit.Event) bool { return inPrefix(e, "203.0.113.0/24") || inPrefix(e, "10.0.0.0/8") }),
				func(e audit.Event) []any { return []any{optIP(e)} }) {
				out = append(out, line("ip", g.keys[0], "count", len(g.evs), "max_time", extreme(g.evs, eventTime, true)))
			}
			return out
		}},
	{"no session by action", `NOT session:* | stats count() by action`,
		func(all []audit.Event) []string {
			var out []string
			for _, g := range groupBy(only(all, func(e audit.Event) bool { return e.Context.SessionID == "" }),
				func(e audit.Event) []any { return []any{e.Action} }) {
				out = append(out, line("action", g.keys[0], "count", len(g.evs)))
			}
			return out
		}},
	{"head before stats", `| head 5 | stats count() dc(actor.id)`,
		func(all []audit.Event) []string {
			return []string{line("count", 5, "dc_actor_id", distinct(all[:5], func(e audit.Event) any { return e.Actor.ID }))}
		}},
	{"sort and head before stats", `| sort actor.id | head 6 | stats dc(actor.id) as n`,
		func(all []audit.Event) []string {
			s := slices.Clone(all)
			slices.SortStableFunc(s, func(x, y audit.Event) int { return strings.Compare(x.Actor.ID, y.Actor.ID) })
			return []string{line("n", distinct(s[:6], func(e audit.Event) any { return e.Actor.ID }))}
		}},
	{"renamed aggregates sorted", `action:auth.login.* | stats count() as n dc(ip) as ips by actor.id | sort -n, -ips, actor.id | head 3`,
		func(all []audit.Event) []string {
			gs := groupBy(only(all, func(e audit.Event) bool { return strings.HasPrefix(e.Action, "auth.login.") }),
				func(e audit.Event) []any { return []any{e.Actor.ID} })
			slices.SortStableFunc(gs, func(x, y group) int {
				if c := cmp.Compare(len(y.evs), len(x.evs)); c != 0 {
					return c
				}
				return cmp.Compare(distinct(y.evs, optIP), distinct(x.evs, optIP))
			})
			var out []string
			for _, g := range gs[:3] {
				out = append(out, line("actor.id", g.keys[0], "n", len(g.evs), "ips", distinct(g.evs, optIP)))
			}
			return out
		}},
}

// goScanner is the pure-Go fallback over a store: it asks the store for
// every event of the scope and range (no filter, no limit, whole events,
// no grouping) and filters, orders and limits them itself.
type goScanner struct {
	s audit.EventScanner
}

func (g goScanner) ScanEvents(ctx context.Context, es audit.EventScan, fn func(row *audit.EventRow) (bool, error)) (audit.ScanStats, error) {
	match := es.Match
	all := es
	all.Filter, all.Match, all.Fields, all.Limit, all.Ordered = nil, nil, nil, 0, false
	var evs []audit.Event
	st, err := g.s.ScanEvents(ctx, all, func(row *audit.EventRow) (bool, error) {
		ev := row.Own()
		if match == nil || match(&audit.EventRow{Event: ev}) {
			evs = append(evs, ev)
		}
		return false, nil
	})
	if err != nil {
		return st, err
	}
	st.Matched = int64(len(evs))
	if es.Ordered {
		slices.SortFunc(evs, func(x, y audit.Event) int {
			if c := y.Time.Compare(x.Time); c != 0 {
				return c
			}
			if c := strings.Compare(y.ID, x.ID); c != 0 {
				return c
			}
			return strings.Compare(y.Tenant, x.Tenant)
		})
	}
	for i := range evs {
		if stop, err := fn(&audit.EventRow{Event: evs[i]}); stop || err != nil {
			return st, err
		}
	}
	return st, nil
}
