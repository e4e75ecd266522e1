package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.AlertStore = (*Store)(nil)

// maxListedSubscriptions bounds ListSubscriptions; CreateSubscription's
// per-tenant limit keeps real installations far below it.
const maxListedSubscriptions = 100000

// maxAlertErrorBytes bounds a delivery's stored last error.
const maxAlertErrorBytes = 500

// enqueueLock is the advisory lock Enqueue holds until its transaction
// ends, so two fan-outs never fill the same open delivery past maxItems or
// bound an outbox from a stale count.
func (s *Store) enqueueLock() string { return "vigil.alert_enqueue." + s.schema }

// CreateSubscription stores a new subscription, refusing (ECONFLICT) one
// beyond maxPerTenant of its tenant ("" counts as one tenant) and one whose
// id exists.
func (s *Store) CreateSubscription(ctx context.Context, sub audit.Subscription, maxPerTenant int) error {
	if sub.ID == "" {
		return invalid("id", "subscription id is required")
	}
	doc, err := json.Marshal(sub)
	if err != nil {
		return fmt.Errorf("encode subscription %s: %w", sub.ID, err)
	}
	return s.inTx(ctx, "create subscription "+sub.ID, func(tx pgx.Tx) error {
		// Serialize creations of one tenant so the limit holds.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`,
			"vigil.alert_subscriptions."+s.schema+"."+sub.Tenant); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM alert_subscriptions WHERE tenant = $1`, sub.Tenant).Scan(&n); err != nil {
			return err
		}
		if maxPerTenant > 0 && n >= maxPerTenant {
			return &audit.Error{Code: audit.ECONFLICT, Message: fmt.Sprintf("at most %d webhooks per tenant; delete one first", maxPerTenant)}
		}
		_, err := tx.Exec(ctx, `INSERT INTO alert_subscriptions (id, tenant, created_ns, doc) VALUES ($1, $2, $3, $4)`,
			sub.ID, sub.Tenant, nanos(sub.CreatedAt), doc)
		return err
	})
}

// GetSubscription returns a subscription; ENOTFOUND for an unknown id.
func (s *Store) GetSubscription(ctx context.Context, id string) (*audit.Subscription, error) {
	var doc []byte
	err := s.pool.QueryRow(ctx, `SELECT doc FROM alert_subscriptions WHERE id = $1`, id).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("webhook", id)
	}
	if err != nil {
		return nil, translate(err, "get subscription "+id)
	}
	var sub audit.Subscription
	if err := json.Unmarshal(doc, &sub); err != nil {
		return nil, fmt.Errorf("decode subscription %s: %w", id, err)
	}
	return &sub, nil
}

// ListSubscriptions returns the subscriptions of tenant ("" for the
// installation-wide ones), or with all every subscription, oldest first.
func (s *Store) ListSubscriptions(ctx context.Context, tenant string, all bool) ([]audit.Subscription, error) {
	q, args := `SELECT doc FROM alert_subscriptions WHERE tenant = $1 ORDER BY created_ns, id LIMIT $2`, []any{tenant, maxListedSubscriptions}
	if all {
		q, args = `SELECT doc FROM alert_subscriptions ORDER BY created_ns, id LIMIT $1`, []any{maxListedSubscriptions}
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, translate(err, "list subscriptions")
	}
	docs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, translate(err, "list subscriptions")
	}
	out := make([]audit.Subscription, 0, len(docs))
	for _, doc := range docs {
		var sub audit.Subscription
		if err := json.Unmarshal(doc, &sub); err != nil {
			return nil, fmt.Errorf("decode subscription: %w", err)
		}
		out = append(out, sub)
	}
	return out, nil
}

// UpdateSubscription replaces a subscription's document; ENOTFOUND for an
// unknown id (or one of another tenant). Its id and tenant never change.
func (s *Store) UpdateSubscription(ctx context.Context, sub audit.Subscription) error {
	doc, err := json.Marshal(sub)
	if err != nil {
		return fmt.Errorf("encode subscription %s: %w", sub.ID, err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE alert_subscriptions SET doc = $1 WHERE id = $2 AND tenant = $3`, doc, sub.ID, sub.Tenant)
	if err != nil {
		return translate(err, "update subscription "+sub.ID)
	}
	if tag.RowsAffected() == 0 {
		return notFound("webhook", sub.ID)
	}
	return nil
}

