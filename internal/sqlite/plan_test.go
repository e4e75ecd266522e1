package sqlite

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// TestQueryPlans pins the plan of every search shape: the chosen index is
// used for the search (never a full scan of events), and only a CIDR range
// sorts. Other engines and SQLite versions picked far worse plans for the
// CIDR query, so the plans are asserted, not assumed.
func TestQueryPlans(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(map[bool]string{false: "bucketed", true: "legacy"}[legacy], func(t *testing.T) { testQueryPlans(t, legacy) })
	}
}

// testQueryPlans pins the plans of a partition with time-bucketed indexes
// (layout.go), or of one written by an earlier version (legacy). A
// bucketed index is searched bucket by bucket, newest first, so even a
// CIDR range sorts only within each bucket.
func testQueryPlans(t *testing.T, legacy bool) {
	ctx := t.Context()
	db, err := Open(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.Events().legacyLayout = legacy
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	ev := audit.Event{ID: "1", Tenant: "a", Time: at, Action: audit.ActionLoginFailure,
		Actor: audit.Actor{ID: "alice"}, Target: audit.Target{ID: "bob"},
		Context: audit.Context{IP: netip.MustParseAddr("203.0.113.7"), SessionID: "s"}}
	ev2 := ev
	ev2.ID, ev2.Action = "2", audit.ActionLoginSuccess
	if err := db.Events().InsertEvents(ctx, []audit.Event{ev, ev2}); err != nil {
		t.Fatal(err)
	}
	p, err := db.Events().acquire(ctx, db.Events().partitionsNewestFirst(0, 0)[0], false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Events().release(p)
	if got := p.bucketNs != 0; got == legacy {
		t.Fatalf("bucketed = %v in a partition created with legacy = %v", got, legacy)
	}
	cur := &cursor{ns: at.UnixNano(), id: "9"}
	tests := []struct {
		name   string
		f      audit.EventFilter
		index  string
		sorted bool
	}{
		{"timeline", audit.EventFilter{}, "ev_time", false},
		{"actor", audit.EventFilter{ActorID: "alice", Action: "auth.*", IP: netip.MustParsePrefix("203.0.113.0/24")}, "ev_actor", false},
		{"session", audit.EventFilter{SessionID: "s"}, "ev_sess", false},
		{"target", audit.EventFilter{TargetID: "bob"}, "ev_tgt", false},
		{"ip", audit.EventFilter{IP: netip.MustParsePrefix("203.0.113.7/32")}, "ev_ip", false},
		{"cidr", audit.EventFilter{IP: netip.MustParsePrefix("203.0.113.0/24")}, "ev_ip", true},
		{"action", audit.EventFilter{Action: audit.ActionLoginFailure, Since: at.Add(-time.Hour)}, "ev_act", false},
		{"action prefix", audit.EventFilter{Action: "auth.*"}, "ev_time", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			f.Tenant = "a"
			pl, ok := p.compile(&f, "a", mustID(t, p, "a"), cur)
			if !ok {
				t.Fatal("nothing to search")
			}
			detail := explain(t, ctx, p, pl)
			if !strings.Contains(detail, "USING INDEX "+tc.index) && !strings.Contains(detail, "USING COVERING INDEX "+tc.index) {
				t.Fatalf("plan does not use %s:\n%s", tc.index, detail)
			}
			if strings.Contains(detail, "SCAN events\n") || strings.HasSuffix(detail, "SCAN events") {
				t.Fatalf("plan scans the table:\n%s", detail)
			}
			if p.bucketed(tc.index) != strings.Contains(detail, "(<expr>=?") {
				t.Fatalf("a bucketed index must be searched bucket by bucket (and only one):\n%s", detail)
			}
			fullSort := strings.Contains(detail, "TEMP B-TREE FOR ORDER BY")
			// Sorting within each bucket: SQLite says "RIGHT PART OF" or
			// "LAST 2 TERMS OF" ORDER BY, by version.
			partSort := strings.Contains(detail, "TEMP B-TREE FOR RIGHT PART OF ORDER BY") ||
				strings.Contains(detail, "TEMP B-TREE FOR LAST 2 TERMS OF ORDER BY")
			bucketSort := partSort && p.bucketed(tc.index) && tc.sorted
			if got := fullSort || bucketSort; got != tc.sorted {
				t.Fatalf("sorting = %v, want %v:\n%s", got, tc.sorted, detail)
			}
			if p.bucketed(tc.index) && fullSort {
				t.Fatalf("a bucketed search sorts all its rows:\n%s", detail)
			}
		})
	}
}

func mustID(t *testing.T, p *partition, s string) int64 {
	t.Helper()
	id, ok := p.id(s)
	if !ok {
		t.Fatalf("%q not in dictionary", s)
	}
	return id
}

func explain(t *testing.T, ctx context.Context, p *partition, pl plan) string {
	t.Helper()
	rows, err := p.f.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+pl.sql(), pl.args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	return strings.Join(lines, "\n")
}
