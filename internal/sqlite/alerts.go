package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.AlertStore = (*DB)(nil)

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

// recordChange records, inside the transaction that writes the entity, the
// lifecycle change the write makes, if any (see audit.Change): opened once,
// escalated only above the highest severity alerted so far, acknowledged
// and resolved on a person's status change. The marks make it idempotent,
// so detection replaying a stored version records nothing.
func (db *DB) recordChange(ctx context.Context, tx *sql.Tx, e entityChange) error {
	rank := e.severity.Rank()
	var maxRank int
	var status string
	err := tx.QueryRowContext(ctx, `SELECT max_rank, status FROM alert_marks WHERE tenant = ? AND kind = ? AND id = ?`,
		e.tenant, e.kind, e.id).Scan(&maxRank, &status)
	var change audit.LifecycleChange
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO alert_marks (tenant, kind, id, max_rank, status) VALUES (?, ?, ?, ?, ?)`,
			e.tenant, e.kind, e.id, rank, string(e.status)); err != nil {
			return translate(err, "mark "+e.kind+" "+e.id)
		}
		change = audit.ChangeOpened
		if e.human {
			change = humanChange(e.status)
		}
	case err != nil:
		return translate(err, "read mark of "+e.kind+" "+e.id)
	case e.human:
		if string(e.status) == status {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE alert_marks SET status = ? WHERE tenant = ? AND kind = ? AND id = ?`,
			string(e.status), e.tenant, e.kind, e.id); err != nil {
			return translate(err, "mark "+e.kind+" "+e.id)
		}
		change = humanChange(e.status)
	default:
		if rank <= maxRank {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE alert_marks SET max_rank = ? WHERE tenant = ? AND kind = ? AND id = ?`,
			rank, e.tenant, e.kind, e.id); err != nil {
			return translate(err, "mark "+e.kind+" "+e.id)
		}
		change = audit.ChangeEscalated
	}
	if change == "" {
		return nil
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO alert_changes (tenant, kind, entity_id, change, severity, rule_id, family, at, doc)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.tenant, e.kind, e.id, string(change), rank, e.rule, e.family, nanos(db.opts.Now()), e.doc)
	return translate(err, "record change of "+e.kind+" "+e.id)
}

// humanChange is the change a person's status makes; reopening alerts no one.
func humanChange(s audit.FindingStatus) audit.LifecycleChange {
	switch s {
	case audit.StatusAcknowledged:
		return audit.ChangeAcknowledged
	case audit.StatusResolved:
		return audit.ChangeResolved
	}
	return ""
}

// CreateSubscription stores a new subscription, refusing (ECONFLICT) one
// beyond maxPerTenant of its tenant.
func (db *DB) CreateSubscription(ctx context.Context, s audit.Subscription, maxPerTenant int) error {
	if s.ID == "" {
		return invalid("id", "subscription id is required")
	}
	doc, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode subscription %s: %w", s.ID, err)
	}
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "create subscription")
	}
	defer func() { _ = tx.Rollback() }()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM alert_subscriptions WHERE tenant = ?`, s.Tenant).Scan(&n); err != nil {
		return translate(err, "count subscriptions")
	}
	if maxPerTenant > 0 && n >= maxPerTenant {
		return &audit.Error{Code: audit.ECONFLICT, Message: fmt.Sprintf("at most %d webhooks per tenant; delete one first", maxPerTenant)}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO alert_subscriptions (id, tenant, created_at, doc) VALUES (?, ?, ?, ?)`,
		s.ID, s.Tenant, nanos(s.CreatedAt), doc); err != nil {
		return translate(err, "create subscription "+s.ID)
	}
	return translate(tx.Commit(), "create subscription")
}

// GetSubscription returns a subscription; ENOTFOUND for an unknown id.
func (db *DB) GetSubscription(ctx context.Context, id string) (*audit.Subscription, error) {
	var doc []byte
	err := db.meta.r.QueryRowContext(ctx, `SELECT doc FROM alert_subscriptions WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("webhook", id)
	}
	if err != nil {
		return nil, translate(err, "get subscription "+id)
	}
	var s audit.Subscription
	if err := json.Unmarshal(doc, &s); err != nil {
		return nil, fmt.Errorf("decode subscription %s: %w", id, err)
	}
	return &s, nil
}

