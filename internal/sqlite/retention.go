package sqlite

import (
	"context"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

var (
	_ audit.Retention        = (*DB)(nil)
	_ audit.RetentionPlanner = (*DB)(nil)
	_ audit.FindingRetention = (*DB)(nil)
)

// CountBefore counts tenant's events dated before the cutoff.
func (db *DB) CountBefore(ctx context.Context, tenant string, before time.Time) (int64, error) {
	return db.events.CountBefore(ctx, tenant, before)
}

// PurgeFindings deletes tenant's findings and incidents last seen before
// the cutoff (or, with dryRun, counts them), in one transaction.
func (db *DB) PurgeFindings(ctx context.Context, tenant string, before time.Time, dryRun bool) (findings, incidents int64, err error) {
	if tenant == "" {
		return 0, 0, invalid("tenant", "a findings purge needs a tenant")
	}
	cut := before.UnixNano()
	if dryRun {
		err := db.meta.r.QueryRowContext(ctx, `SELECT
			(SELECT count(*) FROM findings INDEXED BY findings_seen WHERE tenant = ? AND last_seen < ?),
			(SELECT count(*) FROM incidents INDEXED BY incidents_seen WHERE tenant = ? AND last_seen < ?)`,
			tenant, cut, tenant, cut).Scan(&findings, &incidents)
		return findings, incidents, translate(err, "count expired findings")
	}
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, translate(err, "purge findings")
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `DELETE FROM findings WHERE tenant = ? AND last_seen < ?`, tenant, cut)
	if err != nil {
		return 0, 0, translate(err, "purge findings")
	}
	findings, _ = res.RowsAffected()
	res, err = tx.ExecContext(ctx, `DELETE FROM incidents WHERE tenant = ? AND last_seen < ?`, tenant, cut)
	if err != nil {
		return 0, 0, translate(err, "purge incidents")
	}
	incidents, _ = res.RowsAffected()
	if err := tx.Commit(); err != nil {
		return 0, 0, translate(err, "purge findings")
	}
	return findings, incidents, nil
}
