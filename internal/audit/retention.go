package audit

import (
	"context"
	"time"
)

// Retention is an optional capability of stores and streams, discovered by
// type assertion: it deletes a tenant's data older than a cutoff.
//
// Contract:
//   - Purge deletes every event of tenant whose Time is before the cutoff
//     (and the idempotency records that only served those events), and
//     returns how many events it deleted. Events of other tenants and events
//     at or after before are untouched.
//   - An event purged this way may be accepted again by a later append with
//     the same (Tenant, ID): idempotency lasts as long as retention.
//   - Purge is idempotent: a second call with the same arguments deletes 0.
//   - An empty tenant is EINVALID, so no code path purges every tenant by
//     accident.
//   - Safe for concurrent use with reads and writes.
type Retention interface {
	Purge(ctx context.Context, tenant string, before time.Time) (int64, error)
}
