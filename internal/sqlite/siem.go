package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.SIEMStore = (*DB)(nil)

// WebhookHolder names the webhook fan-out in audit.ChangePrune.Skipped.
const WebhookHolder = "webhooks"

// lastChangeSQL is the newest change's Seq, surviving deletion in
// sqlite_sequence (alert_changes is AUTOINCREMENT, so Seqs are never reused).
const lastChangeSQL = `SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'alert_changes'), 0),
	coalesce((SELECT max(seq) FROM alert_changes), 0))`

// LastChange returns the Seq of the newest change recorded.
func (db *DB) LastChange(ctx context.Context) (int64, error) {
	var v int64
	err := db.meta.r.QueryRowContext(ctx, lastChangeSQL).Scan(&v)
	return v, translate(err, "read last change")
}

// RegisterSIEMSinks adds the sinks not known yet, starting after the last
// change, and forgets those not named.
func (db *DB) RegisterSIEMSinks(ctx context.Context, names []string) error {
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "register siem sinks")
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, `SELECT sink FROM siem_cursors`)
	if err != nil {
		return translate(err, "read siem sinks")
	}
	var known []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return translate(err, "read siem sinks")
		}
		known = append(known, s)
	}
	rows.Close()
	for _, s := range known {
		if !slices.Contains(names, s) {
			if _, err := tx.ExecContext(ctx, `DELETE FROM siem_cursors WHERE sink = ?`, s); err != nil {
				return translate(err, "forget siem sink "+s)
			}
		}
	}
	var last int64
	if err := tx.QueryRowContext(ctx, lastChangeSQL).Scan(&last); err != nil {
		return translate(err, "read last change")
	}
	now := nanos(db.opts.Now())
	for _, s := range names {
		if _, err := tx.ExecContext(ctx, `INSERT INTO siem_cursors (sink, changes_seq, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (sink) DO NOTHING`, s, last, now); err != nil {
			return translate(err, "register siem sink "+s)
		}
	}
	return translate(tx.Commit(), "register siem sinks")
}

// SIEMCursor returns a sink's cursor; ENOTFOUND for an unregistered sink.
func (db *DB) SIEMCursor(ctx context.Context, sink string) (audit.SIEMCursor, error) {
	c := audit.SIEMCursor{Sink: sink}
	err := db.meta.r.QueryRowContext(ctx, `SELECT changes_seq, changes_dropped, changes_reported, events_dropped, events_reported
		FROM siem_cursors WHERE sink = ?`, sink).Scan(&c.Changes, &c.ChangesDropped, &c.ChangesReported, &c.EventsDropped, &c.EventsReported)
	if errors.Is(err, sql.ErrNoRows) {
		return c, notFound("siem sink", sink)
	}
	return c, translate(err, "read siem cursor of "+sink)
}

// CommitSIEMChanges advances a sink's change cursor (never backwards: a
// prune may have moved it past what the sink sent meanwhile).
func (db *DB) CommitSIEMChanges(ctx context.Context, sink string, seq, reported int64) error {
	res, err := db.meta.w.ExecContext(ctx, `UPDATE siem_cursors SET changes_seq = max(changes_seq, ?),
		changes_reported = max(changes_reported, ?), updated_at = ? WHERE sink = ?`, seq, reported, nanos(db.opts.Now()), sink)
	if err != nil {
		return translate(err, "commit siem cursor of "+sink)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("siem sink", sink)
	}
	return nil
}

// AddSIEMEventGap counts raw events a sink skipped.
func (db *DB) AddSIEMEventGap(ctx context.Context, sink string, n int64) error {
	_, err := db.meta.w.ExecContext(ctx, `UPDATE siem_cursors SET events_dropped = events_dropped + ?, updated_at = ? WHERE sink = ?`,
		n, nanos(db.opts.Now()), sink)
	return translate(err, "record siem event gap of "+sink)
}

