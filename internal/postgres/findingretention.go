package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.FindingRetention = (*Store)(nil)

// PurgeFindings deletes tenant's findings and incidents last seen before
// the cutoff, whatever their status, with their alert marks (or, with
// dryRun, counts them), in one transaction. An empty tenant is EINVALID.
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
	err = s.inTx(ctx, "purge findings", func(tx pgx.Tx) error {
		// The marks go with what they mark: a finding stored again later
		// is a new alert. Every statement of a WITH runs, read or not.
		for _, p := range []struct {
			table, kind string
			n           *int64
		}{{"findings", audit.KindFinding, &findings}, {"incidents", audit.KindIncident, &incidents}} {
			// p.table is one of two constants, never input.
			if err := tx.QueryRow(ctx, `WITH gone AS (
					DELETE FROM `+p.table+` WHERE tenant = $1 AND last_seen_ns < $2 RETURNING id),
				marks AS (
					DELETE FROM alert_marks WHERE tenant = $1 AND kind = $3 AND id IN (SELECT id FROM gone))
				SELECT count(*) FROM gone`, tenant, cut, p.kind).Scan(p.n); err != nil {
				return fmt.Errorf("purge %s: %w", p.table, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return findings, incidents, nil
}