// DeleteSubscription deletes a subscription and its deliveries; ENOTFOUND
// for an unknown id.
func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	return s.inTx(ctx, "delete subscription "+id, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM alert_subscriptions WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("webhook", id)
		}
		_, err = tx.Exec(ctx, `WITH gone AS (DELETE FROM alert_deliveries WHERE sub_id = $1 RETURNING id)
			DELETE FROM alert_items WHERE delivery_id IN (SELECT id FROM gone)`, id)
		return err
	})
}

// AlertCursor returns the Seq of the last change fanned out (0 for none).
func (s *Store) AlertCursor(ctx context.Context) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT value FROM counters WHERE name = 'alert_cursor'`).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return v, translate(err, "read alert cursor")
}

// ChangesAfter returns up to limit changes with Seq > after, in Seq order.
func (s *Store) ChangesAfter(ctx context.Context, after int64, limit int) ([]audit.Change, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, tenant, kind, entity_id, change, severity, rule_id, family, at_ns, doc
		FROM alert_changes WHERE seq > $1 ORDER BY seq LIMIT $2`, after, max(limit, 0))
	if err != nil {
		return nil, translate(err, "read changes")
	}
	defer rows.Close()
	var out []audit.Change
	for rows.Next() {
		var c audit.Change
		var change string
		var rank int16
		var at int64
		if err := rows.Scan(&c.Seq, &c.Tenant, &c.Kind, &c.EntityID, &change, &rank, &c.RuleID, &c.Family, &at, &c.Doc); err != nil {
			return nil, translate(err, "read changes")
		}
		c.Change, c.Severity, c.At = audit.LifecycleChange(change), alertSeverityOfRank(int(rank)), fromNanos(at)
		out = append(out, c)
	}
	return out, translate(rows.Err(), "read changes")
}

// alertSeverityOfRank is the severity whose Rank is r, or "".
func alertSeverityOfRank(r int) audit.Severity {
	for _, sev := range []audit.Severity{audit.SeverityLow, audit.SeverityMedium, audit.SeverityHigh, audit.SeverityCritical} {
		if sev.Rank() == r {
			return sev
		}
	}
	return ""
}

