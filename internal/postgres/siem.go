package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.SIEMStore = (*Store)(nil)

// WebhookHolder names the webhook fan-out in audit.ChangePrune.Skipped.
const WebhookHolder = "webhooks"

// LastChange returns the Seq of the newest change recorded (0 for none),
// surviving the deletion of the change itself.
func (s *Store) LastChange(ctx context.Context) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce((SELECT value FROM counters WHERE name = 'changes'), 0)`).Scan(&v)
	return v, translate(err, "read last change")
}

// RegisterSIEMSinks makes names the set of sinks: a new one starts after
// the last change recorded so far, one no longer named is forgotten.
func (s *Store) RegisterSIEMSinks(ctx context.Context, names []string) error {
	if names == nil {
		names = []string{}
	}
	return s.inTx(ctx, "register siem sinks", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM siem_cursors WHERE sink <> ALL($1)`, names); err != nil {
			return fmt.Errorf("forget siem sinks: %w", err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO siem_cursors (sink, changes_seq, updated_ns)
			SELECT n, coalesce((SELECT value FROM counters WHERE name = 'changes'), 0), $2 FROM unnest($1::text[]) AS n
			ON CONFLICT (sink) DO NOTHING`, names, nanos(s.opts.Now()))
		return err
	})
}

// SIEMCursor returns a sink's cursor; ENOTFOUND for an unregistered sink.
func (s *Store) SIEMCursor(ctx context.Context, sink string) (audit.SIEMCursor, error) {
	c := audit.SIEMCursor{Sink: sink}
	err := s.pool.QueryRow(ctx, `SELECT changes_seq, changes_dropped, changes_reported, events_dropped, events_reported
		FROM siem_cursors WHERE sink = $1`, sink).Scan(&c.Changes, &c.ChangesDropped, &c.ChangesReported, &c.EventsDropped, &c.EventsReported)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, notFound("siem sink", sink)
	}
	return c, translate(err, "read siem cursor of "+sink)
}

// CommitSIEMChanges advances a sink's change cursor to seq and its reported
// gap to reported, never backwards (a prune may have moved it past what
// the sink sent meanwhile); ENOTFOUND for an unregistered sink.
func (s *Store) CommitSIEMChanges(ctx context.Context, sink string, seq, reported int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE siem_cursors SET changes_seq = greatest(changes_seq, $1),
		changes_reported = greatest(changes_reported, $2), updated_ns = $3 WHERE sink = $4`, seq, reported, nanos(s.opts.Now()), sink)
	if err != nil {
		return translate(err, "commit siem cursor of "+sink)
	}
	if tag.RowsAffected() == 0 {
		return notFound("siem sink", sink)
	}
	return nil
}

// AddSIEMEventGap counts n raw events a sink skipped.
func (s *Store) AddSIEMEventGap(ctx context.Context, sink string, n int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE siem_cursors SET events_dropped = events_dropped + $1, updated_ns = $2 WHERE sink = $3`,
		n, nanos(s.opts.Now()), sink)
	return translate(err, "record siem event gap of "+sink)
}

// CommitSIEMEventGap records that a sink reported its event gaps up to
// reported (never backwards).
func (s *Store) CommitSIEMEventGap(ctx context.Context, sink string, reported int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE siem_cursors SET events_reported = greatest(events_reported, $1), updated_ns = $2 WHERE sink = $3`,
		reported, nanos(s.opts.Now()), sink)
	return translate(err, "commit siem event gap of "+sink)
}

// PruneChanges deletes the changes every holder has passed (the webhook
// fan-out counts only when webhooks is true; without holders everything is
// passed), then the oldest beyond maxRows and those recorded before
// before, moving lagging sinks' cursors past them and counting what each
// holder skipped.
func (s *Store) PruneChanges(ctx context.Context, webhooks bool, maxRows int, before time.Time) (audit.ChangePrune, error) {
	var res audit.ChangePrune
	err := s.inTx(ctx, "prune changes", func(tx pgx.Tx) error {
		res = audit.ChangePrune{Skipped: map[string]int64{}}
		var low *int64
		if err := tx.QueryRow(ctx, `SELECT min(changes_seq) FROM siem_cursors`).Scan(&low); err != nil {
			return fmt.Errorf("read siem cursors: %w", err)
		}
		var hook int64
		if webhooks {
			if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT value FROM counters WHERE name = 'alert_cursor'), 0)`).Scan(&hook); err != nil {
				return fmt.Errorf("read alert cursor: %w", err)
			}
		}
		var passed int64
		switch {
		case webhooks && low != nil:
			passed = min(hook, *low)
		case webhooks:
			passed = hook
		case low != nil:
			passed = *low
		default:
			if err := tx.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM alert_changes`).Scan(&passed); err != nil {
				return fmt.Errorf("read last change: %w", err)
			}
		}
		if passed > 0 {
			tag, err := tx.Exec(ctx, `DELETE FROM alert_changes WHERE seq <= $1`, passed)
			if err != nil {
				return fmt.Errorf("delete passed changes: %w", err)
			}
			res.Deleted += tag.RowsAffected()
		}
		// The bound: the newest maxRows recorded since before stay.
		var cut int64
		if err := tx.QueryRow(ctx, `SELECT greatest(
				coalesce((SELECT max(seq) FROM alert_changes WHERE at_ns < $1), 0),
				coalesce((SELECT seq FROM alert_changes ORDER BY seq DESC OFFSET $2 LIMIT 1), 0))`,
			nanos(before), max(maxRows, 0)).Scan(&cut); err != nil {
			return fmt.Errorf("find changes beyond the bound: %w", err)
		}
		if cut == 0 {
			return nil
		}
		skipped := func(from int64) (int64, error) {
			var n int64
			err := tx.QueryRow(ctx, `SELECT count(*) FROM alert_changes WHERE seq > $1 AND seq <= $2`, from, cut).Scan(&n)
			return n, err
		}
		rows, err := tx.Query(ctx, `SELECT sink, changes_seq FROM siem_cursors WHERE changes_seq < $1 ORDER BY sink FOR UPDATE`, cut)
		if err != nil {
			return fmt.Errorf("read lagging sinks: %w", err)
		}
		type lagging struct {
			sink string
			seq  int64
		}
		var lag []lagging
		for rows.Next() {
			var l lagging
			if err := rows.Scan(&l.sink, &l.seq); err != nil {
				rows.Close()
				return fmt.Errorf("read lagging sinks: %w", err)
			}
			lag = append(lag, l)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read lagging sinks: %w", err)
		}
		for _, l := range lag {
			n, err := skipped(l.seq)
			if err != nil {
				return fmt.Errorf("count skipped changes: %w", err)
			}
			res.Skipped[l.sink] = n
			if _, err := tx.Exec(ctx, `UPDATE siem_cursors SET changes_seq = $1, changes_dropped = changes_dropped + $2 WHERE sink = $3`,
				cut, n, l.sink); err != nil {
				return fmt.Errorf("move siem cursor of %s: %w", l.sink, err)
			}
		}
		if webhooks && hook < cut {
			n, err := skipped(hook)
			if err != nil {
				return fmt.Errorf("count skipped changes: %w", err)
			}
			res.Skipped[WebhookHolder] = n
		}
		tag, err := tx.Exec(ctx, `DELETE FROM alert_changes WHERE seq <= $1`, cut)
		if err != nil {
			return fmt.Errorf("delete changes beyond the bound: %w", err)
		}
		res.Deleted += tag.RowsAffected()
		return nil
	})
	return res, err
}
