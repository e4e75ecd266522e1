package sqlite_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/query"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// qNow is the "now" of every query in these tests.
var qNow = time.Date(2026, 5, 3, 12, 0, 0, 0, time.UTC)

// fixture stores a small, hand-checkable log of two tenants.
func fixture(t testing.TB) *query.Runner {
	t.Helper()
	db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	at := func(h float64) time.Time { return qNow.Add(-time.Duration(h * float64(time.Hour))) }
	ip := netip.MustParseAddr
	geo := func(c string) audit.Enrichment {
		return audit.Enrichment{Geo: &audit.Geo{Country: c, City: c + "-city"}, Network: &audit.Network{ASN: 64500, Lists: []string{"tor"}}}
	}
	var evs []audit.Event
	add := func(tenant, id string, h float64, action, actor, ipS, country string, meta map[string]any) {
		e := audit.Event{ID: id, Tenant: tenant, Time: at(h), Action: action, Actor: audit.Actor{ID: actor}, Metadata: meta}
		e.Context.DeviceID = id // a queryable copy of the id, for fields
		if ipS != "" {
			e.Context.IP = ip(ipS)
		}
		if country != "" {
			e.Enrichment = geo(country)
		}
		e.Normalize(qNow)
		evs = append(evs, e)
	}
	// Tenant a: a stuffing IP failing on four accounts, two successes, a
	// change after a login, an MFA removal; across two days.
	add("a", "a1", 1.0, audit.ActionLoginFailure, "u1", "203.0.113.7", "RU", nil)
	add("a", "a2", 1.1, audit.ActionLoginFailure, "u2", "203.0.113.7", "RU", nil)
	add("a", "a3", 1.2, audit.ActionLoginFailure, "u3", "203.0.113.7", "RU", nil)
	add("a", "a4", 1.3, audit.ActionLoginFailure, "u3", "203.0.113.7", "RU", nil)
	add("a", "a5", 1.4, audit.ActionLoginFailure, "u4", "203.0.113.9", "RU", nil)
	add("a", "a6", 2.0, audit.ActionLoginSuccess, "u1", "198.51.100.1", "DE", nil)
	add("a", "a7", 1.9, audit.ActionEmailChanged, "u1", "198.51.100.1", "DE", map[string]any{"new": "x@evil.test", "note": "50% off_sale"})
	add("a", "a8", 30, audit.ActionLoginSuccess, "u2", "2001:db8::1", "FR", nil)
	add("a", "a9", 29, audit.ActionMFARemoved, "u2", "", "", map[string]any{"factor": "totp"})
	// Tenant b: must never show up in a's results.
	add("b", "b1", 1.0, audit.ActionLoginFailure, "u1", "203.0.113.7", "RU", map[string]any{"secret": "b-only"})
	add("b", "b2", 1.5, audit.ActionLoginSuccess, "bob", "203.0.113.7", "RU", nil)
	if err := db.Events().InsertEvents(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	return query.NewRunner(db.Events(), query.Options{})
}

func run(t *testing.T, qr *query.Runner, scope audit.QueryScope, src string) (*audit.QueryResult, error) {
	t.Helper()
	q, err := query.Parse(src, qNow)
	if err != nil {
		t.Fatalf("parse %q: %v", src, err)
	}
	return qr.RunQuery(t.Context(), scope, q)
}

// table renders a result as "col=val col=val" lines for comparison.
func table(res *audit.QueryResult) []string {
	var out []string
	for _, row := range res.Rows {
		var parts []string
		for i, c := range res.Columns {
			v := row[i]
			s := fmt.Sprint(v)
			switch x := v.(type) {
			case nil:
				s = "-"
			case time.Time:
				s = x.Format(time.RFC3339)
			}
			parts = append(parts, c.Name+"="+s)
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out
}

func TestQueryResults(t *testing.T) {
	qr := fixture(t)
	a := audit.QueryScope{Tenant: "a"}
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"stuffing per ip", `action:auth.login.failure | stats count() dc(actor.id) as accounts by ip | sort -accounts`,
			[]string{"ip=203.0.113.7 count=4 accounts=3", "ip=203.0.113.9 count=1 accounts=1"}},
		{"events newest first with fields", `actor.id:u1 | fields action, ip`,
			[]string{"action=auth.login.failure ip=203.0.113.7", "action=user.email.changed ip=198.51.100.1", "action=auth.login.success ip=198.51.100.1"}},
		{"cidr and head", `ip:203.0.113.0/24 | head 2 | fields device_id`, []string{"device_id=a1", "device_id=a2"}},
		{"not matches missing field", `time:>=-48h NOT ip:* | fields device_id`, []string{"device_id=a9"}},
		{"not ip excludes only that ip", `action:auth.login.failure NOT ip:203.0.113.7 | fields device_id`, []string{"device_id=a5"}},
		{"or across indexed and body fields", `actor.id:u4 OR geo.country:DE | fields device_id`, []string{"device_id=a5", "device_id=a7", "device_id=a6"}},
		{"free text in metadata, case-insensitive", `"X@EVIL" | fields device_id`, []string{"device_id=a7"}},
		{"like metacharacters are literal", `metadata.note:*50%* | fields device_id`, []string{"device_id=a7"}},
		{"underscore is literal", `metadata.note:*f_s* | fields device_id`, []string{"device_id=a7"}},
		{"percent does not match anything", `metadata.note:*5%f* | fields device_id`, nil},
		{"count over nothing is one zero row", `action:user.role.changed | stats count()`, []string{"count=0"}},
		{"hourly histogram (SQL path)", `action:auth.login.failure | stats count() min(time) by bin(time, 1h)`,
			[]string{"time=2026-05-03T10:00:00Z count=4 min_time=2026-05-03T10:36:00Z", "time=2026-05-03T11:00:00Z count=1 min_time=2026-05-03T11:00:00Z"}},
		{"action prefix groups", `time:>=-48h action:auth.* | stats count() by action | sort -count`,
			[]string{"action=auth.login.failure count=5", "action=auth.login.success count=2", "action=auth.mfa.removed count=1"}},
		{"multi-valued list field", `time:>=-48h list:tor geo.country:FR | fields device_id, list`, []string{"device_id=a8 list=[tor]"}},
		{"group by missing value", `time:>=-48h actor.id:u2 | stats count() by geo.country`,
			[]string{"geo.country=- count=1", "geo.country=FR count=1", "geo.country=RU count=1"}},
		{"sort before stats with head", `action:auth.login.failure | sort actor.id | head 2 | stats dc(actor.id) as n`, []string{"n=2"}},
		{"max of number", `time:>=-48h | stats max(asn) count() by outcome | sort outcome`,
			[]string{"outcome=- max_asn=64500 count=2", "outcome=failure max_asn=64500 count=5", "outcome=success max_asn=64500 count=2"}},
		{"sort events by a body field", `time:>=-48h actor.id:* | sort -geo.country, device_id | head 3 | fields device_id, geo.country`,
			[]string{"device_id=a1 geo.country=RU", "device_id=a2 geo.country=RU", "device_id=a3 geo.country=RU"}},
		{"tenant b's actor is invisible", `actor.id:bob`, nil},
		{"unknown action matches nothing", `action:no.such.action`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := run(t, qr, a, tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, table(res)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.src, diff)
			}
			for _, e := range res.Events {
				if e.Tenant != "a" {
					t.Fatalf("tenant a's query returned %+v", e)
				}
			}
		})
	}
}

