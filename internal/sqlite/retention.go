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
// the cutoff, whatever their status, and its response actions created
// before it, whatever their status, each with its alert mark, in one
// transaction; it returns how many findings and incidents went (the
// response actions are not counted). With dryRun it only counts the
// findings and incidents.
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
	// The marks go with what they mark, so that a finding stored again
	// later is a new alert: first the marks, chosen by the same test as
	// the rows (the transaction is immediate on the one writer, so no row
	// changes between the two statements), then the rows. p.table,
	// p.index and p.column are constants.
	var actions int64
	for _, p := range []struct {
		table, index, column, kind string
		n                          *int64
	}{
		{"findings", "findings_seen", "last_seen", audit.KindFinding, &findings},
		{"incidents", "incidents_seen", "last_seen", audit.KindIncident, &incidents},
		{"response_actions", "response_actions_created", "created_at", audit.KindAction, &actions},
	} {
		if _, err := tx.ExecContext(ctx, `DELETE FROM alert_marks WHERE tenant = ? AND kind = ? AND id IN (
			SELECT id FROM `+p.table+` INDEXED BY `+p.index+` WHERE tenant = ? AND `+p.column+` < ?)`,
			tenant, p.kind, tenant, cut); err != nil {
			return 0, 0, translate(err, "purge alert marks of "+p.table)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM `+p.table+` WHERE tenant = ? AND `+p.column+` < ?`, tenant, cut)
		if err != nil {
			return 0, 0, translate(err, "purge "+p.table)
		}
		*p.n, _ = res.RowsAffected()
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, translate(err, "purge findings")
	}
	return findings, incidents, nil
}
