package httpapi

import (
	"context"
	"fmt"
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
		Committed: func(context.Context) (uint64, error) { return committed, nil },
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