// CommitSIEMEventGap records that a sink reported its event gaps up to reported.
func (db *DB) CommitSIEMEventGap(ctx context.Context, sink string, reported int64) error {
	_, err := db.meta.w.ExecContext(ctx, `UPDATE siem_cursors SET events_reported = max(events_reported, ?), updated_at = ? WHERE sink = ?`,
		reported, nanos(db.opts.Now()), sink)
	return translate(err, "commit siem event gap of "+sink)
}

// PruneChanges deletes what every holder passed, then enforces the bound.
func (db *DB) PruneChanges(ctx context.Context, webhooks bool, maxRows int, before time.Time) (audit.ChangePrune, error) {
	res := audit.ChangePrune{Skipped: map[string]int64{}}
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return res, translate(err, "prune changes")
	}
	defer func() { _ = tx.Rollback() }()
	// Passed by every holder. Without holders nothing reads the log:
	// everything recorded so far is passed.
	var low sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT min(changes_seq) FROM siem_cursors`).Scan(&low); err != nil {
		return res, translate(err, "read siem cursors")
	}
	var hook int64
	if webhooks {
		err := tx.QueryRowContext(ctx, `SELECT value FROM alert_state WHERE name = 'cursor'`).Scan(&hook)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return res, translate(err, "read alert cursor")
		}
	}
	var passed int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM alert_changes`).Scan(&passed); err != nil {
		return res, translate(err, "read last change")
	}
	switch {
	case webhooks && low.Valid:
		passed = min(hook, low.Int64)
	case webhooks:
		passed = hook
	case low.Valid:
		passed = low.Int64
	}
	if passed > 0 {
		r, err := tx.ExecContext(ctx, `DELETE FROM alert_changes WHERE seq <= ?`, passed)
		if err != nil {
			return res, translate(err, "delete passed changes")
		}
		n, _ := r.RowsAffected()
		res.Deleted += n
	}
	// The bound: the newest maxRows recorded since before stay.
	var cut int64
	err = tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM (
		SELECT seq FROM alert_changes WHERE at < ?
		UNION ALL SELECT seq FROM (SELECT seq FROM alert_changes ORDER BY seq DESC LIMIT -1 OFFSET ?))`,
		nanos(before), maxRows).Scan(&cut)
	if err != nil {
		return res, translate(err, "find changes beyond the bound")
	}
	if cut == 0 {
		return res, translate(tx.Commit(), "prune changes")
	}
	skipped := func(from int64) (int64, error) {
		var n int64
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM alert_changes WHERE seq > ? AND seq <= ?`, from, cut).Scan(&n)
		return n, translate(err, "count skipped changes")
	}
	rows, err := tx.QueryContext(ctx, `SELECT sink, changes_seq FROM siem_cursors WHERE changes_seq < ?`, cut)
	if err != nil {
		return res, translate(err, "read lagging sinks")
	}
	lag := map[string]int64{}
	for rows.Next() {
		var s string
		var seq int64
		if err := rows.Scan(&s, &seq); err != nil {
			rows.Close()
			return res, translate(err, "read lagging sinks")
		}
		lag[s] = seq
	}
	rows.Close()
	for s, seq := range lag {
		n, err := skipped(seq)
		if err != nil {
			return res, err
		}
		res.Skipped[s] = n
		if _, err := tx.ExecContext(ctx, `UPDATE siem_cursors SET changes_seq = ?, changes_dropped = changes_dropped + ? WHERE sink = ?`,
			cut, n, s); err != nil {
			return res, translate(err, "move siem cursor of "+s)
		}
	}
	if webhooks && hook < cut {
		n, err := skipped(hook)
		if err != nil {
			return res, err
		}
		res.Skipped[WebhookHolder] = n
	}
	r, err := tx.ExecContext(ctx, `DELETE FROM alert_changes WHERE seq <= ?`, cut)
	if err != nil {
		return res, translate(err, "delete changes beyond the bound")
	}
	n, _ := r.RowsAffected()
	res.Deleted += n
	return res, translate(tx.Commit(), "prune changes")
}
