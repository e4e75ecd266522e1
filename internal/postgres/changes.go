package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

// entityChange describes a write of a finding or an incident for
// recordChange.
type entityChange struct {
	kind, tenant, id string
	severity         audit.Severity
	status           audit.FindingStatus
	rule, family     string
	doc              []byte
	// human is a person's triage (UpdateFinding, UpdateIncident); otherwise
	// the write comes from detection.
	human bool
}

// changesLock is the advisory lock recordChange holds until its
// transaction ends: taking the next seq and committing happen in that
// order for every writer, so change seqs become visible in order. It is
// the schema's own: installations sharing a database do not contend.
func (s *Store) changesLock() string { return "vigil.alert_changes." + s.schema }

// recordChange records, inside the transaction that writes the entity, the
// lifecycle change the write makes, if any (see audit.Change): opened once,
// escalated only above the highest severity alerted so far, acknowledged
// and resolved on a person's status change. The marks make it idempotent,
// so detection replaying a stored version records nothing.
func (s *Store) recordChange(ctx context.Context, tx pgx.Tx, e entityChange) error {
	rank := e.severity.Rank()
	var maxRank int
	var status string
	err := tx.QueryRow(ctx, `SELECT max_rank, status FROM alert_marks WHERE tenant = $1 AND kind = $2 AND id = $3 FOR UPDATE`,
		e.tenant, e.kind, e.id).Scan(&maxRank, &status)
	var change audit.LifecycleChange
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := tx.Exec(ctx, `INSERT INTO alert_marks (tenant, kind, id, max_rank, status) VALUES ($1, $2, $3, $4, $5)`,
			e.tenant, e.kind, e.id, rank, string(e.status)); err != nil {
			return err
		}
		change = audit.ChangeOpened
		if e.human {
			change = humanChange(e.status)
		}
	case err != nil:
		return err
	case e.human:
		if string(e.status) == status {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE alert_marks SET status = $1 WHERE tenant = $2 AND kind = $3 AND id = $4`,
			string(e.status), e.tenant, e.kind, e.id); err != nil {
			return err
		}
		change = humanChange(e.status)
	default:
		if rank <= maxRank {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE alert_marks SET max_rank = $1 WHERE tenant = $2 AND kind = $3 AND id = $4`,
			rank, e.tenant, e.kind, e.id); err != nil {
			return err
		}
		change = audit.ChangeEscalated
	}
	if change == "" {
		return nil
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, s.changesLock()); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `WITH next AS (UPDATE counters SET value = value + 1 WHERE name = 'changes' RETURNING value)
		INSERT INTO alert_changes (seq, tenant, kind, entity_id, change, severity, rule_id, family, at_ns, doc)
		SELECT value, $1, $2, $3, $4, $5, $6, $7, $8, $9 FROM next`,
		e.tenant, e.kind, e.id, string(change), rank, e.rule, e.family, nanos(s.opts.Now()), e.doc)
	return err
}

// humanChange is the change a person's status makes; reopening alerts no one.
func humanChange(st audit.FindingStatus) audit.LifecycleChange {
	switch st {
	case audit.StatusAcknowledged:
		return audit.ChangeAcknowledged
	case audit.StatusResolved:
		return audit.ChangeResolved
	}
	return ""
}
