package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.ActionStore = (*Store)(nil)

// CreateAction stores a response action and, in the same transaction,
// records its alert change (kind action, opened); an existing (tenant, id)
// is left as it is and reports false.
func (s *Store) CreateAction(ctx context.Context, a audit.ResponseAction) (bool, error) {
	if a.Tenant == "" || a.ID == "" {
		return false, invalid("id", "a response action needs a tenant and an id")
	}
	if err := a.Validate(); err != nil {
		return false, err
	}
	if a.Status == "" {
		a.Status = audit.ActionRequested
	}
	doc, err := json.Marshal(a)
	if err != nil {
		return false, fmt.Errorf("encode response action %s: %w", a.ID, err)
	}
	var created bool
	err = s.inTx(ctx, "create response action "+a.ID, func(tx pgx.Tx) error {
		created = false
		tag, err := tx.Exec(ctx, `INSERT INTO response_actions (tenant, id, created_ns, doc) VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant, id) DO NOTHING`, a.Tenant, a.ID, nanos(a.CreatedAt), doc)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		// The same seq protocol as recordChange: seq order is commit order.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, s.changesLock()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `WITH next AS (UPDATE counters SET value = value + 1 WHERE name = 'changes' RETURNING value)
			INSERT INTO alert_changes (seq, tenant, kind, entity_id, change, severity, rule_id, family, at_ns, doc)
			SELECT value, $1, $2, $3, $4, $5, $6, '', $7, $8 FROM next`,
			a.Tenant, audit.KindAction, a.ID, string(audit.ChangeOpened), a.Severity.Rank(), a.RuleID, nanos(s.opts.Now()), doc); err != nil {
			return fmt.Errorf("record change of response action %s: %w", a.ID, err)
		}
		created = true
		return nil
	})
	return created, err
}

// GetAction returns a tenant's response action; ENOTFOUND for an unknown
// id or one of another tenant.
func (s *Store) GetAction(ctx context.Context, tenant, id string) (*audit.ResponseAction, error) {
	if tenant == "" {
		return nil, notFound("response action", id)
	}
	return getAction(ctx, s.pool, tenant, id, "")
}

// actionRower is a pool or a transaction.
type actionRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func getAction(ctx context.Context, q actionRower, tenant, id, suffix string) (*audit.ResponseAction, error) {
	var doc []byte
	err := q.QueryRow(ctx, `SELECT doc FROM response_actions WHERE tenant = $1 AND id = $2`+suffix, tenant, id).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("response action", id)
	}
	if err != nil {
		return nil, translate(err, "get response action "+id)
	}
	var a audit.ResponseAction
	if err := json.Unmarshal(doc, &a); err != nil {
		return nil, fmt.Errorf("decode response action %s: %w", id, err)
	}
	return &a, nil
}

// ListActions returns a tenant's response actions, newest first, at most
// limit (the default page size when 0, capped at audit.MaxPageSize).
func (s *Store) ListActions(ctx context.Context, tenant string, limit int) ([]audit.ResponseAction, error) {
	switch {
	case limit <= 0:
		limit = audit.DefaultPageSize
	case limit > audit.MaxPageSize:
		limit = audit.MaxPageSize
	}
	rows, err := s.pool.Query(ctx, `SELECT doc FROM response_actions WHERE tenant = $1
		ORDER BY created_ns DESC, id DESC LIMIT $2`, tenant, limit)
	if err != nil {
		return nil, translate(err, "list response actions")
	}
	docs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, translate(err, "list response actions")
	}
	out := make([]audit.ResponseAction, 0, len(docs))
	for _, doc := range docs {
		var a audit.ResponseAction
		if err := json.Unmarshal(doc, &a); err != nil {
			return nil, fmt.Errorf("decode response action: %w", err)
		}
		out = append(out, a)
	}
	return out, nil
}

// UpdateAction records the SaaS's report on an action (acknowledged,
// succeeded or failed; EINVALID otherwise). A final outcome is not changed
// by a later acknowledgement. ENOTFOUND for an unknown id or one of another
// tenant.
func (s *Store) UpdateAction(ctx context.Context, tenant, id string, status audit.ActionStatus, message string, at time.Time) (*audit.ResponseAction, error) {
	switch status {
	case audit.ActionAcknowledged, audit.ActionSucceeded, audit.ActionFailed:
	default:
		return nil, invalid("status", "status must be acknowledged, succeeded or failed")
	}
	if tenant == "" {
		return nil, notFound("response action", id)
	}
	var out *audit.ResponseAction
	err := s.inTx(ctx, "update response action "+id, func(tx pgx.Tx) error {
		a, err := getAction(ctx, tx, tenant, id, " FOR UPDATE")
		if err != nil {
			return err
		}
		final := a.Status == audit.ActionSucceeded || a.Status == audit.ActionFailed
		if !(final && status == audit.ActionAcknowledged) {
			a.Status, a.Message = status, message
		}
		a.UpdatedAt = at.UTC()
		doc, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("encode response action %s: %w", id, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE response_actions SET doc = $1 WHERE tenant = $2 AND id = $3`, doc, tenant, id); err != nil {
			return err
		}
		out = a
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
