package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// Times in meta.db are Unix nanoseconds; NULL is "never".

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func optNanos(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixNano()
}

func fromOptNanos(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := time.Unix(0, n.Int64).UTC()
	return &t
}

// CreateTenant stores a new tenant; ECONFLICT when the id exists.
func (db *DB) CreateTenant(ctx context.Context, t audit.Tenant) error {
	if !audit.ValidTenantID(t.ID) {
		return invalid("id", "tenant id %q must be 1-64 letters, digits, '-', '_' or '.'", t.ID)
	}
	if t.RetentionDays == 0 {
		t.RetentionDays = audit.DefaultRetentionDays
	}
	_, err := db.meta.w.ExecContext(ctx, `INSERT INTO tenants (id, name, retention_days, max_event_age_days, created_at) VALUES (?, ?, ?, ?, ?)`,
		t.ID, t.Name, t.RetentionDays, t.MaxEventAgeDays, nanos(t.CreatedAt))
	if err = translate(err, "create tenant "+t.ID); audit.ErrorCode(err) == audit.ECONFLICT {
		return &audit.Error{Code: audit.ECONFLICT, Field: "id", Message: fmt.Sprintf("tenant %q already exists", t.ID), Err: err}
	}
	return err
}

// GetTenant returns a tenant; ENOTFOUND when it does not exist.
func (db *DB) GetTenant(ctx context.Context, id string) (*audit.Tenant, error) {
	var t audit.Tenant
	var created int64
	err := db.meta.r.QueryRowContext(ctx, `SELECT id, name, retention_days, max_event_age_days, created_at FROM tenants WHERE id = ?`, id).
		Scan(&t.ID, &t.Name, &t.RetentionDays, &t.MaxEventAgeDays, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("tenant", id)
	}
	if err != nil {
		return nil, translate(err, "get tenant "+id)
	}
	t.CreatedAt = fromNanos(created)
	return &t, nil
}

// ListTenants returns every tenant ordered by id.
func (db *DB) ListTenants(ctx context.Context) ([]audit.Tenant, error) {
	rows, err := db.meta.r.QueryContext(ctx, `SELECT id, name, retention_days, max_event_age_days, created_at FROM tenants ORDER BY id`)
	if err != nil {
		return nil, translate(err, "list tenants")
	}
	defer rows.Close()
	out := []audit.Tenant{}
	for rows.Next() {
		var t audit.Tenant
		var created int64
		if err := rows.Scan(&t.ID, &t.Name, &t.RetentionDays, &t.MaxEventAgeDays, &created); err != nil {
			return nil, translate(err, "list tenants")
		}
		t.CreatedAt = fromNanos(created)
		out = append(out, t)
	}
	return out, translate(rows.Err(), "list tenants")
}

// UpdateTenant replaces a tenant's name, retention and event-age
// override (CreatedAt is kept);
// ENOTFOUND when it does not exist.
func (db *DB) UpdateTenant(ctx context.Context, t audit.Tenant) error {
	if t.RetentionDays == 0 {
		t.RetentionDays = audit.DefaultRetentionDays
	}
	res, err := db.meta.w.ExecContext(ctx, `UPDATE tenants SET name = ?, retention_days = ?, max_event_age_days = ? WHERE id = ?`,
		t.Name, t.RetentionDays, t.MaxEventAgeDays, t.ID)
	return affectedOne(res, err, "tenant", t.ID)
}

func affectedOne(res sql.Result, err error, what, id string) error {
	if err != nil {
		return translate(err, "update "+what+" "+id)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return translate(err, "update "+what+" "+id)
	}
	if n == 0 {
		return notFound(what, id)
	}
	return nil
}

