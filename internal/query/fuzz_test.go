package query_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/query"
)

// FuzzParse checks the parser's invariants on arbitrary input: it never
// panics; a rejection is an invalid *audit.Error whose message carries a
// column; an accepted query is bounded by the limits and round-trips
// through String to an equal plan whose String is a fixed point.
func FuzzParse(f *testing.F) {
	for _, tc := range goodQueries {
		f.Add(tc.in)
	}
	for _, tc := range badQueries {
		f.Add(tc.in)
	}
	f.Add(`actor.id:"x' OR 1=1 --" | stats count() by bin(time, 1m) | sort -time | fields time, count`)
	f.Add(strings.Repeat("(", 100) + "a")
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 8<<10 {
			t.Skip() // beyond the source limit everything is one rejection
		}
		q, err := query.Parse(src, now)
		if err != nil {
			var ae *audit.Error
			if !errors.As(err, &ae) || ae.Code != audit.EINVALID {
				t.Fatalf("Parse(%q) error %v (%T), want an invalid *audit.Error", src, err, err)
			}
			if !strings.Contains(ae.Message, "column ") {
				t.Fatalf("Parse(%q) error %q has no column", src, ae.Message)
			}
			return
		}
		if !q.Since.Before(q.Until) || q.Until.Sub(q.Since) > query.MaxRange {
			t.Fatalf("Parse(%q) time range [%s, %s) out of bounds", src, q.Since, q.Until)
		}
		for _, s := range q.Stages {
			if h, ok := s.(*audit.HeadStage); ok && (h.N < 1 || h.N > query.MaxRows) {
				t.Fatalf("Parse(%q) head %d out of bounds", src, h.N)
			}
		}
		canon := q.String()
		q2, err := query.Parse(canon, now.Add(time.Hour))
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its String %q fails: %v", src, canon, err)
		}
		if diff := planDiff(q, q2); diff != "" {
			t.Fatalf("round trip of %q via %q (-first +second):\n%s", src, canon, diff)
		}
		if again := q2.String(); again != canon {
			t.Fatalf("String not a fixed point for %q:\n %s\n %s", src, canon, again)
		}
	})
}
