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

var (
	_ audit.ViewerTokenStore = (*DB)(nil)
	_ audit.SavedSearchStore = (*DB)(nil)
)

// CreateViewerToken stores a viewer token's record; ECONFLICT for an existing id.
func (db *DB) CreateViewerToken(ctx context.Context, t audit.ViewerToken) error {
	if t.ID == "" || t.Tenant == "" {
		return invalid("id", "viewer token id and tenant are required")
	}
	t.RevokedAt = nil
	doc, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode viewer token %s: %w", t.ID, err)
	}
	_, err = db.meta.w.ExecContext(ctx, `INSERT INTO viewer_tokens (id, tenant, doc, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		t.ID, t.Tenant, doc, nanos(t.CreatedAt), nanos(t.ExpiresAt))
	return translate(err, "create viewer token "+t.ID)
}

func scanViewerToken(sc interface{ Scan(...any) error }) (audit.ViewerToken, error) {
	var t audit.ViewerToken
	var doc []byte
	var revoked sql.NullInt64
	if err := sc.Scan(&doc, &revoked); err != nil {
		return t, err
	}
	if err := json.Unmarshal(doc, &t); err != nil {
		return t, fmt.Errorf("decode viewer token: %w", err)
	}
	t.RevokedAt = fromOptNanos(revoked)
	return t, nil
}

// GetViewerToken returns a token's record, revoked or not; ENOTFOUND for an unknown id.
func (db *DB) GetViewerToken(ctx context.Context, id string) (*audit.ViewerToken, error) {
	t, err := scanViewerToken(db.meta.r.QueryRowContext(ctx, `SELECT doc, revoked_at FROM viewer_tokens WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("viewer token", id)
	}
	if err != nil {
		return nil, translate(err, "get viewer token "+id)
	}
	return &t, nil
}

// ListViewerTokens returns a tenant's tokens, newest first, at most limit.
func (db *DB) ListViewerTokens(ctx context.Context, tenant string, limit int) ([]audit.ViewerToken, error) {
	if limit <= 0 || limit > audit.MaxPageSize {
		limit = audit.MaxPageSize
	}
	rows, err := db.meta.r.QueryContext(ctx, `SELECT doc, revoked_at FROM viewer_tokens WHERE tenant = ?
		ORDER BY created_at DESC, id DESC LIMIT ?`, tenant, limit)
	if err != nil {
		return nil, translate(err, "list viewer tokens")
	}
	defer rows.Close()
	out := []audit.ViewerToken{}
	for rows.Next() {
		t, err := scanViewerToken(rows)
		if err != nil {
			return nil, translate(err, "list viewer tokens")
		}
		out = append(out, t)
	}
	return out, translate(rows.Err(), "list viewer tokens")
}

// RevokeViewerToken marks a token revoked (the first time is kept);
// ENOTFOUND for an unknown id or one of another tenant ("" matches any).
func (db *DB) RevokeViewerToken(ctx context.Context, tenant, id string, at time.Time) error {
	res, err := db.meta.w.ExecContext(ctx, `UPDATE viewer_tokens SET revoked_at = coalesce(revoked_at, ?)
		WHERE id = ? AND (? = '' OR tenant = ?)`, at.UnixNano(), id, tenant, tenant)
	return affectedOne(res, err, "viewer token", id)
}

// PurgeViewerTokens deletes the records of tokens that expired before the cutoff.
func (db *DB) PurgeViewerTokens(ctx context.Context, before time.Time) (int64, error) {
	res, err := db.meta.w.ExecContext(ctx, `DELETE FROM viewer_tokens WHERE expires_at < ?`, before.UnixNano())
	if err != nil {
		return 0, translate(err, "purge viewer tokens")
	}
	n, err := res.RowsAffected()
	return n, translate(err, "purge viewer tokens")
}

// SaveSearch inserts or replaces a saved search; ETOOLARGE beyond
// audit.MaxSavedSearches per tenant.
func (db *DB) SaveSearch(ctx context.Context, s audit.SavedSearch) error {
	if s.ID == "" || s.Tenant == "" {
		return invalid("id", "saved search id and tenant are required")
	}
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "save search")
	}
	defer func() { _ = tx.Rollback() }()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM saved_searches WHERE tenant = ? AND id != ?`, s.Tenant, s.ID).Scan(&n); err != nil {
		return translate(err, "save search")
	}
	if n >= audit.MaxSavedSearches {
		return audit.Errorf(audit.ETOOLARGE, "a tenant keeps at most %d saved searches; delete one first", audit.MaxSavedSearches)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO saved_searches (tenant, id, name, query, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant, id) DO UPDATE SET name = excluded.name, query = excluded.query`,
		s.Tenant, s.ID, s.Name, s.Query, s.CreatedBy, nanos(s.CreatedAt)); err != nil {
		return translate(err, "save search")
	}
	return translate(tx.Commit(), "save search")
}

// ListSavedSearches returns a tenant's saved searches ordered by name.
func (db *DB) ListSavedSearches(ctx context.Context, tenant string) ([]audit.SavedSearch, error) {
	rows, err := db.meta.r.QueryContext(ctx, `SELECT tenant, id, name, query, created_by, created_at FROM saved_searches
		WHERE tenant = ? ORDER BY name, id`, tenant)
	if err != nil {
		return nil, translate(err, "list saved searches")
	}
	defer rows.Close()
	out := []audit.SavedSearch{}
	for rows.Next() {
		var s audit.SavedSearch
		var created int64
		if err := rows.Scan(&s.Tenant, &s.ID, &s.Name, &s.Query, &s.CreatedBy, &created); err != nil {
			return nil, translate(err, "list saved searches")
		}
		s.CreatedAt = fromNanos(created)
		out = append(out, s)
	}
	return out, translate(rows.Err(), "list saved searches")
}

// DeleteSavedSearch deletes one; ENOTFOUND for an unknown id or another tenant's.
func (db *DB) DeleteSavedSearch(ctx context.Context, tenant, id string) error {
	res, err := db.meta.w.ExecContext(ctx, `DELETE FROM saved_searches WHERE tenant = ? AND id = ?`, tenant, id)
	return affectedOne(res, err, "saved search", id)
}
