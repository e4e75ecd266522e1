package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.DerivedRewriter = (*Store)(nil)

// RewriteFindings replaces the documents (and IP column) of stored
// findings in one transaction, for an erasure (see audit.DerivedRewriter):
// each keeps its stored Status, Note, Resolution and CreatedAt; unknown ones
// are skipped, never created; no change is recorded.
func (s *Store) RewriteFindings(ctx context.Context, fs []audit.Finding) error {
	if len(fs) == 0 {
		return nil
	}
	return s.inTx(ctx, "rewrite findings", func(tx pgx.Tx) error {
		keys := distinctKeys(len(fs), func(i int) entityKey { return entityKey{fs[i].Tenant, fs[i].ID} })
		stored, err := loadTriage(ctx, tx, "findings", keys)
		if err != nil {
			return fmt.Errorf("read stored findings: %w", err)
		}
		latest := make(map[entityKey][]byte, len(keys))
		ips := make(map[entityKey]string, len(keys))
		for i := range fs {
			f := fs[i] // a copy: fs is the caller's
			k := entityKey{f.Tenant, f.ID}
			tr := stored[k]
			if tr == nil {
				continue
			}
			f.Status, f.Note, f.Resolution, f.CreatedAt = audit.FindingStatus(tr.status), tr.Note, tr.Resolution, tr.CreatedAt
			doc, err := json.Marshal(&f)
			if err != nil {
				return fmt.Errorf("encode finding %s: %w", f.ID, err)
			}
			latest[k], ips[k] = doc, f.IP
		}
		var tenants, ids, ipCol []string
		var docs [][]byte
		for _, k := range keys {
			if doc, ok := latest[k]; ok {
				tenants, ids, ipCol, docs = append(tenants, k.tenant), append(ids, k.id), append(ipCol, ips[k]), append(docs, doc)
			}
		}
		for start := 0; start < len(ids); start += findingChunk {
			end := min(start+findingChunk, len(ids))
			if _, err := tx.Exec(ctx, `UPDATE findings f SET ip = k.ip, doc = k.doc
				FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[]) AS k(tenant, id, ip, doc)
				WHERE f.tenant = k.tenant AND f.id = k.id`,
				tenants[start:end], ids[start:end], ipCol[start:end], docs[start:end]); err != nil {
				return fmt.Errorf("rewrite findings: %w", err)
			}
		}
		return nil
	})
}

// RewriteIncidents replaces the documents of stored incidents in one
// transaction, for an erasure (see audit.DerivedRewriter): each keeps its
// stored Status, Note and CreatedAt; unknown ones are skipped, never
// created; no change is recorded.
func (s *Store) RewriteIncidents(ctx context.Context, is []audit.Incident) error {
	if len(is) == 0 {
		return nil
	}
	return s.inTx(ctx, "rewrite incidents", func(tx pgx.Tx) error {
		keys := distinctKeys(len(is), func(i int) entityKey { return entityKey{is[i].Tenant, is[i].ID} })
		stored, err := loadTriage(ctx, tx, "incidents", keys)
		if err != nil {
			return fmt.Errorf("read stored incidents: %w", err)
		}
		latest := make(map[entityKey][]byte, len(keys))
		for i := range is {
			inc := is[i] // a copy: is is the caller's
			k := entityKey{inc.Tenant, inc.ID}
			tr := stored[k]
			if tr == nil {
				continue
			}
			inc.Status, inc.Note, inc.CreatedAt = audit.FindingStatus(tr.status), tr.Note, tr.CreatedAt
			doc, err := json.Marshal(&inc)
			if err != nil {
				return fmt.Errorf("encode incident %s: %w", inc.ID, err)
			}
			latest[k] = doc
		}
		var tenants, ids []string
		var docs [][]byte
		for _, k := range keys {
			if doc, ok := latest[k]; ok {
				tenants, ids, docs = append(tenants, k.tenant), append(ids, k.id), append(docs, doc)
			}
		}
		for start := 0; start < len(ids); start += findingChunk {
			end := min(start+findingChunk, len(ids))
			if _, err := tx.Exec(ctx, `UPDATE incidents i SET doc = k.doc
				FROM unnest($1::text[], $2::text[], $3::bytea[]) AS k(tenant, id, doc)
				WHERE i.tenant = k.tenant AND i.id = k.id`,
				tenants[start:end], ids[start:end], docs[start:end]); err != nil {
				return fmt.Errorf("rewrite incidents: %w", err)
			}
		}
		return nil
	})
}
