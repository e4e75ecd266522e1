package query_test

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/query"
)

// now is the fixed request time of every test.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// defaultRange is how String prints the default time range at now.
const defaultRange = "time:>=2026-02-28T12:00:00Z time:<2026-03-01T12:05:00Z"

var cmpOpts = cmp.Options{cmpopts.EquateComparable(netip.Prefix{})}

// goodQueries maps accepted sources to their canonical form without the
// leading time range, unless the canonical form starts with "time:". It
// also seeds the fuzz target.
var goodQueries = []struct{ in, want string }{
	// The spec's example and the field filters.
	{`action:auth.login.failure ip:203.0.113.0/24 | stats count() dc(actor.id) by ip | sort -count | head 20`,
		`action:auth.login.failure ip:203.0.113.0/24 | stats count() dc(actor.id) by ip | sort -count | head 20`},
	{`action:auth.login.* geo.country:RU actor.id:u_42 outcome:failure`,
		`action:auth.login.* geo.country:RU actor.id:u_42 outcome:failure`},
	{``, ``},
	{`   `, ``},
	// Boolean structure: implicit AND, precedence, flattening, negation.
	{`a b c`, `a b c`},
	{`a AND b and c`, `a b c`},
	{`a OR b c`, `(a OR b c)`},
	{`(a OR b) c`, `(a OR b) c`},
	{`a (b c)`, `a b c`},
	{`((a))`, `a`},
	{`a OR (b OR c)`, `(a OR b OR c)`},
	{`NOT a`, `NOT a`},
	{`not a`, `NOT a`},
	{`-a`, `NOT a`},
	{`-outcome:failure`, `NOT outcome:failure`},
	{`NOT (a OR b)`, `NOT (a OR b)`},
	{`-(a b)`, `NOT (a b)`},
	{`NOT NOT a`, `NOT NOT a`},
	{`NOT a OR b`, `(NOT a OR b)`},
	{`a OR NOT (b c) OR d`, `(a OR NOT (b c) OR d)`},
	// Free text and quoting.
	{`"hello world"`, `"hello world"`},
	{`"and"`, `"and"`},
	{`"OR"`, `"OR"`},
	{`"-x"`, `"-x"`},
	{`"a:b"`, `"a:b"`},
	{`"say \"hi\""`, `"say \"hi\""`},
	{`"back\\slash"`, `"back\\slash"`},
	{`"/* */"`, `"/\* \*/"`},
	{`"50%_off"`, `"50%_off"`},
	{`Zürich`, `Zürich`},
	{`"tab	inside"`, `"tab	inside"`},
	// Wildcards on text fields.
	{`actor.email:*@example.com`, `actor.email:*@example.com`},
	{`user_agent:*python-requests*`, `user_agent:*python-requests*`},
	{`user_agent:"*Headless Chrome*"`, `user_agent:"*Headless Chrome*"`},
	{`actor.id:\*star`, `actor.id:"\*star"`},
	{`actor.id:"a\*b"`, `actor.id:"a\*b"`},
	{`device_id:*`, `device_id:*`},
	{`NOT device_id:*`, `NOT device_id:*`},
	{`action:AUTH.LOGIN.SUCCESS`, `action:auth.login.success`},
	{`action:auth.*`, `action:auth.*`},
	{`geo.country:ru`, `geo.country:RU`},
	{`geo.city:"São Paulo"`, `geo.city:"São Paulo"`},
	{`actor.id:"x' OR 1=1 --"`, `actor.id:"x' OR 1=1 --"`},
	{`metadata.factor:totp`, `metadata.factor:totp`},
	{`metadata.new_role:admin metadata.a.b-c:1`, `metadata.new_role:admin metadata.a.b-c:1`},
	{`reason:">weird"`, `reason:">weird"`},
	{`list:tor ua.class:scripted ua.browser:curl`, `list:tor ua.class:scripted ua.browser:curl`},
	{`actor.type:api_key target.type:user target.id:k_1 auth_method:sso as_org:"Example Hosting"`,
		`actor.type:api_key target.type:user target.id:k_1 auth_method:sso as_org:"Example Hosting"`},
	// Aliases resolve to canonical names.
	{`context.session_id:s1 session_id:s2 context.ip:10.0.0.1`, `session:s1 session:s2 ip:10.0.0.1`},
	// Numbers.
	{`asn:64500`, `asn:64500`},
	{`asn:=64500`, `asn:64500`},
	{`asn:"64500"`, `asn:64500`},
	{`asn:>=64500 asn:<64600 risk.score:>70 risk.score:<=100`, `asn:>=64500 asn:<64600 risk.score:>70 risk.score:<=100`},
	{`asn:*`, `asn:*`},
	// IP addresses and prefixes.
	{`ip:203.0.113.7`, `ip:203.0.113.7`},
	{`ip:203.0.113.7/32`, `ip:203.0.113.7`},
	{`ip:::ffff:203.0.113.7`, `ip:203.0.113.7`},
	{`ip:::ffff:203.0.113.0/120`, `ip:203.0.113.0/24`},
	{`ip:2001:db8::/32`, `ip:2001:db8::/32`},
	{`ip:"2001:db8::1"`, `ip:2001:db8::1`},
	{`ip:*`, `ip:*`},
	// Time ranges: relative, absolute, defaults, intersection, exclusivity.
	{`time:>=-1h`, `time:>=2026-03-01T11:00:00Z time:<2026-03-01T12:05:00Z`},
	{`time:>-15m action:auth.logout`, `time:>=2026-03-01T11:45:00.000000001Z time:<2026-03-01T12:05:00Z action:auth.logout`},
	{`time:>=-7d time:<now`, `time:>=2026-02-22T12:00:00Z time:<2026-03-01T12:00:00Z`},
	{`time:>=-2w`, `time:>=2026-02-15T12:00:00Z time:<2026-03-01T12:05:00Z`},
	{`time:>=2026-01-01 time:<=2026-01-02T00:00:00Z`, `time:>=2026-01-01T00:00:00Z time:<2026-01-02T00:00:00.000000001Z`},
	{`time:<2026-01-02T01:00:00+01:00`, `time:>=2026-01-01T00:00:00Z time:<2026-01-02T00:00:00Z`},
	{`time:>=-30d time:>=-1d time:<now time:<-1h`, `time:>=2026-02-28T12:00:00Z time:<2026-03-01T11:00:00Z`},
	{`(time:>=-1h a) b`, `time:>=2026-03-01T11:00:00Z time:<2026-03-01T12:05:00Z a b`},
	// Stages.
	{`| stats count()`, `| stats count()`},
	{`| stats count() as n, dc(ip) as ips by actor.id | sort -n, ips | head 5`,
		`| stats count() as n dc(ip) as ips by actor.id | sort -n, ips | head 5`},
	{`| stats count() as count`, `| stats count()`},
	{`| STATS COUNT() BY geo.country`, `| stats count() by geo.country`},
	{`| stats min(time) max(time) max(risk.score) by actor.id`, `| stats min(time) max(time) max(risk.score) by actor.id`},
	{`| stats count() by bin(time, 300s), outcome | sort time`, `| stats count() by bin(time, 5m), outcome | sort time`},
	{`| stats count() by bin(time, 60m)`, `| stats count() by bin(time, 1h)`},
	{`| stats dc(metadata.factor) by metadata.factor`, `| stats dc(metadata.factor) by metadata.factor`},
	{`| stats dc(context.ip) by context.session_id`, `| stats dc(ip) by session`},
	{`| sort -time +actor.id`, `| sort -time, actor.id`},
	{`| fields time, action actor.id | sort -time | head 100`, `| fields time, action, actor.id | sort -time | head 100`},
	{`| head 10000`, `| head 10000`},
	{`| head 10 | head 5`, `| head 10 | head 5`},
	{`| fields ip, actor.id | stats count() by ip`, `| fields ip, actor.id | stats count() by ip`},
	{`| stats count() by ip | fields count | sort -count`, `| stats count() by ip | fields count | sort -count`},
	// Multi-line and unicode whitespace.
	{"action:auth.login.failure\n| stats count()\tby ip", `action:auth.login.failure | stats count() by ip`},
	{"a\u00a0b", `a b`},
}

