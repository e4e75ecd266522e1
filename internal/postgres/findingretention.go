package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.FindingRetention = (*Store)(nil)

// purgeChunk is how many findings, incidents or response actions one
// purge transaction deletes at most.
const purgeChunk = 5000

// PurgeFindings deletes tenant's findings and incidents last seen before
// the cutoff, whatever their status, and its response actions created
// before it, whatever their status, each with its alert mark, and returns
// how many findings and incidents went (with what went before an error;
// the response actions are not counted); with dryRun it only counts the
// findings and incidents. An empty tenant is EINVALID.
func (s *Store) PurgeFindings(ctx context.Context, tenant string, before time.Time, dryRun bool) (findings, incidents int64, err error) {
	if tenant == "" {
		return 0, 0, invalid("tenant", "a findings purge needs a tenant")
	}
	cut := before.UnixNano()
	if dryRun {
		err := s.pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM findings WHERE tenant = $1 AND last_seen_ns < $2),
			(SELECT count(*) FROM incidents WHERE tenant = $1 AND last_seen_ns < $2)`,
			tenant, cut).Scan(&findings, &incidents)
		if err != nil {
			return 0, 0, translate(err, "count expired findings")
		}
		return findings, incidents, nil
	}
	// Chunk by chunk, each its own transaction, so that a first purge of
	// years of findings holds no locks for long; a purge cut short is
	// finished by the next one. The actions' chunks are found through
	// response_actions_created (tenant, created_ns DESC, id DESC), as the
	// findings' are through findings_seen.
	var actions int64
	for _, p := range []struct {
		table, column, kind string
		n                   *int64
	}{
		{"findings", "last_seen_ns", audit.KindFinding, &findings},
		{"incidents", "last_seen_ns", audit.KindIncident, &incidents},
		{"response_actions", "created_ns", audit.KindAction, &actions},
	} {
		for {
			var n int64
			// The marks go with what they mark: a finding stored again
			// later is a new alert. Every statement of a WITH runs, read
			// or not; the outer time test is checked again on rows a
			// concurrent write updated. p.table and p.column are
			// constants.
			err := s.inTx(ctx, "purge "+p.table, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, `WITH gone AS (
						DELETE FROM `+p.table+` WHERE tenant = $1 AND `+p.column+` < $2 AND id IN (
							SELECT id FROM `+p.table+` WHERE tenant = $1 AND `+p.column+` < $2 LIMIT $4)
						RETURNING id),
					marks AS (
						DELETE FROM alert_marks WHERE tenant = $1 AND kind = $3 AND id IN (SELECT id FROM gone))
					SELECT count(*) FROM gone`, tenant, cut, p.kind, purgeChunk).Scan(&n)
			})
			if err != nil {
				return findings, incidents, err
			}
			*p.n += n
			if n < purgeChunk {
				break
			}
		}
	}
	return findings, incidents, nil
}
