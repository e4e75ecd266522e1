package query_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/query"
)

// TestInjection feeds hostile input. Each case is either rejected with a
// positioned error or accepted with the hostile text carried only as a
// literal value, never as structure.
func TestInjection(t *testing.T) {
	t.Parallel()
	literal := []struct{ name, in, field, text string }{
		{"sql quote", `actor.id:"x' OR 1=1 --"`, "actor.id", "x' OR 1=1 --"},
		{"sql comment", `actor.id:"/\* \*/"`, "actor.id", "/* */"},
		{"statement", `actor.email:"a@b.c'; DROP TABLE events; --"`, "actor.email", "a@b.c'; DROP TABLE events; --"},
		{"like metacharacters", `reason:"100%_x"`, "reason", "100%_x"},
		{"double quote escape", `actor.id:"\" OR \"1\"=\"1"`, "actor.id", `" OR "1"="1`},
		{"backslash", `actor.id:"a\\b"`, "actor.id", `a\b`},
		{"json path chars in value", `metadata.k:"$.a[0]"`, "metadata.k", "$.a[0]"},
		{"unicode value", `geo.city:"Москва"`, "geo.city", "Москва"},
		{"right-to-left override", "actor.id:\"a\u202eb\"", "actor.id", "a\u202eb"},
	}
	for _, tc := range literal {
		t.Run(tc.name, func(t *testing.T) {
			q := mustRoundTrip(t, tc.in)
			c, ok := q.Filter.(*audit.CompareExpr)
			if !ok || c.Field != tc.field || c.Op != audit.OpEq || c.Value.Text != tc.text {
				t.Fatalf("Parse(%q).Filter = %#v, want %s = %q", tc.in, q.Filter, tc.field, tc.text)
			}
		})
	}
	rejected := []struct{ name, in, want string }{
		{"bare comment", `/* */`, "wildcards are not supported in free text at column 1"},
		{"bare quote", `actor.id:x' OR 1=1 --`, "unexpected end of query at column 22 (expected a term after -)"},
		{"quoted comment as pattern", `actor.id:"/* */"`, "wildcard '*' is only allowed at the start or end of a value at column 12"},
		{"semicolon field", `actor.id;DROP:x`, `unknown field "actor.id;DROP"`},
		{"json path field", `metadata.$.a:x`, `invalid metadata key "$.a"`},
		{"quote in metadata key", `metadata.a'b:x`, `invalid metadata key "a'b"`},
		{"NUL byte", "actor.id:a\x00b", "control character U+0000 at column 11"},
		{"NUL in string", "\"a\x00\"", "control character U+0000 at column 3"},
		{"escape char", "a\x1b[31m", "control character U+001B at column 2"},
		{"invalid utf-8", "actor.id:\xff", "invalid UTF-8 at column 10"},
		{"cyrillic i in field", "actor.\u0456d:x", `unknown field "actor.іd" at column 1 (did you mean actor.id?)`},
		{"zero-width space in field", "actor\u200b.id:x", `unknown field`},
		{"fullwidth digits", "asn:\uff16\uff14\uff15", "asn takes an integer"},
		{"confusable stage", "| st\u0430ts count()", `unknown stage "stаts" at column 3 (did you mean stats?)`},
		{"pipe in value", `actor.id:a|b`, `unknown stage "b" at column 12`},
		{"union in sort", `| sort time; DELETE`, `unknown field "time;"`},
		{"sql in as", `| stats count() as "n; DROP"`, `invalid output name`},
		{"sql in bin", `| stats count() by bin(time, 1); DROP)`, `invalid bucket width`},
	}
	for _, tc := range rejected {
		t.Run(tc.name, func(t *testing.T) {
			checkRejected(t, tc.in, tc.want)
		})
	}
	// Look-alike punctuation is not punctuation: it reads as free text, a
	// literal substring, which is harmless.
	harmless := []struct{ name, in string }{
		{"fullwidth colon", "actor.id\uff1ax"},
		{"fullwidth parens", "\uff08a OR b\uff09"},
		{"fullwidth quote", "\uff02a\uff02"},
	}
	for _, tc := range harmless {
		t.Run(tc.name, func(t *testing.T) {
			q := mustRoundTrip(t, tc.in)
			if strings.ContainsAny(q.String(), "\uff08\uff09") && !strings.Contains(q.String(), `"`) {
				t.Errorf("look-alike parentheses printed bare: %s", q)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	t.Run("1 MiB input", func(t *testing.T) {
		checkRejected(t, strings.Repeat("a ", 1<<19), "query exceeds the limit of 32768 bytes at column 32769")
	})
	t.Run("10000 nested parentheses", func(t *testing.T) {
		src := strings.Repeat("(", 10000) + "a" + strings.Repeat(")", 10000)
		checkRejected(t, src, "query nests parentheses and NOT deeper than 66 levels at column 67")
	})
	t.Run("10000 unclosed parentheses", func(t *testing.T) {
		checkRejected(t, strings.Repeat("(", 10000), "deeper than 66 levels")
	})
	t.Run("5000 NOTs", func(t *testing.T) {
		checkRejected(t, strings.Repeat("NOT ", 5000)+"a", "deeper than 66 levels")
	})
	t.Run("10000 minus signs", func(t *testing.T) {
		checkRejected(t, strings.Repeat("-", 10000)+"a", "deeper than 66 levels")
	})
	t.Run("tree depth at the limit", func(t *testing.T) {
		mustRoundTrip(t, strings.Repeat("NOT ", query.MaxDepth)+"a")
		// OR inside AND inside NOT, repeatedly: each level costs a
		// parenthesis in the canonical form too.
		src := "a"
		for range query.MaxDepth / 3 {
			src = "NOT ((" + src + " OR b) c)"
		}
		mustRoundTrip(t, "x OR "+src)
	})
	t.Run("tree depth over the limit", func(t *testing.T) {
		checkRejected(t, strings.Repeat("NOT ", query.MaxDepth+1)+"a", "filter is nested deeper than 32 levels at column 1")
	})
	t.Run("terms", func(t *testing.T) {
		mustRoundTrip(t, strings.Repeat("a ", query.MaxTerms))
		checkRejected(t, strings.Repeat("a ", query.MaxTerms+1), "query has more than 256 terms at column 513")
	})
	t.Run("value length", func(t *testing.T) {
		mustRoundTrip(t, "actor.id:"+strings.Repeat("x", query.MaxValueBytes))
		checkRejected(t, "actor.id:"+strings.Repeat("x", query.MaxValueBytes+1), "value longer than 1024 bytes at column 10")
	})
	t.Run("stages", func(t *testing.T) {
		mustRoundTrip(t, strings.Repeat("| head 1 ", query.MaxStages))
		checkRejected(t, strings.Repeat("| head 1 ", query.MaxStages+1), "query has more than 16 stages at column 145")
	})
	t.Run("aggregates", func(t *testing.T) {
		aggs := func(n int) string {
			var b strings.Builder
			b.WriteString("| stats")
			for i := range n {
				b.WriteString(" count() as c" + strconv.Itoa(i))
			}
			return b.String()
		}
		mustRoundTrip(t, aggs(query.MaxAggs))
		checkRejected(t, aggs(query.MaxAggs+1), "stats has more than 16 aggregates")
	})
	t.Run("group keys", func(t *testing.T) {
		by := "action, outcome, reason, actor.id, actor.type, actor.email, target.id, target.type"
		mustRoundTrip(t, "| stats count() by "+by)
		checkRejected(t, "| stats count() by "+by+", ip", "stats has more than 8 group keys")
	})
	t.Run("buckets", func(t *testing.T) {
		// 24h05m of default range: 9s buckets fit, 8s ones do not.
		mustRoundTrip(t, "| stats count() by bin(time, 9s)")
		checkRejected(t, "| stats count() by bin(time, 8s)", "makes 10838 buckets")
		mustRoundTrip(t, "time:>=-400d time:<now | stats count() by bin(time, 1h)")
		checkRejected(t, "time:>=-400d time:<now | stats count() by bin(time, 1m)", "more than the limit of 10000")
	})
	t.Run("time range", func(t *testing.T) {
		mustRoundTrip(t, "time:>=-400d time:<now")
		checkRejected(t, "time:>=-400d time:<=now", "exceeds the limit of 400 days")
		checkRejected(t, "time:<2000-01-01 time:>=2000-01-01", "empty time range")
	})
	t.Run("head", func(t *testing.T) {
		mustRoundTrip(t, "| head "+strconv.Itoa(query.MaxRows))
		checkRejected(t, "| head 99999999999999999999", "head takes a number of rows from 1 to 10000")
	})
}

func TestFields(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, f := range query.Fields() {
		if seen[f.Name] {
			t.Errorf("field %s listed twice", f.Name)
		}
		seen[f.Name] = true
		if f.Doc == "" || f.Path == "" {
			t.Errorf("field %s lacks Doc or Path", f.Name)
		}
		if f.Aggregatable && f.Type != audit.FieldNumber && f.Type != audit.FieldTime {
			t.Errorf("field %s is aggregatable but of type %s", f.Name, f.Type)
		}
		if f.Type == audit.FieldNumber && f.Min >= f.Max {
			t.Errorf("number field %s has range [%d, %d]", f.Name, f.Min, f.Max)
		}
		g, ok := query.LookupField(f.Name)
		if !ok || g.Name != f.Name {
			t.Errorf("LookupField(%q) = %v, %v", f.Name, g, ok)
		}
		if f.Type == audit.FieldTime {
			continue
		}
		// Every field supports exists, and groupable ones work in stats.
		mustRoundTrip(t, f.Name+":*")
		if f.Groupable {
			mustRoundTrip(t, "| stats dc("+f.Name+") by "+f.Name)
		}
		if f.Sortable {
			mustRoundTrip(t, "| sort -"+f.Name)
		}
	}
	for _, name := range []string{"time", "action", "outcome", "reason", "actor.id", "actor.type", "actor.email", "target.id",
		"target.type", "ip", "session", "user_agent", "auth_method", "device_id", "geo.country", "geo.city", "asn", "as_org",
		"list", "ua.class", "ua.browser", "risk.score"} {
		if !seen[name] {
			t.Errorf("field %s missing from Fields()", name)
		}
	}
	fs := query.Fields()
	fs[0].Name = "changed"
	if query.Fields()[0].Name == "changed" {
		t.Error("Fields() returns the package's own slice")
	}
	if f, ok := query.LookupField("metadata.factor"); !ok || f.Type != audit.FieldText || !f.Groupable || f.Aggregatable {
		t.Errorf("LookupField(metadata.factor) = %+v, %v", f, ok)
	}
	if f, ok := query.LookupField("context.session_id"); !ok || f.Name != "session" {
		t.Errorf("LookupField(context.session_id) = %+v, %v", f, ok)
	}
}