func TestQueryScope(t *testing.T) {
	qr := fixture(t)
	if _, err := run(t, qr, audit.QueryScope{}, `action:*`); audit.ErrorCode(err) != audit.EINVALID {
		t.Fatalf("unscoped query: %v, want EINVALID", err)
	}
	if _, err := run(t, qr, audit.QueryScope{Tenant: "a", AllTenants: true}, `action:*`); audit.ErrorCode(err) != audit.EINVALID {
		t.Fatalf("both scopes: %v, want EINVALID", err)
	}
	res, err := run(t, qr, audit.QueryScope{AllTenants: true}, `ip:203.0.113.7 | stats dc(actor.id) as accounts count()`)
	if err != nil {
		t.Fatal(err)
	}
	// u1 of tenant a and u1 of tenant b are two accounts: u1-u3 of a, u1 and bob of b.
	if got := table(res); !cmp.Equal(got, []string{"accounts=5 count=6"}) {
		t.Fatalf("all tenants: %v", got)
	}
	res, err = run(t, qr, audit.QueryScope{AllTenants: true}, `ip:203.0.113.7 | head 3`)
	if err != nil {
		t.Fatal(err)
	}
	if res.Columns[0].Name != "tenant" || len(res.Events) != 3 || res.Events[0].ID != "b1" || res.Events[1].ID != "a1" {
		t.Fatalf("all-tenant events are not newest first across tenants: %v", table(res))
	}
	res, err = run(t, qr, audit.QueryScope{Tenant: "b"}, `"b-only"`)
	if err != nil || len(res.Rows) != 1 {
		t.Fatalf("tenant b's own search: %v %v", res, err)
	}
	res, err = run(t, qr, audit.QueryScope{Tenant: "a"}, `"b-only" OR bob OR actor.id:bob`)
	if err != nil || len(res.Rows) != 0 {
		t.Fatalf("tenant a found b's data: %v %v", table(res), err)
	}
}

