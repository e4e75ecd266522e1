package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.IntegrityStore = (*DB)(nil)

// maxChainPage caps one ChainEntries page.
const maxChainPage = 10_000

// AppendChain stores chain entries in one transaction, checking that each
// continues its day's head and that no event is chained twice, and moves
// the heads. The entries of a chain fill its last block up to
// chainBlockSize links (the block is rewritten), then new blocks.
func (db *DB) AppendChain(ctx context.Context, entries []audit.ChainEntry) error {
	if len(entries) == 0 {
		return nil
	}
	for _, e := range entries {
		if e.Tenant == "" {
			return invalid("tenant", "chain entry of event %s has no tenant", e.EventID)
		}
	}
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "append chain")
	}
	defer func() { _ = tx.Rollback() }()
	rctx := rowContext(ctx)

	// Each entry continues its day's head.
	type day struct{ tenant, day string }
	type chainState struct {
		k       day
		entries []*audit.ChainEntry
	}
	var chains []*chainState
	byDay := map[day]*chainState{}
	heads := map[day]int64{}
	byTenant := map[string][]string{}
	seen := map[[2]string]bool{}
	for i := range entries {
		e := &entries[i]
		if err := ctx.Err(); err != nil {
			return err
		}
		k := day{e.Tenant, e.Day}
		n, ok := heads[k]
		if !ok {
			err := tx.QueryRowContext(rctx, `SELECT count FROM chain_heads WHERE tenant = ? AND day = ?`, e.Tenant, e.Day).Scan(&n)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return translate(err, "read chain head")
			}
		}
		if e.Seq != n+1 {
			return &audit.Error{Code: audit.ECONFLICT, Field: "seq",
				Message: fmt.Sprintf("chain %s/%s is at %d, entry of event %s has seq %d", e.Tenant, e.Day, n, e.EventID, e.Seq)}
		}
		heads[k] = e.Seq
		if seen[[2]string{e.Tenant, e.EventID}] {
			return chainedAlready(e, e.Day, 0)
		}
		seen[[2]string{e.Tenant, e.EventID}] = true
		byTenant[e.Tenant] = append(byTenant[e.Tenant], e.EventID)
		c := byDay[k]
		if c == nil {
			c = &chainState{k: k}
			byDay[k] = c
			chains = append(chains, c)
		}
		c.entries = append(c.entries, e)
	}

	// No event is chained already.
	look := &chainLookup{q: tx}
	for tenant, ids := range byTenant {
		found, err := look.find(ctx, tenant, ids)
		if err != nil {
			return err
		}
		if len(found) == 0 {
			continue
		}
		for i := range entries {
			if e := &entries[i]; e.Tenant == tenant {
				if at, ok := found[e.EventID]; ok {
					return chainedAlready(e, at.day, at.seq)
				}
			}
		}
	}

	// The links: each chain's last block filled up, then new blocks.
	idw := &chainIDWriter{q: tx}
	for _, c := range chains {
		if err := ctx.Err(); err != nil {
			return err
		}
		var chain int64
		err := tx.QueryRowContext(rctx, `SELECT id FROM chains WHERE tenant = ? AND day = ?`, c.k.tenant, c.k.day).Scan(&chain)
		if errors.Is(err, sql.ErrNoRows) {
			err = tx.QueryRowContext(rctx, `INSERT INTO chains (tenant, day) VALUES (?, ?) RETURNING id`, c.k.tenant, c.k.day).Scan(&chain)
		}
		if err != nil {
			return translate(err, "number chain")
		}
		first := c.entries[0].Seq
		b, err := scanBlock(tx.QueryRowContext(rctx, `SELECT `+blockColumns+` FROM chain_blocks
			WHERE chain = ? ORDER BY first_seq DESC LIMIT 1`, chain))
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return translate(err, "read chain block")
		}
		var last []byte
		if b != nil && b.n < chainBlockSize && b.end() == first-1 {
			last = b.hashList()[b.n-1]
		} else {
			b = &chainBlock{first: first}
		}
		for _, e := range c.entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			if b.n == chainBlockSize {
				if err := putBlock(rctx, tx, chain, b); err != nil {
					return err
				}
				b = &chainBlock{first: e.Seq}
			}
			b.add(e.EventID, e.Leaf, e.Hash, last)
			last = e.Hash
			if err := idw.add(rctx, e.Tenant, e.EventID, chain, e.Seq); err != nil {
				return err
			}
		}
		if err := putBlock(rctx, tx, chain, b); err != nil {
			return err
		}
		// The day's head moves once per call, to its last entry.
		if _, err := tx.ExecContext(rctx, `INSERT INTO chain_heads (tenant, day, count, head) VALUES (?, ?, ?, ?)
			ON CONFLICT (tenant, day) DO UPDATE SET count = excluded.count, head = excluded.head`,
			c.k.tenant, c.k.day, heads[c.k], last); err != nil {
			return translate(err, "move chain head")
		}
	}
	if err := idw.flush(rctx); err != nil {
		return err
	}
	return translate(tx.Commit(), "append chain")
}

