package app

import (
	"context"
	"sync"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// eventAges caches each tenant's event-age override for ingestion, so a
// request does not read the tenant from the store; an operator's change
// takes effect within ttl (ingest.key_cache_ttl, as for keys). It holds one
// entry per existing tenant at most.
type eventAges struct {
	tenants audit.TenantStore
	ttl     time.Duration
	now     func() time.Time

	mu      sync.Mutex
	entries map[string]eventAge
}

type eventAge struct {
	age   time.Duration
	until time.Time
}

// of returns tenant's override of ingest.max_event_age, 0 for none (or
// for an unknown tenant, which ingestion rejects anyway).
func (c *eventAges) of(ctx context.Context, tenant string) (time.Duration, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[tenant]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.age, nil
	}
	t, err := c.tenants.GetTenant(ctx, tenant)
	switch {
	case audit.ErrorCode(err) == audit.ENOTFOUND:
		return 0, nil
	case err != nil:
		return 0, err
	}
	age := time.Duration(t.MaxEventAgeDays) * 24 * time.Hour
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]eventAge{}
	}
	c.entries[tenant] = eventAge{age: age, until: now.Add(c.ttl)}
	c.mu.Unlock()
	return age, nil
}