func TestParseCanonical(t *testing.T) {
	t.Parallel()
	for _, tc := range goodQueries {
		t.Run(tc.in, func(t *testing.T) {
			q := mustRoundTrip(t, tc.in)
			want := tc.want
			if !strings.HasPrefix(want, "time:") {
				want = strings.TrimSpace(defaultRange + " " + want)
			}
			if got := q.String(); got != want {
				t.Errorf("String()\n got %s\nwant %s", got, want)
			}
		})
	}
}

// mustRoundTrip parses src, prints it, parses the print at a different
// time and checks that both plans are equal.
func mustRoundTrip(t *testing.T, src string) *audit.Query {
	t.Helper()
	q, err := query.Parse(src, now)
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	q2, err := query.Parse(q.String(), now.Add(90*time.Minute))
	if err != nil {
		t.Fatalf("Parse(String()) of %q = %q: %v", src, q.String(), err)
	}
	if diff := planDiff(q, q2); diff != "" {
		t.Fatalf("round trip of %q via %q (-first +second):\n%s", src, q.String(), diff)
	}
	return q
}

// planDiff returns the difference between two plans, "" when equal. It
// tries reflect.DeepEqual first because cmp is slow on deep NOT chains.
func planDiff(a, b *audit.Query) string {
	if reflect.DeepEqual(a, b) {
		return ""
	}
	return cmp.Diff(a, b, cmpOpts)
}

