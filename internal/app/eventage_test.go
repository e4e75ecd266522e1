package app_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/config"
)

// TestBackfillNeedsTheOperator: over HTTP, an event dated before the
// installation's allowance is rejected naming the time field; once an
// operator raises the tenant's max_event_age_days (PATCH /v1/tenants/{id}),
// the same event is accepted, and the tenant's own key cannot raise it.
func TestBackfillNeedsTheOperator(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.Ingest.MaxEventAge = 7 * 24 * time.Hour
		c.Ingest.KeyCacheTTL = time.Millisecond // the override applies at once
	})
	c, key := n.tenantClient(t, "acme")
	ctx := t.Context()
	old := login("alice", "192.0.2.1", time.Now().Add(-200*24*time.Hour))
	old.ID = "backfill-1"
	// A batch whose every event is rejected is a 400 naming the field.
	_, err := c.Send(ctx, old)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.StatusCode != 400 || !strings.Contains(ce.Message, "time 20") ||
		!strings.Contains(ce.Message, "older than the tenant's allowed age of 7 days") {
		t.Fatalf("old event: %v", err)
	}
	if code, body := raw(t, "PATCH", n.url+"/v1/tenants/acme", key, `{"max_event_age_days":3650}`); code != 403 {
		t.Fatalf("tenant key widening its own allowance: %d %s", code, body)
	}
	days := 365
	tn, err := n.op.UpdateTenant(ctx, "acme", client.UpdateTenantRequest{MaxEventAgeDays: &days})
	if err != nil || tn.MaxEventAgeDays != 365 || tn.RetentionDays != 400 {
		t.Fatalf("UpdateTenant = %+v, %v", tn, err)
	}
	time.Sleep(5 * time.Millisecond) // past the 1 ms cache
	res, err := c.Send(ctx, old)
	if err != nil || res.Accepted != 1 {
		t.Fatalf("after the operator allowed a backfill: %+v, %v", res, err)
	}
	waitForEvents(t, c, client.SearchParams{Actor: "alice"}, 1)
}
