package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.IntegrityStore = (*Store)(nil)

// maxChainPage caps one ChainEntries page; chainedBatch is how many ids
// one Chained query looks up.
const (
	maxChainPage = 10_000
	chainedBatch = 1000
)

// chainDay names one (tenant, day) chain.
type chainDay struct{ tenant, day string }

// AppendChain stores chain entries in one transaction, checking that each
// continues its day's head, and moves the heads. The heads of the days it
// touches are locked (FOR UPDATE) first, in (tenant, day) order, so
// concurrent appends to one day serialise; two first appends to a new day
// both try seq 1 and the second gets ECONFLICT.
func (s *Store) AppendChain(ctx context.Context, entries []audit.ChainEntry) error {
	if len(entries) == 0 {
		return nil
	}
	var days []chainDay
	for _, e := range entries {
		if e.Tenant == "" {
			return invalid("tenant", "chain entry of event %s has no tenant", e.EventID)
		}
		if k := (chainDay{e.Tenant, e.Day}); !slices.Contains(days, k) {
			days = append(days, k)
		}
	}
	slices.SortFunc(days, func(a, b chainDay) int {
		return cmp.Or(cmp.Compare(a.tenant, b.tenant), cmp.Compare(a.day, b.day))
	})
	return s.inTx(ctx, "append chain", func(tx pgx.Tx) error {
		heads := make(map[chainDay]int64, len(days))
		last := make(map[chainDay][]byte, len(days))
		for _, k := range days {
			var n int64
			err := tx.QueryRow(ctx, `SELECT count FROM chain_heads WHERE tenant = $1 AND day = $2 FOR UPDATE`, k.tenant, k.day).Scan(&n)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			heads[k] = n
		}
		cols := struct {
			tenant, day, event []string
			seq                []int64
			leaf, hash         [][]byte
		}{}
		for _, e := range entries {
			k := chainDay{e.Tenant, e.Day}
			if n := heads[k]; e.Seq != n+1 {
				return &audit.Error{Code: audit.ECONFLICT, Field: "seq",
					Message: fmt.Sprintf("chain %s/%s is at %d, entry of event %s has seq %d", e.Tenant, e.Day, n, e.EventID, e.Seq)}
			}
			heads[k], last[k] = e.Seq, e.Hash
			cols.tenant = append(cols.tenant, e.Tenant)
			cols.day = append(cols.day, e.Day)
			cols.event = append(cols.event, e.EventID)
			cols.seq = append(cols.seq, e.Seq)
			cols.leaf = append(cols.leaf, nonNilBytes(e.Leaf))
			cols.hash = append(cols.hash, nonNilBytes(e.Hash))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO chain_entries (tenant, day, seq, event_id, leaf, hash)
			SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bytea[], $6::bytea[])`,
			cols.tenant, cols.day, cols.seq, cols.event, cols.leaf, cols.hash); err != nil {
			// The seqs were checked above: a conflict is an event chained
			// already, which the server's detail names.
			if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == "23505" && pe.Detail != "" {
				return &audit.Error{Code: audit.ECONFLICT, Field: "event_id", Message: "an event is chained already: " + pe.Detail, Err: err}
			}
			return err
		}
		// Each day's head moves once per call, to its last entry.
		for _, k := range days {
			if _, err := tx.Exec(ctx, `INSERT INTO chain_heads (tenant, day, count, head) VALUES ($1, $2, $3, $4)
				ON CONFLICT (tenant, day) DO UPDATE SET count = excluded.count, head = excluded.head`,
				k.tenant, k.day, heads[k], nonNilBytes(last[k])); err != nil {
				return err
			}
		}
		return nil
	})
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// ChainHead returns the end of a day's chain (Count 0 and a nil Head when
// it has none).
func (s *Store) ChainHead(ctx context.Context, tenant, day string) (audit.ChainHead, error) {
	h := audit.ChainHead{Tenant: tenant, Day: day}
	if tenant == "" {
		return h, invalid("tenant", "a chain head needs a tenant")
	}
	err := s.pool.QueryRow(ctx, `SELECT count, head FROM chain_heads WHERE tenant = $1 AND day = $2`, tenant, day).Scan(&h.Count, &h.Head)
	if errors.Is(err, pgx.ErrNoRows) {
		return audit.ChainHead{Tenant: tenant, Day: day}, nil
	}
	return h, translate(err, "read chain head")
}

// Chained returns which of ids have a chain entry in tenant.
func (s *Store) Chained(ctx context.Context, tenant string, ids []string) (map[string]bool, error) {
	if tenant == "" {
		return nil, invalid("tenant", "a chain lookup needs a tenant")
	}
	out := map[string]bool{}
	for chunk := range slices.Chunk(ids, chainedBatch) {
		rows, err := s.pool.Query(ctx, `SELECT event_id FROM chain_entries WHERE tenant = $1 AND event_id = ANY($2::text[])`, tenant, chunk)
		if err != nil {
			return nil, translate(err, "look up chain entries")
		}
		found, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, translate(err, "look up chain entries")
		}
		for _, id := range found {
			out[id] = true
		}
	}
	return out, nil
}

// ChainEntries returns a page of a day's entries after seq after, at most
// limit (capped at 10,000).
func (s *Store) ChainEntries(ctx context.Context, tenant, day string, after int64, limit int) ([]audit.ChainEntry, error) {
	if tenant == "" {
		return nil, invalid("tenant", "chain entries need a tenant")
	}
	if limit <= 0 || limit > maxChainPage {
		limit = maxChainPage
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, event_id, leaf, hash FROM chain_entries
		WHERE tenant = $1 AND day = $2 AND seq > $3 ORDER BY seq LIMIT $4`, tenant, day, after, limit)
	if err != nil {
		return nil, translate(err, "read chain entries")
	}
	var out []audit.ChainEntry
	for rows.Next() {
		e := audit.ChainEntry{Tenant: tenant, Day: day}
		if err := rows.Scan(&e.Seq, &e.EventID, &e.Leaf, &e.Hash); err != nil {
			rows.Close()
			return nil, translate(err, "read chain entries")
		}
		out = append(out, e)
	}
	return out, translate(rows.Err(), "read chain entries")
}

// ChainDays returns the days of tenant, ascending, with a head, a
// checkpoint or a tombstone within [from, to] ("" is unbounded).
func (s *Store) ChainDays(ctx context.Context, tenant, from, to string) ([]string, error) {
	if tenant == "" {
		return nil, invalid("tenant", "chain days need a tenant")
	}
	if to == "" {
		to = "9999-99-99"
	}
	rows, err := s.pool.Query(ctx, `SELECT day FROM chain_heads WHERE tenant = $1 AND day >= $2 AND day <= $3
		UNION SELECT key FROM integrity_statements WHERE tenant = $1 AND kind IN ($4, $5) AND key >= $2 AND key <= $3
		ORDER BY 1`, tenant, from, to, audit.StatementCheckpoint, audit.StatementTombstone)
	if err != nil {
		return nil, translate(err, "list chain days")
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, translate(err, "list chain days")
	}
	return out, nil
}

// ChainTenants returns the tenants, ascending, that have a chain or a
// statement.
func (s *Store) ChainTenants(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT tenant FROM chain_heads UNION SELECT DISTINCT tenant FROM integrity_statements ORDER BY 1`)
	if err != nil {
		return nil, translate(err, "list chain tenants")
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, translate(err, "list chain tenants")
	}
	return out, nil
}

// TrimChain deletes a day's entries up to seq through, keeping its head,
// with the erased-field hashes of the deleted events and the day's erasure
// statements left without erased fields.
func (s *Store) TrimChain(ctx context.Context, tenant, day string, through int64) error {
	if tenant == "" {
		return invalid("tenant", "a chain trim needs a tenant")
	}
	return s.inTx(ctx, "trim chain", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM erased_fields WHERE tenant = $1 AND day = $2 AND event_id IN
			(SELECT event_id FROM chain_entries WHERE tenant = $1 AND day = $2 AND seq <= $3)`, tenant, day, through); err != nil {
			return err
		}
		// Erasure statements are per day ("<erasure id>/<day>"); they go
		// once no erased field of theirs is left.
		suffix := "/" + day
		if _, err := tx.Exec(ctx, `DELETE FROM integrity_statements s WHERE s.tenant = $1 AND s.kind = $2
			AND right(s.key, length($3)) = $3
			AND NOT EXISTS (SELECT 1 FROM erased_fields f WHERE f.tenant = $1 AND f.erasure = s.key)`,
			tenant, audit.StatementErasure, suffix); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM chain_entries WHERE tenant = $1 AND day = $2 AND seq <= $3`, tenant, day, through)
		return err
	})
}

func statementKey(st audit.Statement) string {
	if st.Kind == audit.StatementErasure {
		return st.ID
	}
	return st.Day
}

// PutStatement stores a signed statement, replacing the one of the same
// tenant, kind and day (or erasure id).
func (s *Store) PutStatement(ctx context.Context, st audit.Statement) error {
	if err := checkStatement(st); err != nil {
		return err
	}
	return translate(putStatement(ctx, s.pool, st), "store "+st.Kind+" statement")
}

func checkStatement(st audit.Statement) error {
	if st.Tenant == "" {
		return invalid("tenant", "a statement needs a tenant")
	}
	switch st.Kind {
	case audit.StatementCheckpoint, audit.StatementTombstone, audit.StatementErasure:
		return nil
	}
	return invalid("kind", "unknown statement kind %q", st.Kind)
}

// metaExecer is a pool or a transaction.
type metaExecer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func putStatement(ctx context.Context, q metaExecer, st audit.Statement) error {
	_, err := q.Exec(ctx, `INSERT INTO integrity_statements (tenant, kind, key, count, key_id, body, sig, at_ns)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant, kind, key) DO UPDATE SET
		count = excluded.count, key_id = excluded.key_id, body = excluded.body, sig = excluded.sig, at_ns = excluded.at_ns`,
		st.Tenant, st.Kind, statementKey(st), st.Count, st.KeyID, nonNilBytes(st.Body), nonNilBytes(st.Signature), nanos(st.At))
	return err
}

// Statement returns the statement of tenant, kind and day (or erasure
// id); ENOTFOUND when none.
func (s *Store) Statement(ctx context.Context, tenant, kind, key string) (*audit.Statement, error) {
	st := audit.Statement{Tenant: tenant, Kind: kind}
	var at int64
	err := s.pool.QueryRow(ctx, `SELECT count, key_id, body, sig, at_ns FROM integrity_statements
		WHERE tenant = $1 AND kind = $2 AND key = $3`, tenant, kind, key).Scan(&st.Count, &st.KeyID, &st.Body, &st.Signature, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(kind, tenant+"/"+key)
	}
	if err != nil {
		return nil, translate(err, "read "+kind+" statement")
	}
	if kind == audit.StatementErasure {
		st.ID = key
	} else {
		st.Day = key
	}
	st.At = fromNanos(at)
	return &st, nil
}

// Unsigned returns the heads whose count is beyond their latest
// checkpoint's, ordered by tenant and day, at most limit (1000 when not
// positive).
func (s *Store) Unsigned(ctx context.Context, limit int) ([]audit.ChainHead, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.pool.Query(ctx, `SELECT h.tenant, h.day, h.count, h.head FROM chain_heads h
		LEFT JOIN integrity_statements s ON s.tenant = h.tenant AND s.kind = $1 AND s.key = h.day
		WHERE s.count IS NULL OR s.count <> h.count ORDER BY h.tenant, h.day LIMIT $2`, audit.StatementCheckpoint, limit)
	if err != nil {
		return nil, translate(err, "list unsigned chain heads")
	}
	var out []audit.ChainHead
	for rows.Next() {
		var h audit.ChainHead
		if err := rows.Scan(&h.Tenant, &h.Day, &h.Count, &h.Head); err != nil {
			rows.Close()
			return nil, translate(err, "list unsigned chain heads")
		}
		out = append(out, h)
	}
	return out, translate(rows.Err(), "list unsigned chain heads")
}

// PutErasure stores an erasure statement and the original hashes it signs
// in one transaction; a field erased before keeps its first hash.
func (s *Store) PutErasure(ctx context.Context, st audit.Statement, fields []audit.ErasedField) error {
	if st.Kind != audit.StatementErasure || st.ID == "" {
		return invalid("kind", "an erasure needs an erasure statement with an id")
	}
	if err := checkStatement(st); err != nil {
		return err
	}
	var days, events, names []string
	var hashes [][]byte
	for _, f := range fields {
		if f.Tenant != st.Tenant || f.Erasure != st.ID {
			return invalid("fields", "erased field of event %s does not belong to erasure %s", f.EventID, st.ID)
		}
		days, events, names = append(days, f.Day), append(events, f.EventID), append(names, f.Field)
		hashes = append(hashes, nonNilBytes(f.Hash))
	}
	return s.inTx(ctx, "store erasure", func(tx pgx.Tx) error {
		if err := putStatement(ctx, tx, st); err != nil {
			return err
		}
		if len(fields) == 0 {
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO erased_fields (tenant, day, event_id, field, hash, erasure)
			SELECT $1, d, e, f, h, $2 FROM unnest($3::text[], $4::text[], $5::text[], $6::bytea[]) AS u(d, e, f, h)
			ON CONFLICT DO NOTHING`, st.Tenant, st.ID, days, events, names, hashes)
		return err
	})
}

// ErasedFields returns the erased-field hashes of a tenant's day, ordered
// by event id and field.
func (s *Store) ErasedFields(ctx context.Context, tenant, day string) ([]audit.ErasedField, error) {
	if tenant == "" {
		return nil, invalid("tenant", "erased fields need a tenant")
	}
	rows, err := s.pool.Query(ctx, `SELECT event_id, field, hash, erasure FROM erased_fields
		WHERE tenant = $1 AND day = $2 ORDER BY event_id, field`, tenant, day)
	if err != nil {
		return nil, translate(err, "read erased fields")
	}
	var out []audit.ErasedField
	for rows.Next() {
		f := audit.ErasedField{Tenant: tenant, Day: day}
		if err := rows.Scan(&f.EventID, &f.Field, &f.Hash, &f.Erasure); err != nil {
			rows.Close()
			return nil, translate(err, "read erased fields")
		}
		out = append(out, f)
	}
	return out, translate(rows.Err(), "read erased fields")
}
