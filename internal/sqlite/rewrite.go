package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.DerivedRewriter = (*DB)(nil)

// rewriteFindingSQL replaces a stored finding's document, keeping its
// triage (status, note, resolution) and created_at; it records no change.
const rewriteFindingSQL = `UPDATE findings SET ip = ?,
	doc = json_set(CAST(? AS TEXT),
		'$.created_at', json_extract(CAST(doc AS TEXT), '$.created_at'),
		'$.status', status,
		'$.note', coalesce(json_extract(CAST(doc AS TEXT), '$.note'), ''),
		'$.resolution', coalesce(json_extract(CAST(doc AS TEXT), '$.resolution'), ''))
	WHERE tenant = ? AND id = ?`

// rewriteIncidentSQL is rewriteFindingSQL for incidents.
const rewriteIncidentSQL = `UPDATE incidents SET
	doc = json_set(CAST(? AS TEXT),
		'$.created_at', json_extract(CAST(doc AS TEXT), '$.created_at'),
		'$.status', status,
		'$.note', coalesce(json_extract(CAST(doc AS TEXT), '$.note'), ''))
	WHERE tenant = ? AND id = ?`

// RewriteFindings replaces the documents of stored findings in one
// transaction, for an erasure (see audit.DerivedRewriter); unknown ones are
// skipped.
func (db *DB) RewriteFindings(ctx context.Context, fs []audit.Finding) error {
	return db.rewrite(ctx, "findings", len(fs), func(i int) (string, []any, error) {
		f := &fs[i]
		doc, err := json.Marshal(f)
		if err != nil {
			return "", nil, fmt.Errorf("encode finding %s: %w", f.ID, err)
		}
		return rewriteFindingSQL, []any{f.IP, doc, f.Tenant, f.ID}, nil
	})
}

// RewriteIncidents replaces the documents of stored incidents in one
// transaction, for an erasure (see audit.DerivedRewriter); unknown ones are
// skipped.
func (db *DB) RewriteIncidents(ctx context.Context, is []audit.Incident) error {
	return db.rewrite(ctx, "incidents", len(is), func(i int) (string, []any, error) {
		inc := &is[i]
		doc, err := json.Marshal(inc)
		if err != nil {
			return "", nil, fmt.Errorf("encode incident %s: %w", inc.ID, err)
		}
		return rewriteIncidentSQL, []any{doc, inc.Tenant, inc.ID}, nil
	})
}

func (db *DB) rewrite(ctx context.Context, what string, n int, stmt func(i int) (string, []any, error)) error {
	if n == 0 {
		return nil
	}
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "rewrite "+what)
	}
	defer func() { _ = tx.Rollback() }()
	for i := range n {
		q, args, err := stmt(i)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return translate(err, "rewrite "+what)
		}
	}
	return translate(tx.Commit(), "rewrite "+what)
}