// CreateKey stores an API key (its hash only); ECONFLICT for an existing id.
func (db *DB) CreateKey(ctx context.Context, k audit.APIKey) error {
	if k.ID == "" {
		return invalid("id", "key id is required")
	}
	if len(k.Hash) == 0 {
		return invalid("hash", "key hash is required")
	}
	scopes, err := json.Marshal(k.Scopes)
	if err != nil {
		return fmt.Errorf("encode scopes of key %s: %w", k.ID, err)
	}
	_, err = db.meta.w.ExecContext(ctx, `INSERT INTO api_keys (id, tenant, name, scopes, hash, created_at, revoked_at, last_used_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, k.ID, k.Tenant, k.Name, string(scopes), k.Hash, nanos(k.CreatedAt),
		optNanos(k.RevokedAt), optNanos(k.LastUsedAt))
	if err = translate(err, "create key "+k.ID); audit.ErrorCode(err) == audit.ECONFLICT {
		return &audit.Error{Code: audit.ECONFLICT, Field: "id", Message: fmt.Sprintf("key %q already exists", k.ID), Err: err}
	}
	return err
}

const keyColumns = `id, tenant, name, scopes, hash, created_at, revoked_at, last_used_at`

func scanKey(sc interface{ Scan(...any) error }) (audit.APIKey, error) {
	var k audit.APIKey
	var scopes string
	var created int64
	var revoked, used sql.NullInt64
	if err := sc.Scan(&k.ID, &k.Tenant, &k.Name, &scopes, &k.Hash, &created, &revoked, &used); err != nil {
		return k, err
	}
	if err := json.Unmarshal([]byte(scopes), &k.Scopes); err != nil {
		return k, fmt.Errorf("decode scopes of key %s: %w", k.ID, err)
	}
	if k.Scopes == nil {
		k.Scopes = []audit.Scope{}
	}
	k.CreatedAt = fromNanos(created)
	k.RevokedAt = fromOptNanos(revoked)
	k.LastUsedAt = fromOptNanos(used)
	return k, nil
}

// GetKey returns a key, revoked or not; ENOTFOUND for an unknown id.
func (db *DB) GetKey(ctx context.Context, id string) (*audit.APIKey, error) {
	k, err := scanKey(db.meta.r.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("key", id)
	}
	if err != nil {
		return nil, translate(err, "get key "+id)
	}
	return &k, nil
}

func (db *DB) listKeys(ctx context.Context, where string, args ...any) ([]audit.APIKey, error) {
	rows, err := db.meta.r.QueryContext(ctx, `SELECT `+keyColumns+` FROM api_keys `+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, translate(err, "list keys")
	}
	defer rows.Close()
	out := []audit.APIKey{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, translate(err, "list keys")
		}
		out = append(out, k)
	}
	return out, translate(rows.Err(), "list keys")
}

// ListKeys returns the keys of tenant ordered by id; tenant "" lists the
// operator keys only.
func (db *DB) ListKeys(ctx context.Context, tenant string) ([]audit.APIKey, error) {
	return db.listKeys(ctx, `WHERE tenant = ?`, tenant)
}

// ListAllKeys returns every key ordered by id.
func (db *DB) ListAllKeys(ctx context.Context) ([]audit.APIKey, error) {
	return db.listKeys(ctx, ``)
}

// RevokeKey marks a key revoked at at. It is idempotent (the first
// revocation time is kept) and ENOTFOUND for an unknown id or a key of
// another tenant; tenant "" matches any.
func (db *DB) RevokeKey(ctx context.Context, tenant, id string, at time.Time) error {
	res, err := db.meta.w.ExecContext(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?)
		WHERE id = ? AND (? = '' OR tenant = ?)`, at.UnixNano(), id, tenant, tenant)
	return affectedOne(res, err, "key", id)
}

// TouchKey records a use of the key; ENOTFOUND for an unknown id.
func (db *DB) TouchKey(ctx context.Context, id string, at time.Time) error {
	res, err := db.meta.w.ExecContext(ctx, `UPDATE api_keys SET last_used_at = ? WHERE id = ?`, at.UnixNano(), id)
	return affectedOne(res, err, "key", id)
}

// GetState returns one value of detection state; ENOTFOUND when missing.
func (db *DB) GetState(ctx context.Context, ns, key string) ([]byte, error) {
	var v []byte
	err := db.meta.r.QueryRowContext(ctx, `SELECT value FROM state WHERE ns = ? AND key = ?`, ns, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("state", ns+"/"+key)
	}
	if v == nil && err == nil {
		v = []byte{}
	}
	return v, translate(err, "get state")
}