// ListSubscriptions returns the subscriptions of tenant ("" for the
// installation-wide ones), or with all every subscription, oldest first.
func (db *DB) ListSubscriptions(ctx context.Context, tenant string, all bool) ([]audit.Subscription, error) {
	q, args := `SELECT doc FROM alert_subscriptions WHERE tenant = ? ORDER BY created_at, id`, []any{tenant}
	if all {
		q, args = `SELECT doc FROM alert_subscriptions ORDER BY created_at, id`, nil
	}
	rows, err := db.meta.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, translate(err, "list subscriptions")
	}
	defer rows.Close()
	out := []audit.Subscription{}
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, translate(err, "list subscriptions")
		}
		var s audit.Subscription
		if err := json.Unmarshal(doc, &s); err != nil {
			return nil, fmt.Errorf("decode subscription: %w", err)
		}
		out = append(out, s)
	}
	return out, translate(rows.Err(), "list subscriptions")
}

// UpdateSubscription replaces a subscription's document; ENOTFOUND for an
// unknown id. Its id and tenant never change.
func (db *DB) UpdateSubscription(ctx context.Context, s audit.Subscription) error {
	doc, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode subscription %s: %w", s.ID, err)
	}
	res, err := db.meta.w.ExecContext(ctx, `UPDATE alert_subscriptions SET doc = ? WHERE id = ? AND tenant = ?`, doc, s.ID, s.Tenant)
	if err != nil {
		return translate(err, "update subscription "+s.ID)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("webhook", s.ID)
	}
	return nil
}

// DeleteSubscription deletes a subscription and its deliveries.
func (db *DB) DeleteSubscription(ctx context.Context, id string) error {
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "delete subscription")
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `DELETE FROM alert_subscriptions WHERE id = ?`, id)
	if err != nil {
		return translate(err, "delete subscription "+id)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("webhook", id)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM alert_items WHERE delivery_id IN (SELECT id FROM alert_deliveries WHERE sub_id = ?)`, id); err != nil {
		return translate(err, "delete items of "+id)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM alert_deliveries WHERE sub_id = ?`, id); err != nil {
		return translate(err, "delete deliveries of "+id)
	}
	return translate(tx.Commit(), "delete subscription")
}

// AlertCursor returns the Seq of the last change fanned out.
func (db *DB) AlertCursor(ctx context.Context) (int64, error) {
	var v int64
	err := db.meta.r.QueryRowContext(ctx, `SELECT value FROM alert_state WHERE name = 'cursor'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, translate(err, "read alert cursor")
}

// ChangesAfter returns up to limit changes with Seq > after, in order.
func (db *DB) ChangesAfter(ctx context.Context, after int64, limit int) ([]audit.Change, error) {
	rows, err := db.meta.r.QueryContext(ctx, `SELECT seq, tenant, kind, entity_id, change, severity, rule_id, family, at, doc
		FROM alert_changes WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, translate(err, "read changes")
	}
	defer rows.Close()
	var out []audit.Change
	for rows.Next() {
		var c audit.Change
		var change string
		var rank int
		var at int64
		if err := rows.Scan(&c.Seq, &c.Tenant, &c.Kind, &c.EntityID, &change, &rank, &c.RuleID, &c.Family, &at, &c.Doc); err != nil {
			return nil, translate(err, "read changes")
		}
		c.Change, c.Severity, c.At = audit.LifecycleChange(change), severityOfRank(rank), fromNanos(at)
		out = append(out, c)
	}
	return out, translate(rows.Err(), "read changes")
}

func severityOfRank(r int) audit.Severity {
	for _, s := range []audit.Severity{audit.SeverityLow, audit.SeverityMedium, audit.SeverityHigh, audit.SeverityCritical} {
		if s.Rank() == r {
			return s
		}
	}
	return ""
}

