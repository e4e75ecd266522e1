package postgres

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.StateStore = (*Store)(nil)

// stateBatch is how many keys one statement of SaveState writes, and one
// page of ScanState reads.
const stateBatch = 1000

// GetState returns one value of detection state; ENOTFOUND when missing.
func (s *Store) GetState(ctx context.Context, ns, key string) ([]byte, error) {
	var v []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM state WHERE ns = $1 AND key = $2`, ns, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("state", ns+"/"+key)
	}
	if err != nil {
		return nil, translate(err, "get state")
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// SaveState applies every delete, then every put, of ns in one
// transaction: keys go in sorted arrays, stateBatch per statement (an
// unnest INSERT … ON CONFLICT DO UPDATE), so a checkpoint of thousands of
// keys takes a few round trips.
func (s *Store) SaveState(ctx context.Context, ns string, puts map[string][]byte, deletes []string) error {
	return s.saveState(ctx, ns, puts, deletes, nil)
}

// saveState is SaveState with a guard: when not nil, it runs first in the
// transaction, and an error from it is returned with nothing written. A
// retried transaction runs the guard again.
func (s *Store) saveState(ctx context.Context, ns string, puts map[string][]byte, deletes []string, guard func(pgx.Tx) error) error {
	if len(puts) == 0 && len(deletes) == 0 {
		return ctx.Err()
	}
	dels := slices.Sorted(slices.Values(deletes))
	keys := slices.Sorted(maps.Keys(puts))
	return s.inTx(ctx, "save state", func(tx pgx.Tx) error {
		if guard != nil {
			if err := guard(tx); err != nil {
				return err
			}
		}
		for chunk := range slices.Chunk(dels, stateBatch) {
			if _, err := tx.Exec(ctx, `DELETE FROM state WHERE ns = $1 AND key = ANY($2::text[])`, ns, chunk); err != nil {
				return err
			}
		}
		for chunk := range slices.Chunk(keys, stateBatch) {
			vals := make([][]byte, len(chunk))
			for i, k := range chunk {
				if vals[i] = puts[k]; vals[i] == nil {
					vals[i] = []byte{}
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO state (ns, key, value)
				SELECT $1, k, v FROM unnest($2::text[], $3::bytea[]) AS u(k, v)
				ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value`, ns, chunk, vals); err != nil {
				return err
			}
		}
		return nil
	})
}

// ScanState calls fn for every key of ns in ascending order and stops at
// the first error fn returns, which ScanState returns. It reads pages of
// stateBatch keys in one repeatable-read transaction, so the scan sees one
// snapshot and memory stays bounded by a page.
func (s *Store) ScanState(ctx context.Context, ns string, fn func(key string, value []byte) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return translate(err, "scan state")
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	type kv struct {
		k string
		v []byte
	}
	after, first := "", true
	page := make([]kv, 0, stateBatch)
	for {
		// Two statements rather than one with an OR, so that every page
		// is a range scan of the primary key.
		q := `SELECT key, value FROM state WHERE ns = $1 AND key > $2 ORDER BY key LIMIT $3`
		if first {
			q = `SELECT key, value FROM state WHERE ns = $1 AND key >= $2 ORDER BY key LIMIT $3`
		}
		rows, err := tx.Query(ctx, q, ns, after, stateBatch)
		if err != nil {
			return translate(err, "scan state")
		}
		page = page[:0]
		for rows.Next() {
			var r kv
			if err := rows.Scan(&r.k, &r.v); err != nil {
				rows.Close()
				return translate(err, "scan state")
			}
			if r.v == nil {
				r.v = []byte{}
			}
			page = append(page, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return translate(err, "scan state")
		}
		for _, r := range page {
			if err := fn(r.k, r.v); err != nil {
				return err
			}
		}
		if len(page) < stateBatch {
			return nil
		}
		after, first = page[len(page)-1].k, false
	}
}