// stateRowsPerStatement is how many keys one SaveState statement writes
// or deletes (3 parameters a row, well under SQLite's limit of 32,766).
const stateRowsPerStatement = 256

// SaveState applies every put and delete of ns in one transaction, in key
// order: a checkpoint's keys are spread over the whole table, and writing
// them in order visits each b-tree page once, in sequence (a third less
// CPU for the detection checkpoints of BenchmarkDrain than in map order).
func (db *DB) SaveState(ctx context.Context, ns string, puts map[string][]byte, deletes []string) error {
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "save state")
	}
	defer func() { _ = tx.Rollback() }()
	rctx := rowContext(ctx)
	// A checkpoint writes thousands of keys: many rows per statement, since
	// each statement's cgo and database/sql overhead costs more than a row.
	if len(deletes) > 0 {
		if !slices.IsSorted(deletes) {
			deletes = slices.Sorted(slices.Values(deletes))
		}
		for chunk := range slices.Chunk(deletes, stateRowsPerStatement) {
			args := make([]any, 0, 1+len(chunk))
			args = append(args, ns)
			for _, k := range chunk {
				if err := ctx.Err(); err != nil { // per row, as rowContext asks
					return err
				}
				args = append(args, k)
			}
			if _, err := tx.ExecContext(rctx, `DELETE FROM state WHERE ns = ? AND key IN `+placeholders(1, len(chunk)), args...); err != nil {
				return translate(err, "delete state")
			}
		}
	}
	keys := slices.Sorted(maps.Keys(puts))
	for chunk := range slices.Chunk(keys, stateRowsPerStatement) {
		args := make([]any, 0, 3*len(chunk))
		for _, k := range chunk {
			if err := ctx.Err(); err != nil { // per row, as rowContext asks
				return err
			}
			v := puts[k]
			if v == nil {
				v = []byte{}
			}
			args = append(args, ns, k, v)
		}
		if _, err := tx.ExecContext(rctx, `INSERT INTO state (ns, key, value) VALUES `+placeholders(len(chunk), 3)+`
			ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value`, args...); err != nil {
			return translate(err, "put state")
		}
	}
	return translate(tx.Commit(), "save state")
}