// Enqueue adds items to their subscriptions' open deliveries, bounds each
// subscription's outbox, advances the cursor to upTo (never back: a
// stale caller's upTo leaves it where it is) and deletes the
// changes up to it that no SIEM sink still needs, in one transaction.
func (db *DB) Enqueue(ctx context.Context, upTo int64, items []audit.OutboxItem, maxItems, maxQueued int, now time.Time) (audit.EnqueueResult, error) {
	var res audit.EnqueueResult
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return res, translate(err, "enqueue")
	}
	defer func() { _ = tx.Rollback() }()
	open := map[string]*struct {
		id string
		n  int
	}{}
	touched := map[string]bool{}
	for _, it := range items {
		o := open[it.SubscriptionID]
		if o == nil {
			o = &struct {
				id string
				n  int
			}{}
			err := tx.QueryRowContext(ctx, `SELECT id, items FROM alert_deliveries WHERE sub_id = ? AND status = 'open'
				ORDER BY created_at DESC LIMIT 1`, it.SubscriptionID).Scan(&o.id, &o.n)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return res, translate(err, "find open delivery")
			}
			open[it.SubscriptionID] = o
		}
		if o.id == "" || o.n >= maxItems {
			o.id, o.n = db.alertIDs.New(now), 0
			if _, err := tx.ExecContext(ctx, `INSERT INTO alert_deliveries (id, sub_id, tenant, status, items, created_at)
				VALUES (?, ?, ?, 'open', 0, ?)`, o.id, it.SubscriptionID, it.Tenant, nanos(now)); err != nil {
				return res, translate(err, "open delivery")
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO alert_items (delivery_id, seq, doc) VALUES (?, ?, ?)`, o.id, it.Seq, it.Doc); err != nil {
			return res, translate(err, "enqueue item")
		}
		if _, err := tx.ExecContext(ctx, `UPDATE alert_deliveries SET items = items + 1 WHERE id = ?`, o.id); err != nil {
			return res, translate(err, "enqueue item")
		}
		o.n++
		touched[it.SubscriptionID] = true
	}
	for sub := range touched {
		n, err := dropOverflow(ctx, tx, sub, maxQueued, now)
		if err != nil {
			return res, err
		}
		res.Dropped += n
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO alert_state (name, value) VALUES ('cursor', ?)
		ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)`, upTo); err != nil {
		return res, translate(err, "advance alert cursor")
	}
	// A change a SIEM sink has not passed yet stays for it.
	if _, err := tx.ExecContext(ctx, `DELETE FROM alert_changes
		WHERE seq <= min(?, coalesce((SELECT min(changes_seq) FROM siem_cursors), ?))`, upTo, upTo); err != nil {
		return res, translate(err, "delete enqueued changes")
	}
	return res, translate(tx.Commit(), "enqueue")
}