// Enqueue adds items to their subscriptions' open deliveries (opening one
// with a fresh id at maxItems), moves each touched subscription's oldest
// queued deliveries to dead letters while it holds more than maxQueued
// items, sets the alert cursor to the greater of itself and upTo and
// deletes the changes up to the cursor that no SIEM sink still needs — in
// one transaction. A stale caller (upTo behind the cursor) still has its
// items enqueued.
func (s *Store) Enqueue(ctx context.Context, upTo int64, items []audit.OutboxItem, maxItems, maxQueued int, now time.Time) (audit.EnqueueResult, error) {
	var res audit.EnqueueResult
	err := s.inTx(ctx, "enqueue", func(tx pgx.Tx) error {
		res = audit.EnqueueResult{}
		// Ids are made inside: a retried transaction makes new ones.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, s.enqueueLock()); err != nil {
			return err
		}
		type openDelivery struct {
			id string
			n  int
		}
		open := map[string]*openDelivery{}
		var subs []string // touched, in first-seen order
		var itemDelivery []string
		var itemSeq []int64
		var itemDoc [][]byte
		added := map[string]int{}
		for _, it := range items {
			o := open[it.SubscriptionID]
			if o == nil {
				o = &openDelivery{}
				err := tx.QueryRow(ctx, `SELECT id, items FROM alert_deliveries WHERE sub_id = $1 AND status = 'open'
					ORDER BY created_ns DESC, id DESC LIMIT 1 FOR UPDATE`, it.SubscriptionID).Scan(&o.id, &o.n)
				if err != nil && !errors.Is(err, pgx.ErrNoRows) {
					return fmt.Errorf("find open delivery: %w", err)
				}
				open[it.SubscriptionID] = o
				subs = append(subs, it.SubscriptionID)
			}
			if o.id == "" || o.n >= maxItems {
				o.id, o.n = s.alertIDs.New(now), 0
				if _, err := tx.Exec(ctx, `INSERT INTO alert_deliveries (id, sub_id, tenant, status, items, created_ns)
					VALUES ($1, $2, $3, 'open', 0, $4)`, o.id, it.SubscriptionID, it.Tenant, nanos(now)); err != nil {
					return fmt.Errorf("open delivery: %w", err)
				}
			}
			doc := it.Doc
			if doc == nil {
				doc = []byte{} // a NULL element would break the column's NOT NULL
			}
			itemDelivery, itemSeq, itemDoc = append(itemDelivery, o.id), append(itemSeq, it.Seq), append(itemDoc, doc)
			added[o.id]++
			o.n++
		}
		if len(itemDelivery) > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO alert_items (delivery_id, seq, doc)
				SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[])`, itemDelivery, itemSeq, itemDoc); err != nil {
				return fmt.Errorf("enqueue items: %w", err)
			}
			dids, counts := make([]string, 0, len(added)), make([]int32, 0, len(added))
			for id, n := range added {
				dids, counts = append(dids, id), append(counts, int32(n))
			}
			if _, err := tx.Exec(ctx, `UPDATE alert_deliveries d SET items = d.items + c.n
				FROM unnest($1::text[], $2::integer[]) AS c(id, n) WHERE d.id = c.id`, dids, counts); err != nil {
				return fmt.Errorf("count enqueued items: %w", err)
			}
		}
		if maxQueued > 0 {
			for _, sub := range subs {
				n, err := dropOverflow(ctx, tx, sub, maxQueued)
				if err != nil {
					return err
				}
				res.Dropped += n
			}
		}
		var cursor int64
		if err := tx.QueryRow(ctx, `INSERT INTO counters (name, value) VALUES ('alert_cursor', $1)
			ON CONFLICT (name) DO UPDATE SET value = greatest(counters.value, excluded.value) RETURNING value`, upTo).Scan(&cursor); err != nil {
			return fmt.Errorf("advance alert cursor: %w", err)
		}
		// A change a SIEM sink has not passed yet stays for it.
		if _, err := tx.Exec(ctx, `DELETE FROM alert_changes
			WHERE seq <= least($1, coalesce((SELECT min(changes_seq) FROM siem_cursors), $1))`, cursor); err != nil {
			return fmt.Errorf("delete enqueued changes: %w", err)
		}
		return nil
	})
	return res, err
}

// dropOverflow moves a subscription's oldest queued deliveries (pending,
// then open) to dead letters while it holds more than maxQueued items, and
// returns how many items it moved. An open delivery keeps its items (it has
// no body yet): a replay reopens it and the worker seals it again.
func dropOverflow(ctx context.Context, tx pgx.Tx, sub string, maxQueued int) (int, error) {
	rows, err := tx.Query(ctx, `WITH q AS (
			SELECT id, items,
				sum(items) OVER (ORDER BY status = 'open', created_ns, id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before,
				sum(items) OVER () AS total
			FROM alert_deliveries WHERE sub_id = $1 AND status IN ('open', 'pending'))
		UPDATE alert_deliveries d SET status = 'dead', last_error = $3
		FROM q WHERE d.id = q.id AND q.total - coalesce(q.before, 0) > $2
		RETURNING q.items`, sub, maxQueued, "dropped: the webhook's outbox was full")
	if err != nil {
		return 0, fmt.Errorf("drop overflow of %s: %w", sub, err)
	}
	ns, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return 0, fmt.Errorf("drop overflow of %s: %w", sub, err)
	}
	dropped := 0
	for _, n := range ns {
		dropped += int(n)
	}
	return dropped, nil
}

// OpenDeliveries returns up to limit open deliveries created before
// createdBefore or holding at least maxItems, oldest first, with their
// items in Seq order.
func (s *Store) OpenDeliveries(ctx context.Context, createdBefore time.Time, maxItems, limit int) ([]audit.Delivery, error) {
	ds, err := s.queryDeliveries(ctx, s.pool, `WHERE status = 'open' AND (created_ns < $1 OR items >= $2) ORDER BY created_ns, id LIMIT $3`,
		nanos(createdBefore), maxItems, max(limit, 0))
	if err != nil || len(ds) == 0 {
		return ds, err
	}
	ids := make([]string, len(ds))
	at := make(map[string]int, len(ds))
	for i, d := range ds {
		ids[i], at[d.ID] = d.ID, i
	}
	rows, err := s.pool.Query(ctx, `SELECT delivery_id, doc FROM alert_items WHERE delivery_id = ANY($1) ORDER BY delivery_id, seq`, ids)
	if err != nil {
		return nil, translate(err, "read open deliveries' items")
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var doc []byte
		if err := rows.Scan(&id, &doc); err != nil {
			return nil, translate(err, "read open deliveries' items")
		}
		if i, ok := at[id]; ok {
			ds[i].ItemDocs = append(ds[i].ItemDocs, doc)
		}
	}
	return ds, translate(rows.Err(), "read open deliveries' items")
}

// SealDelivery fixes an open delivery's body and makes it pending, due now,
// with its retry window starting now. The items are dropped: the body
// carries them. ENOTFOUND when the delivery is not open (another seal or a
// drop came first).
func (s *Store) SealDelivery(ctx context.Context, id string, body []byte, now time.Time) error {
	if body == nil {
		body = []byte{}
	}
	return s.inTx(ctx, "seal delivery "+id, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE alert_deliveries SET status = 'pending', body = $1, retry_from_ns = $2, next_ns = $2
			WHERE id = $3 AND status = 'open'`, body, nanos(now), id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("open delivery", id)
		}
		_, err = tx.Exec(ctx, `DELETE FROM alert_items WHERE delivery_id = $1`, id)
		return err
	})
}

