package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.IntegrityStore = (*DB)(nil)

// maxChainPage caps one ChainEntries page.
const maxChainPage = 10_000

// chainRowsPerStatement is how many entries one AppendChain statement
// inserts.
const chainRowsPerStatement = 256

// AppendChain stores chain entries in one transaction, checking that each
// continues its day's head, and moves the heads.
func (db *DB) AppendChain(ctx context.Context, entries []audit.ChainEntry) error {
	if len(entries) == 0 {
		return nil
	}
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "append chain")
	}
	defer func() { _ = tx.Rollback() }()
	type day struct{ tenant, day string }
	heads := map[day]int64{}
	last := map[day][]byte{}
	// Many entries per statement: per-statement cgo and database/sql
	// overhead costs more than a row.
	rctx := rowContext(ctx)
	args := make([]any, 0, 6*chainRowsPerStatement)
	flush := func() error {
		rows := len(args) / 6
		if rows == 0 {
			return nil
		}
		_, err := tx.ExecContext(rctx, `INSERT INTO chain_entries (tenant, day, seq, event_id, leaf, hash) VALUES `+placeholders(rows, 6), args...)
		if err != nil {
			// The seqs were checked above: a conflict is an event chained
			// already. Name it, as one statement per entry did.
			for i := 0; i < len(args); i += 6 {
				var one int
				if tx.QueryRowContext(rctx, `SELECT 1 FROM chain_entries WHERE tenant = ? AND event_id = ?`, args[i], args[i+3]).Scan(&one) == nil {
					return translate(err, fmt.Sprintf("append chain entry of event %s", args[i+3]))
				}
			}
		}
		args = args[:0]
		return translate(err, fmt.Sprintf("append %d chain entries", rows))
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.Tenant == "" {
			return invalid("tenant", "chain entry of event %s has no tenant", e.EventID)
		}
		k := day{e.Tenant, e.Day}
		n, ok := heads[k]
		if !ok {
			err := tx.QueryRowContext(ctx, `SELECT count FROM chain_heads WHERE tenant = ? AND day = ?`, e.Tenant, e.Day).Scan(&n)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return translate(err, "read chain head")
			}
		}
		if e.Seq != n+1 {
			return &audit.Error{Code: audit.ECONFLICT, Field: "seq",
				Message: fmt.Sprintf("chain %s/%s is at %d, entry of event %s has seq %d", e.Tenant, e.Day, n, e.EventID, e.Seq)}
		}
		args = append(args, e.Tenant, e.Day, e.Seq, e.EventID, e.Leaf, e.Hash)
		if len(args) == cap(args) {
			if err := flush(); err != nil {
				return err
			}
		}
		heads[k], last[k] = e.Seq, e.Hash
	}
	if err := flush(); err != nil {
		return err
	}
	// Each day's head moves once per call, to its last entry.
	for k, n := range heads {
		if _, err := tx.ExecContext(ctx, `INSERT INTO chain_heads (tenant, day, count, head) VALUES (?, ?, ?, ?)
			ON CONFLICT (tenant, day) DO UPDATE SET count = excluded.count, head = excluded.head`,
			k.tenant, k.day, n, last[k]); err != nil {
			return translate(err, "move chain head")
		}
	}
	return translate(tx.Commit(), "append chain")
}

// ChainHead returns the end of a day's chain (Count 0 when it has none).
func (db *DB) ChainHead(ctx context.Context, tenant, day string) (audit.ChainHead, error) {
	h := audit.ChainHead{Tenant: tenant, Day: day}
	if tenant == "" {
		return h, invalid("tenant", "a chain head needs a tenant")
	}
	err := db.meta.r.QueryRowContext(ctx, `SELECT count, head FROM chain_heads WHERE tenant = ? AND day = ?`, tenant, day).Scan(&h.Count, &h.Head)
	if errors.Is(err, sql.ErrNoRows) {
		return h, nil
	}
	return h, translate(err, "read chain head")
}

// Chained returns which of ids have a chain entry in tenant.
func (db *DB) Chained(ctx context.Context, tenant string, ids []string) (map[string]bool, error) {
	if tenant == "" {
		return nil, invalid("tenant", "a chain lookup needs a tenant")
	}
	out := map[string]bool{}
	for len(ids) > 0 {
		n := min(len(ids), 500)
		chunk := ids[:n]
		ids = ids[n:]
		args := make([]any, 0, n+1)
		args = append(args, tenant)
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := db.meta.r.QueryContext(ctx, `SELECT event_id FROM chain_entries WHERE tenant = ? AND event_id IN (?`+
			strings.Repeat(",?", n-1)+`)`, args...)
		if err != nil {
			return nil, translate(err, "look up chain entries")
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, translate(err, "look up chain entries")
			}
			out[id] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, translate(err, "look up chain entries")
		}
	}
	return out, nil
}