// dropOverflow moves a subscription's oldest queued deliveries (pending,
// then open) to dead letters while it holds more than maxQueued items, and
// returns how many items it moved.
func dropOverflow(ctx context.Context, tx *sql.Tx, sub string, maxQueued int, now time.Time) (int, error) {
	if maxQueued <= 0 {
		return 0, nil
	}
	dropped := 0
	for range 1000 {
		var queued int
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(items), 0) FROM alert_deliveries
			WHERE sub_id = ? AND status IN ('open', 'pending')`, sub).Scan(&queued); err != nil {
			return dropped, translate(err, "count queued items")
		}
		if queued <= maxQueued {
			return dropped, nil
		}
		var id string
		var n int
		err := tx.QueryRowContext(ctx, `SELECT id, items FROM alert_deliveries WHERE sub_id = ? AND status IN ('open', 'pending')
			ORDER BY status = 'open', created_at, id LIMIT 1`, sub).Scan(&id, &n)
		if err != nil {
			return dropped, translate(err, "find oldest delivery")
		}
		// An open delivery keeps its items (it has no body yet): a replay
		// reopens it and the worker seals it again.
		if _, err := tx.ExecContext(ctx, `UPDATE alert_deliveries SET status = 'dead', last_error = ? WHERE id = ?`,
			"dropped: the webhook's outbox was full", id); err != nil {
			return dropped, translate(err, "drop delivery")
		}
		dropped += n
	}
	return dropped, nil
}

// OpenDeliveries returns open deliveries created before createdBefore or
// holding at least maxItems, with their items in Seq order.
func (db *DB) OpenDeliveries(ctx context.Context, createdBefore time.Time, maxItems, limit int) ([]audit.Delivery, error) {
	ds, err := db.queryDeliveries(ctx, db.meta.r, `WHERE status = 'open' AND (created_at < ? OR items >= ?) ORDER BY created_at LIMIT ?`,
		nanos(createdBefore), maxItems, limit)
	if err != nil {
		return nil, err
	}
	for i := range ds {
		if ds[i].ItemDocs, err = db.itemDocs(ctx, db.meta.r, ds[i].ID); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

func (db *DB) itemDocs(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, id string) ([][]byte, error) {
	rows, err := q.QueryContext(ctx, `SELECT doc FROM alert_items WHERE delivery_id = ? ORDER BY seq`, id)
	if err != nil {
		return nil, translate(err, "read items of "+id)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, translate(err, "read items of "+id)
		}
		out = append(out, doc)
	}
	return out, translate(rows.Err(), "read items of "+id)
}

// SealDelivery fixes an open delivery's body and makes it pending, due now.
// The items are dropped: the body carries them. ENOTFOUND when the delivery
// is not open (another seal or a drop came first).
func (db *DB) SealDelivery(ctx context.Context, id string, body []byte, now time.Time) error {
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "seal delivery")
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `UPDATE alert_deliveries SET status = 'pending', body = ?, retry_from = ?, next_at = ?
		WHERE id = ? AND status = 'open'`, body, nanos(now), nanos(now), id)
	if err != nil {
		return translate(err, "seal delivery "+id)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("open delivery", id)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM alert_items WHERE delivery_id = ?`, id); err != nil {
		return translate(err, "seal delivery "+id)
	}
	return translate(tx.Commit(), "seal delivery")
}

// DueDeliveries returns pending deliveries due at now with their bodies.
func (db *DB) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]audit.Delivery, error) {
	return db.queryDeliveries(ctx, db.meta.r, `INDEXED BY alert_deliveries_due WHERE status = 'pending' AND next_at <= ? ORDER BY next_at LIMIT ?`,
		nanos(now), limit)
}

// RecordAttempt stores the outcome of one attempt to send a pending delivery.
func (db *DB) RecordAttempt(ctx context.Context, id string, r audit.AttemptResult) error {
	status := audit.DeliveryPending
	var delivered any
	switch {
	case r.Delivered:
		status, delivered = audit.DeliveryDelivered, nanos(r.At)
	case r.Dead:
		status = audit.DeliveryDead
	}
	res, err := db.meta.w.ExecContext(ctx, `UPDATE alert_deliveries SET status = ?, attempts = attempts + 1, next_at = ?,
		delivered_at = ?, last_status = ?, last_error = ? WHERE id = ? AND status = 'pending'`,
		string(status), nanos(r.NextAt), delivered, r.StatusCode, truncate(r.Error, 500), id)
	if err != nil {
		return translate(err, "record attempt of "+id)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("pending delivery", id)
	}
	return nil
}