// ScanState calls fn for every key of ns in ascending order and stops at
// the first error fn returns, which ScanState returns. fn must not call back
// into the store's writes of the same namespace.
func (db *DB) ScanState(ctx context.Context, ns string, fn func(key string, value []byte) error) error {
	rows, err := db.meta.r.QueryContext(ctx, `SELECT key, value FROM state WHERE ns = ? ORDER BY key`, ns)
	if err != nil {
		return translate(err, "scan state")
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return translate(err, "scan state")
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return translate(rows.Err(), "scan state")
}

// ListRuleSettings returns tenant's rule settings ordered by rule id.
func (db *DB) ListRuleSettings(ctx context.Context, tenant string) ([]audit.RuleSetting, error) {
	rows, err := db.meta.r.QueryContext(ctx, `SELECT rule_id, disabled, params, actions, updated_at FROM rule_settings
		WHERE tenant = ? ORDER BY rule_id`, tenant)
	if err != nil {
		return nil, translate(err, "list rule settings")
	}
	defer rows.Close()
	out := []audit.RuleSetting{}
	for rows.Next() {
		s := audit.RuleSetting{Tenant: tenant}
		var params []byte
		var actions string
		var updated int64
		if err := rows.Scan(&s.RuleID, &s.Disabled, &params, &actions, &updated); err != nil {
			return nil, translate(err, "list rule settings")
		}
		if actions != "" {
			s.Actions = strings.Split(actions, ",")
		}
		if len(params) > 0 {
			if err := json.Unmarshal(params, &s.Params); err != nil {
				return nil, fmt.Errorf("decode params of rule %s: %w", s.RuleID, err)
			}
		}
		s.UpdatedAt = fromNanos(updated)
		out = append(out, s)
	}
	return out, translate(rows.Err(), "list rule settings")
}

// PutRuleSetting replaces the setting of (Tenant, RuleID).
func (db *DB) PutRuleSetting(ctx context.Context, s audit.RuleSetting) error {
	if s.Tenant == "" || s.RuleID == "" {
		return invalid("rule_id", "rule setting needs a tenant and a rule id")
	}
	var params []byte
	if s.Params != nil {
		var err error
		if params, err = json.Marshal(s.Params); err != nil {
			return invalid("params", "rule params: %v", err)
		}
	}
	for _, a := range s.Actions {
		if !slices.Contains(audit.ResponseActionTypes, a) {
			return invalid("actions", "action %q must be one of revoke_sessions, force_password_reset, require_mfa, lock_account", a)
		}
	}
	_, err := db.meta.w.ExecContext(ctx, `INSERT INTO rule_settings (tenant, rule_id, disabled, params, actions, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, rule_id) DO UPDATE SET
		disabled = excluded.disabled, params = excluded.params, actions = excluded.actions, updated_at = excluded.updated_at`,
		s.Tenant, s.RuleID, s.Disabled, params, strings.Join(s.Actions, ","), nanos(s.UpdatedAt))
	return translate(err, "put rule setting")
}

// DeleteRuleSetting removes a setting; deleting a missing one is not an error.
func (db *DB) DeleteRuleSetting(ctx context.Context, tenant, ruleID string) error {
	_, err := db.meta.w.ExecContext(ctx, `DELETE FROM rule_settings WHERE tenant = ? AND rule_id = ?`, tenant, ruleID)
	return translate(err, "delete rule setting")
}

// ListAllowEntries returns tenant's allowlist ordered by value (then kind).
func (db *DB) ListAllowEntries(ctx context.Context, tenant string) ([]audit.AllowEntry, error) {
	rows, err := db.meta.r.QueryContext(ctx, `SELECT kind, value, mode, note, created_at FROM allow_entries
		WHERE tenant = ? ORDER BY value, kind`, tenant)
	if err != nil {
		return nil, translate(err, "list allow entries")
	}
	defer rows.Close()
	out := []audit.AllowEntry{}
	for rows.Next() {
		e := audit.AllowEntry{Tenant: tenant}
		var created int64
		if err := rows.Scan(&e.Kind, &e.Value, &e.Mode, &e.Note, &created); err != nil {
			return nil, translate(err, "list allow entries")
		}
		e.CreatedAt = fromNanos(created)
		out = append(out, e)
	}
	return out, translate(rows.Err(), "list allow entries")
}

// PutAllowEntry adds or replaces the entry (Tenant, Kind, Value).
func (db *DB) PutAllowEntry(ctx context.Context, e audit.AllowEntry) error {
	switch {
	case e.Tenant == "":
		return invalid("tenant", "allow entry needs a tenant")
	case e.Kind != "ip" && e.Kind != "cidr" && e.Kind != "asn":
		return invalid("kind", "allow entry kind %q must be ip, cidr or asn", e.Kind)
	case strings.TrimSpace(e.Value) == "":
		return invalid("value", "allow entry value is required")
	case e.Mode != "" && e.Mode != audit.AllowTrust && e.Mode != audit.AllowEgress && e.Mode != audit.AllowNotEgress:
		return invalid("mode", "allow entry mode %q must be trust, egress or not_egress", e.Mode)
	}
	mode := e.Mode
	if mode == "" {
		mode = audit.AllowTrust
	}
	_, err := db.meta.w.ExecContext(ctx, `INSERT INTO allow_entries (tenant, kind, value, mode, note, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, kind, value) DO UPDATE SET mode = excluded.mode, note = excluded.note,
		created_at = excluded.created_at`,
		e.Tenant, e.Kind, e.Value, mode, e.Note, nanos(e.CreatedAt))
	return translate(err, "put allow entry")
}

// DeleteAllowEntry removes an entry; deleting a missing one is not an error.
func (db *DB) DeleteAllowEntry(ctx context.Context, tenant, kind, value string) error {
	_, err := db.meta.w.ExecContext(ctx, `DELETE FROM allow_entries WHERE tenant = ? AND kind = ? AND value = ?`, tenant, kind, value)
	return translate(err, "delete allow entry")
}