// ChainEntries returns a page of a day's entries after seq after.
func (db *DB) ChainEntries(ctx context.Context, tenant, day string, after int64, limit int) ([]audit.ChainEntry, error) {
	if tenant == "" {
		return nil, invalid("tenant", "chain entries need a tenant")
	}
	if limit <= 0 || limit > maxChainPage {
		limit = maxChainPage
	}
	rows, err := db.meta.r.QueryContext(ctx, `SELECT seq, event_id, leaf, hash FROM chain_entries
		WHERE tenant = ? AND day = ? AND seq > ? ORDER BY seq LIMIT ?`, tenant, day, after, limit)
	if err != nil {
		return nil, translate(err, "read chain entries")
	}
	defer rows.Close()
	var out []audit.ChainEntry
	for rows.Next() {
		e := audit.ChainEntry{Tenant: tenant, Day: day}
		if err := rows.Scan(&e.Seq, &e.EventID, &e.Leaf, &e.Hash); err != nil {
			return nil, translate(err, "read chain entries")
		}
		out = append(out, e)
	}
	return out, translate(rows.Err(), "read chain entries")
}

// ChainDays returns the days of tenant with a head or a statement.
func (db *DB) ChainDays(ctx context.Context, tenant, from, to string) ([]string, error) {
	if tenant == "" {
		return nil, invalid("tenant", "chain days need a tenant")
	}
	if to == "" {
		to = "9999-99-99"
	}
	rows, err := db.meta.r.QueryContext(ctx, `SELECT day FROM chain_heads WHERE tenant = ? AND day >= ? AND day <= ?
		UNION SELECT key FROM integrity_statements WHERE tenant = ? AND kind IN (?, ?) AND key >= ? AND key <= ?
		ORDER BY 1`, tenant, from, to, tenant, audit.StatementCheckpoint, audit.StatementTombstone, from, to)
	if err != nil {
		return nil, translate(err, "list chain days")
	}
	return scanStrings(rows, "list chain days")
}

// ChainTenants returns the tenants that have a chain or a statement.
func (db *DB) ChainTenants(ctx context.Context) ([]string, error) {
	rows, err := db.meta.r.QueryContext(ctx, `SELECT DISTINCT tenant FROM chain_heads UNION SELECT DISTINCT tenant FROM integrity_statements ORDER BY 1`)
	if err != nil {
		return nil, translate(err, "list chain tenants")
	}
	return scanStrings(rows, "list chain tenants")
}

func scanStrings(rows *sql.Rows, what string) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, translate(err, what)
		}
		out = append(out, s)
	}
	return out, translate(rows.Err(), what)
}