// Postpone moves a pending delivery's next attempt to next.
func (db *DB) Postpone(ctx context.Context, id string, next time.Time) error {
	_, err := db.meta.w.ExecContext(ctx, `UPDATE alert_deliveries SET next_at = ? WHERE id = ? AND status = 'pending'`, nanos(next), id)
	return translate(err, "postpone delivery "+id)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// GetDelivery returns a delivery (without its body); ENOTFOUND for an unknown id.
func (db *DB) GetDelivery(ctx context.Context, id string) (*audit.Delivery, error) {
	ds, err := db.queryDeliveries(ctx, db.meta.r, `WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(ds) == 0 {
		return nil, notFound("delivery", id)
	}
	ds[0].Body = nil
	return &ds[0], nil
}

// ListDeliveries returns a subscription's deliveries, newest first.
func (db *DB) ListDeliveries(ctx context.Context, f audit.DeliveryFilter) ([]audit.Delivery, error) {
	limit := pageLimit(f.Limit)
	var ds []audit.Delivery
	var err error
	if f.Status != "" {
		ds, err = db.queryDeliveries(ctx, db.meta.r, `WHERE sub_id = ? AND status = ? ORDER BY created_at DESC, id DESC LIMIT ?`,
			f.SubscriptionID, string(f.Status), limit)
	} else {
		ds, err = db.queryDeliveries(ctx, db.meta.r, `WHERE sub_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`, f.SubscriptionID, limit)
	}
	for i := range ds {
		ds[i].Body = nil
	}
	if ds == nil {
		ds = []audit.Delivery{}
	}
	return ds, err
}

// ReplayDelivery makes a dead delivery pending again, due now, with a fresh
// retry window. A delivery dropped before it was sealed is sealed again by
// the worker (it goes back to open with its items).
func (db *DB) ReplayDelivery(ctx context.Context, id string, now time.Time) (*audit.Delivery, error) {
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, translate(err, "replay delivery")
	}
	defer func() { _ = tx.Rollback() }()
	ds, err := db.queryDeliveries(ctx, tx, `WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(ds) == 0 {
		return nil, notFound("delivery", id)
	}
	d := ds[0]
	if d.Status != audit.DeliveryDead {
		return nil, invalid("status", "delivery %s is %s; only dead deliveries are replayed", id, d.Status)
	}
	status := audit.DeliveryPending
	if d.Body == nil {
		status = audit.DeliveryOpen
	}
	if _, err := tx.ExecContext(ctx, `UPDATE alert_deliveries SET status = ?, attempts = 0, retry_from = ?, next_at = ?,
		last_error = '', last_status = 0 WHERE id = ?`, string(status), nanos(now), nanos(now), id); err != nil {
		return nil, translate(err, "replay delivery "+id)
	}
	if err := tx.Commit(); err != nil {
		return nil, translate(err, "replay delivery")
	}
	d.Status, d.Attempts, d.RetryFrom, d.NextAt, d.LastError, d.LastStatus, d.Body = status, 0, now.UTC(), now.UTC(), "", 0, nil
	return &d, nil
}

// PruneDeliveries deletes delivered deliveries older than before and, per
// subscription, dead letters beyond the newest keepDead.
func (db *DB) PruneDeliveries(ctx context.Context, before time.Time, keepDead int) error {
	if _, err := db.meta.w.ExecContext(ctx, `DELETE FROM alert_deliveries WHERE status = 'delivered' AND delivered_at < ?`, nanos(before)); err != nil {
		return translate(err, "prune delivered")
	}
	_, err := db.meta.w.ExecContext(ctx, `DELETE FROM alert_deliveries WHERE id IN (
		SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY sub_id ORDER BY created_at DESC, id DESC) AS n
			FROM alert_deliveries WHERE status = 'dead') WHERE n > ?)`, keepDead)
	if err != nil {
		return translate(err, "prune dead letters")
	}
	_, err = db.meta.w.ExecContext(ctx, `DELETE FROM alert_items WHERE delivery_id NOT IN (SELECT id FROM alert_deliveries)`)
	return translate(err, "prune items")
}

type queryer interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

func (db *DB) queryDeliveries(ctx context.Context, q queryer, where string, args ...any) ([]audit.Delivery, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, sub_id, tenant, status, items, attempts, created_at, retry_from, next_at,
		delivered_at, last_status, last_error, body FROM alert_deliveries `+where, args...)
	if err != nil {
		return nil, translate(err, "read deliveries")
	}
	defer rows.Close()
	var out []audit.Delivery
	for rows.Next() {
		var d audit.Delivery
		var status string
		var created, retry, next int64
		var delivered sql.NullInt64
		if err := rows.Scan(&d.ID, &d.SubscriptionID, &d.Tenant, &status, &d.Items, &d.Attempts, &created, &retry, &next,
			&delivered, &d.LastStatus, &d.LastError, &d.Body); err != nil {
			return nil, translate(err, "read deliveries")
		}
		d.Status, d.CreatedAt, d.RetryFrom, d.NextAt, d.DeliveredAt = audit.DeliveryStatus(status), fromNanos(created),
			fromNanos(retry), fromNanos(next), fromOptNanos(delivered)
		out = append(out, d)
	}
	return out, translate(rows.Err(), "read deliveries")
}