// TestQueryInjection runs hostile values through the whole path: they are
// bound parameters, so they match nothing and break nothing.
func TestQueryInjection(t *testing.T) {
	qr := fixture(t)
	for _, src := range []string{
		`actor.id:"u1' OR '1'='1"`,
		`actor.id:"u1\" OR 1=1 --"`,
		`"'; DROP TABLE events; --"`,
		`metadata.note:"\*/ UNION SELECT \* FROM dict /\*"`,
		`action:auth.login.failure actor.id:"\\'); DELETE FROM events; --"`,
		`user_agent:"%" OR reason:"_"`,
		"geo.city:\"Zürich\u202e\" OR actor.id:\"ｕ１\"",
		`session:"` + strings.Repeat("x", 1000) + `"`,
	} {
		res, err := run(t, qr, audit.QueryScope{Tenant: "a"}, src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if len(res.Rows) != 0 {
			t.Fatalf("%s matched %v", src, table(res))
		}
	}
	res, err := run(t, qr, audit.QueryScope{Tenant: "a"}, `time:>=-48h | stats count()`)
	if err != nil || table(res)[0] != "count=9" {
		t.Fatalf("the store changed: %v %v", table(res), err)
	}
}

func TestQueryLimits(t *testing.T) {
	db := openDB(t, sqlite.Options{})
	var evs []audit.Event
	for i := range query.MaxGroups + 5 {
		evs = append(evs, audit.Event{ID: fmt.Sprint("e", i), Tenant: "a", Time: qNow.Add(-time.Duration(i) * time.Second),
			Action: audit.ActionLoginFailure, Actor: audit.Actor{ID: fmt.Sprint("u", i)}})
	}
	evs = append(evs, audit.Event{ID: "old", Tenant: "a", Time: qNow.Add(-50 * time.Hour), Action: audit.ActionLogout})
	if err := db.Events().InsertEvents(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	a := audit.QueryScope{Tenant: "a"}
	qr := query.NewRunner(db.Events(), query.Options{})
	if _, err := run(t, qr, a, `| stats count() by actor.id`); audit.ErrorCode(err) != audit.EINVALID || !strings.Contains(err.Error(), "groups") {
		t.Fatalf("too many groups: %v", err)
	}
	res, err := run(t, qr, a, ``)
	if err != nil || len(res.Rows) != query.MaxRows || !res.Stats.Truncated {
		t.Fatalf("row cap: %d rows, truncated %v, %v", len(res.Rows), res.Stats.Truncated, err)
	}
	small := query.NewRunner(db.Events(), query.Options{MaxScanned: 100, MaxDistinct: 50, MaxPartitions: 1})
	if _, err := run(t, small, a, `actor.id:*`); audit.ErrorCode(err) != audit.EINVALID || !strings.Contains(err.Error(), "examined more than 100") {
		t.Fatalf("scan limit: %v", err)
	}
	if _, err := run(t, small, a, `| head 60 | stats dc(actor.id)`); audit.ErrorCode(err) != audit.EINVALID || !strings.Contains(err.Error(), "distinct") {
		t.Fatalf("distinct limit: %v", err)
	}
	if _, err := run(t, small, a, `time:>=-3d`); audit.ErrorCode(err) != audit.EINVALID || !strings.Contains(err.Error(), "partitions") {
		t.Fatalf("partition limit: %v", err)
	}
	slow := query.NewRunner(db.Events(), query.Options{Timeout: time.Nanosecond})
	if _, err := run(t, slow, a, `actor.id:*`); audit.ErrorCode(err) != audit.EINVALID || !strings.Contains(err.Error(), "limit of 1ns") {
		t.Fatalf("time limit: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	q, _ := query.Parse(`actor.id:*`, qNow)
	if _, err := qr.RunQuery(ctx, a, q); err == nil || audit.ErrorCode(err) == audit.EINVALID {
		t.Fatalf("cancelled query: %v, want the context's error", err)
	}
}

// TestQueryPushdownAgrees runs aggregations both inside SQLite and in Go
// (a free-text term that matches everything forces the Go path) on a
// generated log and requires the same tables.
func TestQueryPushdownAgrees(t *testing.T) {
	db := openDB(t, sqlite.Options{})
	g := newGen(5)
	start := qNow.Add(-72 * time.Hour)
	var evs []audit.Event
	for i := range 6000 {
		evs = append(evs, g.event(start.Add(time.Duration(i)*43*time.Second)))
	}
	if err := db.Events().InsertEvents(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	qr := query.NewRunner(db.Events(), query.Options{})
	for _, scope := range []audit.QueryScope{{Tenant: "tenant-3"}, {AllTenants: true}} {
		for _, src := range []string{
			`time:>=-72h action:auth.login.failure %s | stats count() min(time) max(time) by bin(time, 1h)`,
			`time:>=-72h ip:11.0.0.0/8 %s | stats count() by action, ip | sort -count | head 50`,
			`time:>=-72h (action:auth.logout OR NOT action:auth.*) %s | stats count()`,
			`time:>=-72h NOT session:* %s | stats count() by action`,
		} {
			fast, err := run(t, qr, scope, fmt.Sprintf(src, ""))
			if err != nil {
				t.Fatal(err)
			}
			slow, err := run(t, qr, scope, fmt.Sprintf(src, `(NOT "zz-never-there" OR action:*)`))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(table(fast), table(slow)); diff != "" {
				t.Errorf("%v %s: SQL and Go aggregation differ (-sql +go):\n%s", scope, src, diff)
			}
			if fast.Stats.Matched == 0 {
				t.Errorf("%s matched nothing", src)
			}
		}
	}
}

// csvSink writes rows as CSV, like an export does.
type csvSink struct {
	w    *csv.Writer
	rec  []string
	rows int
	tick func(int)
}

func (s *csvSink) Columns(cols []audit.QueryColumn) error {
	s.rec = make([]string, len(cols))
	for i, c := range cols {
		s.rec[i] = c.Name
	}
	return s.w.Write(s.rec)
}

func (s *csvSink) Row(vals []any, _ *audit.Event) error {
	for i, v := range vals {
		s.rec[i] = fmt.Sprint(v)
	}
	s.rows++
	if s.tick != nil {
		s.tick(s.rows)
	}
	return s.w.Write(s.rec)
}

// TestExportConstantMemory exports 200k events and checks that the live
// heap does not grow with the rows exported: it is sampled (after a GC)
// every 20k rows, and the last sample may exceed the first by at most
// 4 MiB. (Holding the rows would take over 100 MiB.)
func TestExportConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 200k events")
	}
	const n = 200_000
	db := openDB(t, sqlite.Options{})
	g := newGen(11)
	start := qNow.Add(-5 * 24 * time.Hour)
	batch := make([]audit.Event, 0, 5000)
	for i := range n {
		e := g.event(start.Add(time.Duration(i) * 2 * time.Second))
		e.Tenant = "t"
		batch = append(batch, e)
		if len(batch) == cap(batch) {
			if err := db.Events().InsertEvents(t.Context(), batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	q, err := query.Parse(`time:>=-6d`, qNow)
	if err != nil {
		t.Fatal(err)
	}
	var samples []uint64
	sample := func() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		samples = append(samples, ms.HeapAlloc)
	}
	sink := &csvSink{w: csv.NewWriter(io.Discard), tick: func(rows int) {
		if rows%20_000 == 0 {
			sample()
		}
	}}
	st, err := query.NewRunner(db.Events(), query.Options{}).ExportQuery(t.Context(), audit.QueryScope{Tenant: "t"}, q, sink)
	if err != nil {
		t.Fatal(err)
	}
	if sink.rows != n || st.Rows != n {
		t.Fatalf("exported %d rows (stats %d), want %d", sink.rows, st.Rows, n)
	}
	first, last := samples[0], samples[len(samples)-1]
	t.Logf("live heap every 20k rows (MiB): %v", mib(samples))
	if last > first+4<<20 {
		t.Fatalf("live heap grew from %.1f to %.1f MiB over the export", float64(first)/(1<<20), float64(last)/(1<<20))
	}
}

func mib(xs []uint64) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf("%.1f", float64(x)/(1<<20))
	}
	return out
}

// FuzzRunQuery runs arbitrary query text against the fixture: a query that
// parses either runs or fails with EINVALID (a limit), never with another
// error, and tenant a's results never hold tenant b's events.
func FuzzRunQuery(f *testing.F) {
	for _, s := range []string{`action:auth.*`, `actor.id:"x' OR 1=1"`, `| stats dc(actor.id) by ip | sort -dc_actor_id | head 3`,
		`time:>=-48h NOT ip:* OR "free text"`, `time:>=-2h (a OR b) -c`, `metadata.note:*%*`, `ip:203.0.113.0/24 | sort -time | head 2`,
		`| stats count() min(time) max(asn) by bin(time, 1h), action`, `list:tor OR risk.reason:new_country | fields list`} {
		f.Add(s)
	}
	qr := fixture(f)
	f.Fuzz(func(t *testing.T, src string) {
		q, err := query.Parse(src, qNow)
		if err != nil {
			return
		}
		res, err := qr.RunQuery(t.Context(), audit.QueryScope{Tenant: "a"}, q)
		if err != nil {
			if audit.ErrorCode(err) != audit.EINVALID {
				t.Fatalf("%q: %v", src, err)
			}
			return
		}
		if len(res.Rows) > query.MaxRows {
			t.Fatalf("%q: %d rows", src, len(res.Rows))
		}
		for _, e := range res.Events {
			if e.Tenant != "a" {
				t.Fatalf("%q returned tenant %s's event", src, e.Tenant)
			}
		}
	})
}