// TrimChain deletes a day's entries up to seq through (and erased-field
// hashes of the day, whose events are gone with them).
func (db *DB) TrimChain(ctx context.Context, tenant, day string, through int64) error {
	if tenant == "" {
		return invalid("tenant", "a chain trim needs a tenant")
	}
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "trim chain")
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `DELETE FROM erased_fields WHERE tenant = ? AND day = ? AND event_id IN
		(SELECT event_id FROM chain_entries WHERE tenant = ? AND day = ? AND seq <= ?)`, tenant, day, tenant, day, through); err != nil {
		return translate(err, "trim erased fields")
	}
	// Erasure statements are per day ("<erasure id>/<day>"); they go once
	// no erased field of theirs is left.
	if _, err := tx.ExecContext(ctx, `DELETE FROM integrity_statements WHERE tenant = ? AND kind = ? AND key LIKE ?
		AND key NOT IN (SELECT erasure FROM erased_fields WHERE tenant = ?)`,
		tenant, audit.StatementErasure, "%/"+day, tenant); err != nil {
		return translate(err, "trim erasure statements")
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM chain_entries WHERE tenant = ? AND day = ? AND seq <= ?`, tenant, day, through); err != nil {
		return translate(err, "trim chain")
	}
	return translate(tx.Commit(), "trim chain")
}

func statementKey(s audit.Statement) string {
	if s.Kind == audit.StatementErasure {
		return s.ID
	}
	return s.Day
}

// PutStatement stores a signed statement, replacing the one of the same
// tenant, kind and day (or erasure id).
func (db *DB) PutStatement(ctx context.Context, s audit.Statement) error {
	return putStatement(ctx, db.meta.w, s)
}

func putStatement(ctx context.Context, q querier, s audit.Statement) error {
	if s.Tenant == "" {
		return invalid("tenant", "a statement needs a tenant")
	}
	switch s.Kind {
	case audit.StatementCheckpoint, audit.StatementTombstone, audit.StatementErasure:
	default:
		return invalid("kind", "unknown statement kind %q", s.Kind)
	}
	_, err := q.ExecContext(ctx, `INSERT INTO integrity_statements (tenant, kind, key, count, key_id, body, sig, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, kind, key) DO UPDATE SET
		count = excluded.count, key_id = excluded.key_id, body = excluded.body, sig = excluded.sig, at = excluded.at`,
		s.Tenant, s.Kind, statementKey(s), s.Count, s.KeyID, s.Body, s.Signature, nanos(s.At))
	return translate(err, "store "+s.Kind+" statement")
}

// Statement returns the statement of tenant, kind and day (or erasure id).
func (db *DB) Statement(ctx context.Context, tenant, kind, key string) (*audit.Statement, error) {
	s := audit.Statement{Tenant: tenant, Kind: kind}
	var at int64
	err := db.meta.r.QueryRowContext(ctx, `SELECT count, key_id, body, sig, at FROM integrity_statements
		WHERE tenant = ? AND kind = ? AND key = ?`, tenant, kind, key).Scan(&s.Count, &s.KeyID, &s.Body, &s.Signature, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(kind, tenant+"/"+key)
	}
	if err != nil {
		return nil, translate(err, "read "+kind+" statement")
	}
	if kind == audit.StatementErasure {
		s.ID = key
	} else {
		s.Day = key
	}
	s.At = fromNanos(at)
	return &s, nil
}

// Unsigned returns the heads that moved past their latest checkpoint.
func (db *DB) Unsigned(ctx context.Context, limit int) ([]audit.ChainHead, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := db.meta.r.QueryContext(ctx, `SELECT h.tenant, h.day, h.count, h.head FROM chain_heads h
		LEFT JOIN integrity_statements s ON s.tenant = h.tenant AND s.kind = ? AND s.key = h.day
		WHERE s.count IS NULL OR s.count <> h.count ORDER BY h.tenant, h.day LIMIT ?`, audit.StatementCheckpoint, limit)
	if err != nil {
		return nil, translate(err, "list unsigned chain heads")
	}
	defer rows.Close()
	var out []audit.ChainHead
	for rows.Next() {
		var h audit.ChainHead
		if err := rows.Scan(&h.Tenant, &h.Day, &h.Count, &h.Head); err != nil {
			return nil, translate(err, "list unsigned chain heads")
		}
		out = append(out, h)
	}
	return out, translate(rows.Err(), "list unsigned chain heads")
}

// PutErasure stores an erasure statement and the original hashes it signs.
func (db *DB) PutErasure(ctx context.Context, s audit.Statement, fields []audit.ErasedField) error {
	if s.Kind != audit.StatementErasure || s.ID == "" {
		return invalid("kind", "an erasure needs an erasure statement with an id")
	}
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "store erasure")
	}
	defer func() { _ = tx.Rollback() }()
	if err := putStatement(ctx, tx, s); err != nil {
		return err
	}
	for _, f := range fields {
		if f.Tenant != s.Tenant || f.Erasure != s.ID {
			return invalid("fields", "erased field of event %s does not belong to erasure %s", f.EventID, s.ID)
		}
		// A field erased twice keeps its first (original) hash.
		if _, err := tx.ExecContext(ctx, `INSERT INTO erased_fields (tenant, day, event_id, field, hash, erasure)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, f.Tenant, f.Day, f.EventID, f.Field, f.Hash, f.Erasure); err != nil {
			return translate(err, "store erased field of event "+f.EventID)
		}
	}
	return translate(tx.Commit(), "store erasure")
}

// ErasedFields returns the erased-field hashes of a tenant's day.
func (db *DB) ErasedFields(ctx context.Context, tenant, day string) ([]audit.ErasedField, error) {
	if tenant == "" {
		return nil, invalid("tenant", "erased fields need a tenant")
	}
	rows, err := db.meta.r.QueryContext(ctx, `SELECT event_id, field, hash, erasure FROM erased_fields
		WHERE tenant = ? AND day = ? ORDER BY event_id, field`, tenant, day)
	if err != nil {
		return nil, translate(err, "read erased fields")
	}
	defer rows.Close()
	var out []audit.ErasedField
	for rows.Next() {
		f := audit.ErasedField{Tenant: tenant, Day: day}
		if err := rows.Scan(&f.EventID, &f.Field, &f.Hash, &f.Erasure); err != nil {
			return nil, translate(err, "read erased fields")
		}
		out = append(out, f)
	}
	return out, translate(rows.Err(), "read erased fields")
}
