package httpapi

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/ingest"
)

// TestLimiterStateIsBounded: many keys and many small appends do not grow
// the limiter's memory past its bounds, and the backlog count stays exact
// when segments merge.
func TestLimiterStateIsBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var committed uint64
	l, err := NewLimiter(LimiterOptions{
		KeyRequestRate: 1, KeyRequestBurst: 1, MaxTracked: 100,
		Tenant:    TenantLimits{RequestRate: 1, RequestBurst: 1, BacklogShare: 1_000_000},
		Committed: func(context.Context, string) (uint64, error) { return committed, nil },
		Now:       func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10_000 {
		p := audit.Principal{KeyID: fmt.Sprintf("k%d", i), Tenant: fmt.Sprintf("t%d", i)}
		if err := l.Request(p); err != nil {
			t.Fatalf("first request of a new key: %v", err)
		}
	}
	if n, m := len(l.keyReq.m), len(l.tenantReq.m); n > 100 || m > 100 {
		t.Fatalf("%d key buckets and %d tenant buckets kept, bound 100", n, m)
	}

	counts := map[string]int{"acme": 3}
	for i := range 1000 {
		if err := l.Admit(t.Context(), counts); err != nil {
			t.Fatal(err)
		}
		l.Settle(counts, map[string]ingest.Appended{"acme": {N: 3, Last: uint64(3*i + 3)}})
	}
	if segs := len(l.backlog["acme"].segs); segs > maxSegments {
		t.Fatalf("%d backlog segments for one tenant, bound %d", segs, maxSegments)
	}
	if got := l.backlogOf("acme", 0); got != 3000 {
		t.Fatalf("backlog %d, want 3000", got)
	}
	committed = 3000
	if got := l.backlogOf("acme", committed); got != 0 || len(l.backlog) != 0 {
		t.Fatalf("after everything is committed: backlog %d, %d tenants tracked", got, len(l.backlog))
	}
}

// TestBacklogShareIsPerTenantPosition: with partitioned detection each
// tenant's events are committed by its own partition's pipeline. A tenant
// whose partition has committed its events is admitted again even while
// another partition lags far behind, and a tenant whose partition lags is
// still held to its share.
func TestBacklogShareIsPerTenantPosition(t *testing.T) {
	positions := map[string]uint64{}
	var asked []string
	l, err := NewLimiter(LimiterOptions{
		Tenant: TenantLimits{BacklogShare: 10},
		Committed: func(_ context.Context, tenant string) (uint64, error) {
			asked = append(asked, tenant)
			return positions[tenant], nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Both tenants fill their share; acme's events are seqs 1-10, globex's 11-20.
	for i, tenant := range []string{"acme", "globex"} {
		c := map[string]int{tenant: 10}
		if err := l.Admit(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		l.Settle(c, map[string]ingest.Appended{tenant: {N: 10, Last: uint64(10*i + 10)}})
	}
	// acme's partition committed past its events; globex's committed nothing.
	positions["acme"] = 10
	if err := l.Admit(t.Context(), map[string]int{"acme": 5}); err != nil {
		t.Errorf("acme, whose events its partition committed, is refused: %v", err)
	}
	if err := l.Admit(t.Context(), map[string]int{"globex": 5}); audit.ErrorCode(err) != audit.ERATELIMITED {
		t.Errorf("globex, 10 events waiting in its partition, admitted 5 more: %v", err)
	}
	if !slices.Contains(asked, "acme") || !slices.Contains(asked, "globex") {
		t.Errorf("the committed position was asked for %v, want each tenant's", asked)
	}
}
