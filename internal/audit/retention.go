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

// RetentionPlanner is an optional capability beside Retention: it counts
// what Purge would delete, for a dry run. CountBefore returns how many of
// tenant's events are dated before the cutoff; an empty tenant is
// EINVALID.
type RetentionPlanner interface {
	CountBefore(ctx context.Context, tenant string, before time.Time) (int64, error)
}

// FindingRetention is an optional capability of finding stores: findings
// and incidents expire with their evidence, and response actions with
// them.
//
// Contract:
//   - PurgeFindings deletes tenant's findings whose LastSeen is before the
//     cutoff, whatever their status, and the incidents whose LastSeen is
//     before it; it returns how many of each it deleted. Other tenants'
//     and later records are untouched; a second call deletes nothing.
//   - It also deletes tenant's response actions whose CreatedAt is before
//     the cutoff, whatever their status. They are not counted in what it
//     returns.
//   - The alert mark of each finding, incident or response action it
//     deletes goes with it, so a finding or incident stored again later is
//     alerted as opened again, like a new one.
//   - With dryRun it deletes nothing and returns the findings and
//     incidents it would delete.
//   - An empty tenant is EINVALID (installation-wide findings, which have
//     no tenant, are never purged by a tenant's retention).
type FindingRetention interface {
	PurgeFindings(ctx context.Context, tenant string, before time.Time, dryRun bool) (findings, incidents int64, err error)
}

// PurgeReport is what one retention run did (or, dry, would do) to one
// tenant.
type PurgeReport struct {
	Tenant        string    `json:"tenant"`
	RetentionDays int       `json:"retention_days"`
	Before        time.Time `json:"before"` // everything dated earlier goes
	DryRun        bool      `json:"dry_run"`
	Events        int64     `json:"events"`
	Findings      int64     `json:"findings"`
	Incidents     int64     `json:"incidents"`
	// Archived is how many events were archived before the purge.
	Archived int64 `json:"archived,omitempty"`
	// Error is set when this tenant's purge failed (the others still ran).
	Error string `json:"error,omitempty"`
}
