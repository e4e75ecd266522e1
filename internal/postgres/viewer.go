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

var (
	_ audit.ViewerTokenStore = (*Store)(nil)
	_ audit.SavedSearchStore = (*Store)(nil)
)

// CreateViewerToken stores a viewer token's record; ECONFLICT for an
// existing id. RevokedAt is not taken from t: a token starts unrevoked.
func (s *Store) CreateViewerToken(ctx context.Context, t audit.ViewerToken) error {
	if t.ID == "" || t.Tenant == "" {
		return invalid("id", "viewer token id and tenant are required")
	}
	t.RevokedAt = nil
	doc, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode viewer token %s: %w", t.ID, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO viewer_tokens (id, tenant, doc, created_ns, expires_ns) VALUES ($1, $2, $3, $4, $5)`,
		t.ID, t.Tenant, doc, nanos(t.CreatedAt), nanos(t.ExpiresAt))
	return translate(err, "create viewer token "+t.ID)
}

func scanViewerToken(row pgx.Row) (audit.ViewerToken, error) {
	var t audit.ViewerToken
	var doc []byte
	var revoked *int64
	if err := row.Scan(&doc, &revoked); err != nil {
		return t, err
	}
	if err := json.Unmarshal(doc, &t); err != nil {
		return t, fmt.Errorf("decode viewer token: %w", err)
	}
	t.RevokedAt = metaFromOptNanos(revoked)
	return t, nil
}

// GetViewerToken returns a token's record, revoked or not; ENOTFOUND for
// an unknown id.
func (s *Store) GetViewerToken(ctx context.Context, id string) (*audit.ViewerToken, error) {
	t, err := scanViewerToken(s.pool.QueryRow(ctx, `SELECT doc, revoked_ns FROM viewer_tokens WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("viewer token", id)
	}
	if err != nil {
		return nil, translate(err, "get viewer token "+id)
	}
	return &t, nil
}

// ListViewerTokens returns a tenant's tokens, newest first, at most limit
// (audit.MaxPageSize when limit is not in 1..MaxPageSize).
func (s *Store) ListViewerTokens(ctx context.Context, tenant string, limit int) ([]audit.ViewerToken, error) {
	if limit <= 0 || limit > audit.MaxPageSize {
		limit = audit.MaxPageSize
	}
	rows, err := s.pool.Query(ctx, `SELECT doc, revoked_ns FROM viewer_tokens WHERE tenant = $1
		ORDER BY created_ns DESC, id DESC LIMIT $2`, tenant, limit)
	if err != nil {
		return nil, translate(err, "list viewer tokens")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (audit.ViewerToken, error) { return scanViewerToken(r) })
	if err != nil {
		return nil, translate(err, "list viewer tokens")
	}
	return out, nil
}

// RevokeViewerToken marks a token revoked (the first time is kept);
// ENOTFOUND for an unknown id or one of another tenant ("" matches any).
func (s *Store) RevokeViewerToken(ctx context.Context, tenant, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE viewer_tokens SET revoked_ns = coalesce(revoked_ns, $1)
		WHERE id = $2 AND ($3 = '' OR tenant = $3)`, at.UnixNano(), id, tenant)
	return affectedOne(tag, err, "viewer token", id)
}

// PurgeViewerTokens deletes the records of tokens that expired before the
// cutoff and returns how many.
func (s *Store) PurgeViewerTokens(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM viewer_tokens WHERE expires_ns < $1`, before.UnixNano())
	if err != nil {
		return 0, translate(err, "purge viewer tokens")
	}
	return tag.RowsAffected(), nil
}

// savedSearchLock serialises a tenant's SaveSearch calls in the schema, so
// that two concurrent saves cannot both pass the MaxSavedSearches check.
func (s *Store) savedSearchLock(tenant string) string {
	return "vigil.saved_searches." + s.schema + "." + tenant
}

// SaveSearch inserts or replaces (name and query; CreatedBy and CreatedAt
// are kept) a saved search; ETOOLARGE when the tenant already holds
// audit.MaxSavedSearches others.
func (s *Store) SaveSearch(ctx context.Context, ss audit.SavedSearch) error {
	if ss.ID == "" || ss.Tenant == "" {
		return invalid("id", "saved search id and tenant are required")
	}
	return s.inTx(ctx, "save search", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, s.savedSearchLock(ss.Tenant)); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM saved_searches WHERE tenant = $1 AND id <> $2`, ss.Tenant, ss.ID).Scan(&n); err != nil {
			return err
		}
		if n >= audit.MaxSavedSearches {
			return audit.Errorf(audit.ETOOLARGE, "a tenant keeps at most %d saved searches; delete one first", audit.MaxSavedSearches)
		}
		_, err := tx.Exec(ctx, `INSERT INTO saved_searches (tenant, id, name, query, created_by, created_ns) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (tenant, id) DO UPDATE SET name = excluded.name, query = excluded.query`,
			ss.Tenant, ss.ID, ss.Name, ss.Query, ss.CreatedBy, nanos(ss.CreatedAt))
		return err
	})
}

// ListSavedSearches returns a tenant's saved searches ordered by name (then
// id); at most audit.MaxSavedSearches exist.
func (s *Store) ListSavedSearches(ctx context.Context, tenant string) ([]audit.SavedSearch, error) {
	rows, err := s.pool.Query(ctx, `SELECT tenant, id, name, query, created_by, created_ns FROM saved_searches
		WHERE tenant = $1 ORDER BY name, id LIMIT $2`, tenant, 2*audit.MaxSavedSearches)
	if err != nil {
		return nil, translate(err, "list saved searches")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (audit.SavedSearch, error) {
		var ss audit.SavedSearch
		var created int64
		err := r.Scan(&ss.Tenant, &ss.ID, &ss.Name, &ss.Query, &ss.CreatedBy, &created)
		ss.CreatedAt = fromNanos(created)
		return ss, err
	})
	if err != nil {
		return nil, translate(err, "list saved searches")
	}
	return out, nil
}

// DeleteSavedSearch deletes one; ENOTFOUND for an unknown id or another
// tenant's.
func (s *Store) DeleteSavedSearch(ctx context.Context, tenant, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM saved_searches WHERE tenant = $1 AND id = $2`, tenant, id)
	return affectedOne(tag, err, "saved search", id)
}