// DueDeliveries returns up to limit pending deliveries due at now, oldest
// due first, with their bodies.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]audit.Delivery, error) {
	return s.queryDeliveries(ctx, s.pool, `WHERE status = 'pending' AND next_ns <= $1 ORDER BY next_ns, id LIMIT $2`,
		nanos(now), max(limit, 0))
}

// RecordAttempt stores the outcome of one attempt to send a pending
// delivery: delivered, dead, or pending again until r.NextAt. ENOTFOUND
// when the delivery is not pending.
func (s *Store) RecordAttempt(ctx context.Context, id string, r audit.AttemptResult) error {
	status := audit.DeliveryPending
	var delivered *int64
	switch {
	case r.Delivered:
		status = audit.DeliveryDelivered
		at := nanos(r.At)
		delivered = &at
	case r.Dead:
		status = audit.DeliveryDead
	}
	tag, err := s.pool.Exec(ctx, `UPDATE alert_deliveries SET status = $1, attempts = attempts + 1, next_ns = $2,
		delivered_ns = $3, last_status = $4, last_error = $5 WHERE id = $6 AND status = 'pending'`,
		string(status), nanos(r.NextAt), delivered, r.StatusCode, cleanAlertError(r.Error, maxAlertErrorBytes), id)
	if err != nil {
		return translate(err, "record attempt of "+id)
	}
	if tag.RowsAffected() == 0 {
		return notFound("pending delivery", id)
	}
	return nil
}

