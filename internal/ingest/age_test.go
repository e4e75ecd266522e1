package ingest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/ingest"
	"github.com/vigilhq/vigil/internal/memstream"
)

// TestEventAgeBounded is issue 9's partition flood: an events:write key
// could date events on any day since 2000, each day a storage partition.
// Events older than the installation's allowance are rejected naming the
// time field, unless the operator gave the tenant a longer one.
func TestEventAgeBounded(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	st := memstream.New(memstream.Options{})
	t.Cleanup(func() { st.Close() })
	svc, err := ingest.New(ingest.Options{
		Stream:       st,
		TenantExists: func(context.Context, string) (bool, error) { return true, nil },
		Now:          func() time.Time { return now },
		MaxEventAge:  30 * 24 * time.Hour,
		TenantEventAge: func(_ context.Context, tenant string) (time.Duration, error) {
			if tenant == "backfill" {
				return 3650 * 24 * time.Hour, nil
			}
			return 0, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(at time.Time) string {
		return `{"action":"custom.thing.done","time":"` + at.Format(time.RFC3339) + `"}`
	}
	body := strings.Join([]string{
		ev(now.Add(-29 * 24 * time.Hour)),
		ev(now.Add(-31 * 24 * time.Hour)),
		ev(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)),
	}, "\n")
	for _, tc := range []struct {
		tenant string
		want   []string
	}{
		{"acme", []string{"accepted", "rejected", "rejected"}},
		{"backfill", []string{"accepted", "accepted", "rejected"}}, // 2001 is beyond even 10 years
	} {
		p := audit.Principal{Tenant: tc.tenant, Scopes: []audit.Scope{audit.ScopeEventsWrite}}
		res, err := svc.Ingest(t.Context(), p, decode(t, body))
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res.Results {
			if r.Status != tc.want[i] {
				t.Errorf("%s event %d: %s (%v), want %s", tc.tenant, i, r.Status, r.Err, tc.want[i])
			}
			if r.Status == "rejected" {
				msg := r.Err.Error()
				if audit.ErrorField(r.Err) != "time" || audit.ErrorCode(r.Err) != audit.EINVALID ||
					!strings.Contains(msg, "older than the tenant's allowed age of") || !strings.Contains(msg, "max_event_age_days") {
					t.Errorf("%s event %d: rejection %q (field %q)", tc.tenant, i, msg, audit.ErrorField(r.Err))
				}
			}
		}
	}
	if res, _ := svc.Ingest(t.Context(), audit.Principal{Tenant: "acme", Scopes: []audit.Scope{audit.ScopeEventsWrite}},
		decode(t, ev(now.Add(-31*24*time.Hour)))); !strings.Contains(res.Results[0].Err.Error(), "allowed age of 30 days") {
		t.Errorf("message does not give the allowance: %v", res.Results[0].Err)
	}
}