// chainedAlready is the refusal of an entry whose event a chain links
// already (seq 0: an earlier entry of the same call).
func chainedAlready(e *audit.ChainEntry, day string, seq int64) error {
	where := "an earlier entry of the same call"
	if seq > 0 {
		where = fmt.Sprintf("link %d of %s/%s", seq, e.Tenant, day)
	}
	return &audit.Error{Code: audit.ECONFLICT, Field: "event_id", Message: "already exists",
		Err: fmt.Errorf("append chain entry of event %s: the event is chained already, at %s", e.EventID, where)}
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
	found, err := (&chainLookup{q: db.meta.r}).find(ctx, tenant, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(found))
	for id := range found {
		out[id] = true
	}
	return out, nil
}

// ChainEntries returns a page of a day's entries after seq after: the
// blocks that hold them, decoded, their hashes recomputed from each
// block's first.
func (db *DB) ChainEntries(ctx context.Context, tenant, day string, after int64, limit int) ([]audit.ChainEntry, error) {
	if tenant == "" {
		return nil, invalid("tenant", "chain entries need a tenant")
	}
	if limit <= 0 || limit > maxChainPage {
		limit = maxChainPage
	}
	// A block holds at most chainBlockSize links: the one that holds
	// link after+1 starts after after-chainBlockSize.
	rows, err := db.meta.r.QueryContext(ctx, `SELECT `+blockColumns+` FROM chain_blocks
		WHERE chain = (SELECT id FROM chains WHERE tenant = ? AND day = ?) AND first_seq > ? ORDER BY first_seq`,
		tenant, day, after-chainBlockSize)
	if err != nil {
		return nil, translate(err, "read chain entries")
	}
	defer rows.Close()
	var out []audit.ChainEntry
	for len(out) < limit && rows.Next() {
		b, err := scanBlock(rows)
		if err != nil {
			return nil, translate(err, "read chain entries")
		}
		if b.end() <= after {
			continue
		}
		ids, err := b.idList()
		if err != nil {
			return nil, err
		}
		hashes := b.hashList()
		for i := range b.n {
			seq := b.first + int64(i)
			if seq <= after {
				continue
			}
			if len(out) == limit {
				break
			}
			out = append(out, audit.ChainEntry{Tenant: tenant, Day: day, Seq: seq, EventID: ids[i], Leaf: b.leaves[i], Hash: hashes[i]})
		}
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
// hashes of the day, whose events are gone with them): the blocks that
// end at or before through, and the links up to through of a block that
// goes on after it, which is rewritten to start at through+1.
func (db *DB) TrimChain(ctx context.Context, tenant, day string, through int64) error {
	if tenant == "" {
		return invalid("tenant", "a chain trim needs a tenant")
	}
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "trim chain")
	}
	defer func() { _ = tx.Rollback() }()
	rctx := rowContext(ctx)
	// Erased fields are few: the day's erased events, to match against
	// the trimmed links.
	rows, err := tx.QueryContext(rctx, `SELECT DISTINCT event_id FROM erased_fields WHERE tenant = ? AND day = ?`, tenant, day)
	if err != nil {
		return translate(err, "read erased fields")
	}
	erased, err := scanStrings(rows, "read erased fields")
	if err != nil {
		return err
	}
	isErased := make(map[string]bool, len(erased))
	for _, id := range erased {
		isErased[id] = true
	}
	var chain int64
	err = tx.QueryRowContext(rctx, `SELECT id FROM chains WHERE tenant = ? AND day = ?`, tenant, day).Scan(&chain)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return translate(err, "trim chain")
	}
	for done := false; chain != 0 && !done; {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := scanBlock(tx.QueryRowContext(rctx, `SELECT `+blockColumns+` FROM chain_blocks
			WHERE chain = ? AND first_seq <= ? ORDER BY first_seq LIMIT 1`, chain, through))
		if errors.Is(err, sql.ErrNoRows) {
			break
		}
		if err != nil {
			return translate(err, "read chain block")
		}
		ids, err := b.idList()
		if err != nil {
			return err
		}
		cut := b.n // links of the block trimmed
		if b.end() > through {
			cut, done = int(through-b.first+1), true
		}
		args := make([]any, 0, 3+cut)
		args = append(args, chain, through)
		for _, id := range ids[:cut] {
			k := dedupeKey(tenant, id)
			args = append(args, k[:])
			if isErased[id] {
				if _, err := tx.ExecContext(rctx, `DELETE FROM erased_fields WHERE tenant = ? AND day = ? AND event_id = ?`, tenant, day, id); err != nil {
					return translate(err, "trim erased fields")
				}
			}
		}
		if _, err := tx.ExecContext(rctx, `DELETE FROM chain_ids WHERE chain = ? AND seq <= ? AND k IN `+placeholders(1, cut), args...); err != nil {
			return translate(err, "trim chained event keys")
		}
		if _, err := tx.ExecContext(rctx, `DELETE FROM chain_blocks WHERE chain = ? AND first_seq = ?`, chain, b.first); err != nil {
			return translate(err, "trim chain")
		}
		if cut < b.n {
			rest, err := b.from(cut)
			if err != nil {
				return err
			}
			if err := putBlock(rctx, tx, chain, rest); err != nil {
				return err
			}
		}
	}
	// Erasure statements are per day ("<erasure id>/<day>"); they go once
	// no erased field of theirs is left.
	if _, err := tx.ExecContext(rctx, `DELETE FROM integrity_statements WHERE tenant = ? AND kind = ? AND key LIKE ?
		AND key NOT IN (SELECT erasure FROM erased_fields WHERE tenant = ?)`,
		tenant, audit.StatementErasure, "%/"+day, tenant); err != nil {
		return translate(err, "trim erasure statements")
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