// Postpone moves a pending delivery's next attempt to next without
// counting an attempt; a delivery that is not pending is left alone.
func (s *Store) Postpone(ctx context.Context, id string, next time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE alert_deliveries SET next_ns = $1 WHERE id = $2 AND status = 'pending'`, nanos(next), id)
	return translate(err, "postpone delivery "+id)
}

// cleanAlertError makes a receiver's error text storable: PostgreSQL text
// refuses NUL and invalid UTF-8, which would leave the delivery wedged in
// pending. It drops NULs, replaces invalid bytes and cuts to at most n
// bytes without splitting a character.
func cleanAlertError(s string, n int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// GetDelivery returns a delivery (without its body); ENOTFOUND for an
// unknown id.
func (s *Store) GetDelivery(ctx context.Context, id string) (*audit.Delivery, error) {
	ds, err := s.queryDeliveries(ctx, s.pool, `WHERE id = $1`, id)
	if err != nil {
		return nil, err
	}
	if len(ds) == 0 {
		return nil, notFound("delivery", id)
	}
	ds[0].Body = nil
	return &ds[0], nil
}

// ListDeliveries returns a subscription's deliveries (of one status, when
// the filter names one), newest first, without bodies.
func (s *Store) ListDeliveries(ctx context.Context, f audit.DeliveryFilter) ([]audit.Delivery, error) {
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = audit.DefaultPageSize
	case limit > audit.MaxPageSize:
		limit = audit.MaxPageSize
	}
	var ds []audit.Delivery
	var err error
	if f.Status != "" {
		ds, err = s.queryDeliveries(ctx, s.pool, `WHERE sub_id = $1 AND status = $2 ORDER BY created_ns DESC, id DESC LIMIT $3`,
			f.SubscriptionID, string(f.Status), limit)
	} else {
		ds, err = s.queryDeliveries(ctx, s.pool, `WHERE sub_id = $1 ORDER BY created_ns DESC, id DESC LIMIT $2`, f.SubscriptionID, limit)
	}
	if err != nil {
		return nil, err
	}
	for i := range ds {
		ds[i].Body = nil
	}
	if ds == nil {
		ds = []audit.Delivery{}
	}
	return ds, nil
}

// ReplayDelivery makes a dead delivery pending again, due now, with a fresh
// retry window; ENOTFOUND for an unknown id, EINVALID when it is not dead.
// A delivery dropped before it was sealed goes back to open with its items,
// and the worker seals it again.
func (s *Store) ReplayDelivery(ctx context.Context, id string, now time.Time) (*audit.Delivery, error) {
	var d audit.Delivery
	err := s.inTx(ctx, "replay delivery "+id, func(tx pgx.Tx) error {
		ds, err := s.queryDeliveries(ctx, tx, `WHERE id = $1 FOR UPDATE`, id)
		if err != nil {
			return err
		}
		if len(ds) == 0 {
			return notFound("delivery", id)
		}
		d = ds[0]
		if d.Status != audit.DeliveryDead {
			return invalid("status", "delivery %s is %s; only dead deliveries are replayed", id, d.Status)
		}
		status := audit.DeliveryPending
		if d.Body == nil {
			status = audit.DeliveryOpen
		}
		if _, err := tx.Exec(ctx, `UPDATE alert_deliveries SET status = $1, attempts = 0, retry_from_ns = $2, next_ns = $2,
			last_error = '', last_status = 0 WHERE id = $3`, string(status), nanos(now), id); err != nil {
			return err
		}
		d.Status, d.Attempts, d.RetryFrom, d.NextAt, d.LastError, d.LastStatus, d.Body = status, 0, now.UTC(), now.UTC(), "", 0, nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// PruneDeliveries deletes delivered deliveries older than before and, per
// subscription, dead letters beyond the newest keepDead, with their items.
func (s *Store) PruneDeliveries(ctx context.Context, before time.Time, keepDead int) error {
	return s.inTx(ctx, "prune deliveries", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `WITH gone AS (DELETE FROM alert_deliveries WHERE status = 'delivered' AND delivered_ns < $1 RETURNING id)
			DELETE FROM alert_items WHERE delivery_id IN (SELECT id FROM gone)`, nanos(before)); err != nil {
			return fmt.Errorf("prune delivered: %w", err)
		}
		_, err := tx.Exec(ctx, `WITH gone AS (DELETE FROM alert_deliveries WHERE id IN (
				SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY sub_id ORDER BY created_ns DESC, id DESC) AS n
					FROM alert_deliveries WHERE status = 'dead') ranked WHERE n > $1)
				RETURNING id)
			DELETE FROM alert_items WHERE delivery_id IN (SELECT id FROM gone)`, keepDead)
		if err != nil {
			return fmt.Errorf("prune dead letters: %w", err)
		}
		return nil
	})
}

// alertQuerier is a pool or a transaction.
type alertQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func (s *Store) queryDeliveries(ctx context.Context, q alertQuerier, where string, args ...any) ([]audit.Delivery, error) {
	rows, err := q.Query(ctx, `SELECT id, sub_id, tenant, status, items, attempts, created_ns, retry_from_ns, next_ns,
		delivered_ns, last_status, last_error, body FROM alert_deliveries `+where, args...)
	if err != nil {
		return nil, translate(err, "read deliveries")
	}
	defer rows.Close()
	var out []audit.Delivery
	for rows.Next() {
		var d audit.Delivery
		var status string
		var items, attempts, lastStatus int32
		var created, retry, next int64
		var delivered *int64
		if err := rows.Scan(&d.ID, &d.SubscriptionID, &d.Tenant, &status, &items, &attempts, &created, &retry, &next,
			&delivered, &lastStatus, &d.LastError, &d.Body); err != nil {
			return nil, translate(err, "read deliveries")
		}
		d.Status, d.Items, d.Attempts, d.LastStatus = audit.DeliveryStatus(status), int(items), int(attempts), int(lastStatus)
		d.CreatedAt, d.RetryFrom, d.NextAt = fromNanos(created), fromNanos(retry), fromNanos(next)
		if delivered != nil {
			t := fromNanos(*delivered)
			d.DeliveredAt = &t
		}
		out = append(out, d)
	}
	return out, translate(rows.Err(), "read deliveries")
}
