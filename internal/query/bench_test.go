package query_test

import (
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/query"
)

func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct{ name, src string }{
		{"spec", `action:auth.login.failure ip:203.0.113.0/24 | stats count() dc(actor.id) by ip | sort -count | head 20`},
		{"hunt", `time:>=-7d (action:auth.mfa.removed OR (action:auth.login.success risk.reason:new_country)) NOT ip:10.0.0.0/8 ` +
			`user_agent:*python* -geo.country:US | stats dc(action) as kinds dc(geo.country) as countries min(time) by actor.id, bin(time, 1h) ` +
			`| sort -kinds, -countries | head 50`},
		// Near the source limit: 250 comparisons of 110-byte values (30 KiB).
		{"max", strings.Repeat("actor.id:"+strings.Repeat("x", 110)+" ", 250)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.src)))
			for b.Loop() {
				if _, err := query.Parse(bc.src, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkString(b *testing.B) {
	q, err := query.Parse(`action:auth.login.failure ip:203.0.113.0/24 | stats count() dc(actor.id) by ip | sort -count | head 20`, now)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = q.String()
	}
}