func TestParsePlan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want *audit.Query
	}{{
		name: "spec example",
		in:   `action:auth.login.failure ip:203.0.113.0/24 | stats count() dc(actor.id) by ip | sort -count | head 20`,
		want: &audit.Query{
			Since: now.Add(-24 * time.Hour),
			Until: now.Add(5 * time.Minute),
			Filter: &audit.AndExpr{Terms: []audit.Expr{
				&audit.CompareExpr{Field: "action", Op: audit.OpEq, Value: audit.QueryValue{Type: audit.FieldText, Text: "auth.login.failure"}},
				&audit.CompareExpr{Field: "ip", Op: audit.OpIn, Value: audit.QueryValue{Type: audit.FieldIP, Prefix: netip.MustParsePrefix("203.0.113.0/24")}},
			}},
			Stages: []audit.Stage{
				&audit.StatsStage{
					Aggs: []audit.Agg{{Func: audit.AggCount, As: "count"}, {Func: audit.AggDC, Field: "actor.id", As: "dc_actor_id"}},
					By:   []audit.GroupKey{{Field: "ip"}},
				},
				&audit.SortStage{Keys: []audit.SortKey{{Name: "count", Desc: true}}},
				&audit.HeadStage{N: 20},
			},
		},
	}, {
		name: "operators and precedence",
		in:   `time:>=-1h (action:auth.* OR "needle") -asn:>=64500 user_agent:*curl* | stats count() by bin(time, 5m)`,
		want: &audit.Query{
			Since: now.Add(-time.Hour),
			Until: now.Add(5 * time.Minute),
			Filter: &audit.AndExpr{Terms: []audit.Expr{
				&audit.OrExpr{Terms: []audit.Expr{
					&audit.CompareExpr{Field: "action", Op: audit.OpPrefix, Value: audit.QueryValue{Type: audit.FieldText, Text: "auth."}},
					&audit.TextExpr{Text: "needle"},
				}},
				&audit.NotExpr{Term: &audit.CompareExpr{Field: "asn", Op: audit.OpGe, Value: audit.QueryValue{Type: audit.FieldNumber, Int: 64500}}},
				&audit.CompareExpr{Field: "user_agent", Op: audit.OpContains, Value: audit.QueryValue{Type: audit.FieldText, Text: "curl"}},
			}},
			Stages: []audit.Stage{&audit.StatsStage{
				Aggs: []audit.Agg{{Func: audit.AggCount, As: "count"}},
				By:   []audit.GroupKey{{Field: "time", Bin: 5 * time.Minute}},
			}},
		},
	}, {
		name: "exists, suffix and ipv6",
		in:   `actor.email:*@example.com ip:2001:db8::1 device_id:*`,
		want: &audit.Query{
			Since: now.Add(-24 * time.Hour),
			Until: now.Add(5 * time.Minute),
			Filter: &audit.AndExpr{Terms: []audit.Expr{
				&audit.CompareExpr{Field: "actor.email", Op: audit.OpSuffix, Value: audit.QueryValue{Type: audit.FieldText, Text: "@example.com"}},
				&audit.CompareExpr{Field: "ip", Op: audit.OpIn, Value: audit.QueryValue{Type: audit.FieldIP, Prefix: netip.MustParsePrefix("2001:db8::1/128")}},
				&audit.CompareExpr{Field: "device_id", Op: audit.OpExists, Value: audit.QueryValue{Type: audit.FieldText}},
			}},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mustRoundTrip(t, tc.in)
			if diff := cmp.Diff(tc.want, got, cmpOpts); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

// badQueries maps rejected sources to a substring of the error message. It
// also seeds the fuzz target.
var badQueries = []struct{ in, want string }{
	{`actor.id:u_42 (a OR b))`, `unexpected ')' at column 23`},
	{`(actor.id:u_42 outcome:failure`, `unexpected end of query at column 31 (expected ')' to close the '(' at column 1)`},
	{`acter.id:u_42`, `unknown field "acter.id" at column 1 (did you mean actor.id?)`},
	{`a OR`, `unexpected end of query at column 5 (expected a term after OR)`},
	{`a AND | head 1`, `unexpected '|' at column 7 (expected a term after AND)`},
	{`NOT`, `expected a term after NOT`},
	{`- a`, `'-' must be followed directly by the term it negates at column 1`},
	{`()`, `empty parentheses at column 1`},
	{`a, b`, `unexpected ',' at column 2`},
	{`"unterminated`, `unterminated string starting at column 1`},
	{`abc\`, `dangling backslash at column 4`},
	{`actor.id:\n`, `unknown escape \n at column 10`},
	{`:x`, `missing field name before ':' at column 1`},
	{`actor.id: x`, `missing value after "actor.id:" at column 10`},
	{`actor.id:""`, `empty value for actor.id at column 11 (use NOT actor.id:* to find events without it)`},
	{`actor.id:**`, `empty pattern for actor.id`},
	{`actor.id:a*b`, `wildcard '*' is only allowed at the start or end of a value at column 11`},
	{`admin*`, `wildcards are not supported in free text at column 1`},
	{`actor.id:>5`, `comparison > is only for number and time fields`},
	{`outcome:fail`, `outcome must be one of success, failure, not "fail" at column 9`},
	{`actor.type:robot`, `actor.type must be one of user, api_key, service, anonymous`},
	{`ua.class:bot`, `ua.class must be one of`},
	{`action:Auth`, `invalid action "auth" at column 8`},
	{`geo.country:Russia`, `invalid country "RUSSIA" at column 13`},
	{`asn:abc`, `asn takes an integer, not "abc" at column 5`},
	{`asn:>=x`, `asn takes an integer, not "x" at column 7`},
	{`asn:-1`, `asn must be between 0 and 4294967295, not -1`},
	{`asn:4294967296`, `asn must be between 0 and 4294967295`},
	{`risk.score:>101`, `risk.score must be between 0 and 100, not 101 at column 13`},
	{`asn:645*`, `wildcards are not supported for number field asn`},
	{`ip:203.0.113.*`, `wildcards are not supported for ip at column 4 (use CIDR notation like 203.0.113.0/24)`},
	{`ip:203.0.113.7/24`, `CIDR prefix 203.0.113.7/24 has host bits set at column 4 (did you mean 203.0.113.0/24?)`},
	{`ip:300.1.1.1`, `invalid IP address "300.1.1.1" at column 4`},
	{`ip:fe80::1%eth0`, `invalid IP address`},
	{`ip:10.0.0.0/33`, `invalid CIDR prefix "10.0.0.0/33"`},
	{`metadata:x`, `metadata needs a key at column 1`},
	{`metadata.a..b:x`, `invalid metadata key "a..b" at column 1`},
	{`metadata.$where:x`, `invalid metadata key "$where"`},
	{`time:-1h`, `time needs a comparison: >, >=, < or <= at column 6`},
	{`time:"2026-01-01"`, `time needs a comparison`},
	{`time:>=yesterday`, `invalid time "yesterday" at column 8`},
	{`time:>=-5y`, `invalid time "-5y"`},
	{`time:<=0000-01-01`, `invalid time "0000-01-01" at column 8`},
	{`time:>=1999-12-31T23:59:59Z`, `invalid time`},
	{`time:<9999-01-01`, `invalid time`},
	{`time:>=-99999999999999d`, `invalid time`},
	{`time:>=-1h OR a`, `time can only be compared at the top level, not inside OR or NOT at column 1`},
	{`a NOT time:<-1h`, `time can only be compared at the top level, not inside OR or NOT at column 7`},
	{`time:>=-1h time:<-2h`, `empty time range: 2026-03-01T11:00:00Z is not before 2026-03-01T10:00:00Z at column 12`},
	{`time:>=2020-01-01`, `time range of 2251.5 days exceeds the limit of 400 days at column 1`},
	{`| stats`, `stats needs at least one aggregate at column 8`},
	{`| stats by ip`, `stats needs at least one aggregate at column 9`},
	{`| stats avg(risk.score)`, `unknown aggregate "avg" at column 9`},
	{`| stats count(ip)`, `count() takes no field at column 15`},
	{`| stats dc()`, `unexpected ')' at column 12 (expected a field for dc())`},
	{`| stats min(actor.id)`, `min() cannot be applied to actor.id at column 13`},
	{`| stats dc(time)`, `dc() cannot count distinct values of time`},
	{`| stats dc(list)`, `dc() cannot count distinct values of list`},
	{`| stats count() by time`, `cannot group by raw time at column 20 (group by time buckets with bin(time, 5m))`},
	{`| stats count() by list`, `cannot group by list`},
	{`| stats count() by bin(ip, 5m)`, `bin() only buckets time, not ip at column 24`},
	{`| stats count() by bin(time, 0s)`, `invalid bucket width "0s" at column 30`},
	{`| stats count() by bin(time, 500ms)`, `invalid bucket width "500ms"`},
	{`| stats count() by bin(time, 1s)`, `bin(time, 1s) makes 86700 buckets over the time range, more than the limit of 10000 at column 30 (use a width of at least 9s or a shorter time range)`},
	{`| stats count() as by`, `invalid output name "by"`},
	{`| stats count() as 1x`, `invalid output name "1x"`},
	{`| stats count() count()`, `duplicate output column "count" at column 17`},
	{`| stats count() as ip by ip`, `duplicate output column "ip"`},
	{`| stats count() by ip, ip`, `duplicate output column "ip" at column 24`},
	{`| stats count() | stats count()`, `only one stats stage is allowed at column 19`},
	{`| stats count() by ip | sort -actor.id`, `unknown column "actor.id" at column 31 (columns here: ip, count)`},
	{`| stats count() by ip | sort -cuont`, `unknown column "cuont" at column 31 (did you mean count?)`},
	{`| sort -risk`, `unknown field "risk" at column 9`},
	{`| sort list`, `cannot sort by list at column 8`},
	{`| sort ip, ip`, `duplicate sort key "ip"`},
	{`| sort - ip`, `'-' must be followed directly by the column name`},
	{`| fields ip | sort actor.id`, `actor.id was removed by an earlier fields stage at column 20`},
	{`| fields ip, ip`, `duplicate column "ip"`},
	{`| head 0`, `head takes a number of rows from 1 to 10000, not "0" at column 8`},
	{`| head 10001`, `head takes a number of rows from 1 to 10000, not "10001"`},
	{`| head -1`, `head takes a number of rows from 1 to 10000, not '-'`},
	{`| head`, `not end of query`},
	{`| haed 5`, `unknown stage "haed" at column 3 (did you mean head?)`},
	{`| where x`, `unknown stage "where" at column 3 (stages are stats, sort, head, fields)`},
	{`| head 5 6`, `unexpected "6" at column 10 (expected '|' or the end of the query)`},
	{`|`, `unexpected end of query at column 2 (expected a stage: stats, sort, head, fields)`},
	{"a\nb )", `unexpected ')' at line 2, column 3`},
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range badQueries {
		t.Run(tc.in, func(t *testing.T) {
			checkRejected(t, tc.in, tc.want)
		})
	}
}

// checkRejected asserts that src is rejected with an invalid *audit.Error
// whose message contains want and a column.
func checkRejected(t *testing.T, src, want string) {
	t.Helper()
	q, err := query.Parse(src, now)
	if err == nil {
		t.Fatalf("Parse(%.60q) = %s, want error containing %q", src, q, want)
	}
	var ae *audit.Error
	if !errors.As(err, &ae) || ae.Code != audit.EINVALID {
		t.Fatalf("Parse(%.60q) error %v (%T), want *audit.Error with code invalid", src, err, err)
	}
	if !strings.Contains(ae.Message, want) {
		t.Errorf("Parse(%.60q) error\n got %s\nwant substring %s", src, ae.Message, want)
	}
	if !strings.Contains(ae.Message, "column ") {
		t.Errorf("Parse(%.60q) error %q has no column", src, ae.Message)
	}
}
