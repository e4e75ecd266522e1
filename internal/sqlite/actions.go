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

// CreateAction stores a response action and records its alert change in
// the same transaction; an existing (tenant, id) is left as it is.
func (db *DB) CreateAction(ctx context.Context, a audit.ResponseAction) (bool, error) {
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
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return false, translate(err, "create response action")
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `INSERT INTO response_actions (tenant, id, created_at, doc) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant, id) DO NOTHING`, a.Tenant, a.ID, nanos(a.CreatedAt), doc)
	if err != nil {
		return false, translate(err, "create response action "+a.ID)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO alert_changes (tenant, kind, entity_id, change, severity, rule_id, family, at, doc)
		VALUES (?, ?, ?, ?, ?, ?, '', ?, ?)`, a.Tenant, audit.KindAction, a.ID, string(audit.ChangeOpened), a.Severity.Rank(),
		a.RuleID, nanos(db.opts.Now()), doc); err != nil {
		return false, translate(err, "record change of response action "+a.ID)
	}
	return true, translate(tx.Commit(), "create response action")
}

func getAction(ctx context.Context, q querier, tenant, id string) (*audit.ResponseAction, error) {
	var doc []byte
	err := q.QueryRowContext(ctx, `SELECT doc FROM response_actions WHERE tenant = ? AND id = ?`, tenant, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
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

// GetAction returns a tenant's response action.
func (db *DB) GetAction(ctx context.Context, tenant, id string) (*audit.ResponseAction, error) {
	if tenant == "" {
		return nil, notFound("response action", id)
	}
	return getAction(ctx, db.meta.r, tenant, id)
}

// ListActions returns a tenant's response actions, newest first.
func (db *DB) ListActions(ctx context.Context, tenant string, limit int) ([]audit.ResponseAction, error) {
	rows, err := db.meta.r.QueryContext(ctx, `SELECT doc FROM response_actions WHERE tenant = ?
		ORDER BY created_at DESC, id DESC LIMIT ?`, tenant, pageLimit(limit))
	if err != nil {
		return nil, translate(err, "list response actions")
	}
	defer rows.Close()
	out := []audit.ResponseAction{}
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, translate(err, "list response actions")
		}
		var a audit.ResponseAction
		if err := json.Unmarshal(doc, &a); err != nil {
			return nil, fmt.Errorf("decode response action: %w", err)
		}
		out = append(out, a)
	}
	return out, translate(rows.Err(), "list response actions")
}

// UpdateAction records the SaaS's report on an action. A final outcome
// (succeeded, failed) is not changed by a later acknowledgement.
func (db *DB) UpdateAction(ctx context.Context, tenant, id string, status audit.ActionStatus, message string, at time.Time) (*audit.ResponseAction, error) {
	switch status {
	case audit.ActionAcknowledged, audit.ActionSucceeded, audit.ActionFailed:
	default:
		return nil, invalid("status", "status must be acknowledged, succeeded or failed")
	}
	if tenant == "" {
		return nil, notFound("response action", id)
	}
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, translate(err, "update response action")
	}
	defer func() { _ = tx.Rollback() }()
	a, err := getAction(ctx, tx, tenant, id)
	if err != nil {
		return nil, err
	}
	final := a.Status == audit.ActionSucceeded || a.Status == audit.ActionFailed
	if !(final && status == audit.ActionAcknowledged) {
		a.Status, a.Message = status, message
	}
	a.UpdatedAt = at.UTC()
	doc, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encode response action %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE response_actions SET doc = ? WHERE tenant = ? AND id = ?`, doc, tenant, id); err != nil {
		return nil, translate(err, "update response action "+id)
	}
	return a, translate(tx.Commit(), "update response action")
}
