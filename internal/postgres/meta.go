package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigilhq/vigil/internal/audit"
)

var (
	_ audit.TenantStore = (*Store)(nil)
	_ audit.KeyStore    = (*Store)(nil)
)

// metaOptNanos is t as nanoseconds, or NULL for nil ("never").
func metaOptNanos(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	n := t.UnixNano()
	return &n
}

// metaFromOptNanos is the inverse of metaOptNanos, in UTC.
func metaFromOptNanos(n *int64) *time.Time {
	if n == nil {
		return nil
	}
	t := time.Unix(0, *n).UTC()
	return &t
}

// affectedOne is ENOTFOUND when a write matched no row.
func affectedOne(tag pgconn.CommandTag, err error, what, id string) error {
	if err != nil {
		return translate(err, "update "+what+" "+id)
	}
	if tag.RowsAffected() == 0 {
		return notFound(what, id)
	}
	return nil
}

// CreateTenant stores a new tenant; ECONFLICT when the id exists.
func (s *Store) CreateTenant(ctx context.Context, t audit.Tenant) error {
	if !audit.ValidTenantID(t.ID) {
		return invalid("id", "tenant id %q must be 1-64 letters, digits, '-', '_' or '.'", t.ID)
	}
	if t.RetentionDays == 0 {
		t.RetentionDays = audit.DefaultRetentionDays
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO tenants (id, name, retention_days, max_event_age_days, created_ns) VALUES ($1, $2, $3, $4, $5)`,
		t.ID, t.Name, t.RetentionDays, t.MaxEventAgeDays, nanos(t.CreatedAt))
	if err = translate(err, "create tenant "+t.ID); audit.ErrorCode(err) == audit.ECONFLICT {
		return &audit.Error{Code: audit.ECONFLICT, Field: "id", Message: fmt.Sprintf("tenant %q already exists", t.ID), Err: err}
	}
	return err
}

const tenantColumns = `id, name, retention_days, max_event_age_days, created_ns`

func scanTenant(row pgx.Row) (audit.Tenant, error) {
	var t audit.Tenant
	var created int64
	err := row.Scan(&t.ID, &t.Name, &t.RetentionDays, &t.MaxEventAgeDays, &created)
	t.CreatedAt = fromNanos(created)
	return t, err
}

// GetTenant returns a tenant; ENOTFOUND when it does not exist.
func (s *Store) GetTenant(ctx context.Context, id string) (*audit.Tenant, error) {
	t, err := scanTenant(s.pool.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("tenant", id)
	}
	if err != nil {
		return nil, translate(err, "get tenant "+id)
	}
	return &t, nil
}

// ListTenants returns every tenant ordered by id.
func (s *Store) ListTenants(ctx context.Context) ([]audit.Tenant, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tenantColumns+` FROM tenants ORDER BY id`)
	if err != nil {
		return nil, translate(err, "list tenants")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (audit.Tenant, error) { return scanTenant(r) })
	if err != nil {
		return nil, translate(err, "list tenants")
	}
	return out, nil
}

// UpdateTenant replaces a tenant's name, retention and event-age override
// (CreatedAt is kept); ENOTFOUND when it does not exist.
func (s *Store) UpdateTenant(ctx context.Context, t audit.Tenant) error {
	if t.RetentionDays == 0 {
		t.RetentionDays = audit.DefaultRetentionDays
	}
	tag, err := s.pool.Exec(ctx, `UPDATE tenants SET name = $1, retention_days = $2, max_event_age_days = $3 WHERE id = $4`,
		t.Name, t.RetentionDays, t.MaxEventAgeDays, t.ID)
	return affectedOne(tag, err, "tenant", t.ID)
}

// CreateKey stores an API key (its hash only, as given); ECONFLICT for an
// existing id.
func (s *Store) CreateKey(ctx context.Context, k audit.APIKey) error {
	if k.ID == "" {
		return invalid("id", "key id is required")
	}
	if len(k.Hash) == 0 {
		return invalid("hash", "key hash is required")
	}
	scopes := make([]string, len(k.Scopes))
	for i, sc := range k.Scopes {
		scopes[i] = string(sc)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (id, tenant, name, scopes, hash, created_ns, revoked_ns, last_used_ns)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, k.ID, k.Tenant, k.Name, scopes, k.Hash, nanos(k.CreatedAt),
		metaOptNanos(k.RevokedAt), metaOptNanos(k.LastUsedAt))
	if err = translate(err, "create key "+k.ID); audit.ErrorCode(err) == audit.ECONFLICT {
		return &audit.Error{Code: audit.ECONFLICT, Field: "id", Message: fmt.Sprintf("key %q already exists", k.ID), Err: err}
	}
	return err
}

const keyColumns = `id, tenant, name, scopes, hash, created_ns, revoked_ns, last_used_ns`

func scanKey(row pgx.Row) (audit.APIKey, error) {
	var k audit.APIKey
	var scopes []string
	var created int64
	var revoked, used *int64
	if err := row.Scan(&k.ID, &k.Tenant, &k.Name, &scopes, &k.Hash, &created, &revoked, &used); err != nil {
		return k, err
	}
	k.Scopes = make([]audit.Scope, len(scopes))
	for i, sc := range scopes {
		k.Scopes[i] = audit.Scope(sc)
	}
	k.CreatedAt = fromNanos(created)
	k.RevokedAt = metaFromOptNanos(revoked)
	k.LastUsedAt = metaFromOptNanos(used)
	return k, nil
}

// GetKey returns a key, revoked or not; ENOTFOUND for an unknown id.
func (s *Store) GetKey(ctx context.Context, id string) (*audit.APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("key", id)
	}
	if err != nil {
		return nil, translate(err, "get key "+id)
	}
	return &k, nil
}

func (s *Store) listKeys(ctx context.Context, where string, args ...any) ([]audit.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+keyColumns+` FROM api_keys `+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, translate(err, "list keys")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (audit.APIKey, error) { return scanKey(r) })
	if err != nil {
		return nil, translate(err, "list keys")
	}
	return out, nil
}

// ListKeys returns the keys of tenant ordered by id; tenant "" lists the
// operator keys only.
func (s *Store) ListKeys(ctx context.Context, tenant string) ([]audit.APIKey, error) {
	return s.listKeys(ctx, `WHERE tenant = $1`, tenant)
}

// ListAllKeys returns every key ordered by id.
func (s *Store) ListAllKeys(ctx context.Context) ([]audit.APIKey, error) {
	return s.listKeys(ctx, ``)
}

// RevokeKey marks a key revoked at at. It is idempotent (the first
// revocation time is kept) and ENOTFOUND for an unknown id or a key of
// another tenant; tenant "" matches any.
func (s *Store) RevokeKey(ctx context.Context, tenant, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET revoked_ns = coalesce(revoked_ns, $1)
		WHERE id = $2 AND ($3 = '' OR tenant = $3)`, at.UnixNano(), id, tenant)
	return affectedOne(tag, err, "key", id)
}

// TouchKey records a use of the key in one statement; ENOTFOUND for an
// unknown id.
func (s *Store) TouchKey(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET last_used_ns = $1 WHERE id = $2`, at.UnixNano(), id)
	return affectedOne(tag, err, "key", id)
}
