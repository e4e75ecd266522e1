package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.IncidentStore = (*Store)(nil)

// maxMergeHops bounds how many merges GetIncident follows.
const maxMergeHops = 16

// UpsertIncidents inserts or replaces incidents by (Tenant, ID) in one
// transaction, keeping CreatedAt and, once a human moved an incident out of
// open, its Status and Note. A merged incident (MergedInto set) moves its
// findings to the incident it joined and alerts nothing; any other write
// records its lifecycle change in the same transaction.
func (s *Store) UpsertIncidents(ctx context.Context, is []audit.Incident) error {
	if len(is) == 0 {
		return nil
	}
	for i := range is {
		if is[i].Tenant == "" || is[i].ID == "" {
			return invalid("id", "incident %d needs a tenant and an id", i)
		}
	}
	return s.inTx(ctx, "upsert incidents", func(tx pgx.Tx) error { return s.upsertIncidents(ctx, tx, is) })
}

func (s *Store) upsertIncidents(ctx context.Context, tx pgx.Tx, is []audit.Incident) error {
	keys := distinctKeys(len(is), func(i int) entityKey { return entityKey{is[i].Tenant, is[i].ID} })
	stored, err := loadTriage(ctx, tx, "incidents", keys)
	if err != nil {
		return fmt.Errorf("read stored incidents: %w", err)
	}
	// Rows first, changes after: recordChange takes the change log's lock
	// until commit, and a writer holding it must not then wait for
	// findings (the moves) that a batch of findings, waiting for that
	// lock, holds.
	type pending struct {
		inc audit.Incident
		doc []byte
	}
	var changes []pending
	for i := range is {
		if err := ctx.Err(); err != nil {
			return err
		}
		inc := is[i] // a copy: is is the caller's and a retry starts over
		if inc.Status == "" {
			inc.Status = audit.StatusOpen
		}
		k := entityKey{inc.Tenant, inc.ID}
		// The change carries the version detection made, with the status
		// given (which only seeds a new alert mark), as SQLite's does.
		incoming, err := json.Marshal(&inc)
		if err != nil {
			return fmt.Errorf("encode incident %s: %w", inc.ID, err)
		}
		if inc.MergedInto == "" {
			changes = append(changes, pending{inc, incoming})
		}
		doc := incoming
		if tr := stored[k]; tr != nil {
			inc.CreatedAt = tr.CreatedAt
			if tr.humanOwned() {
				inc.Status, inc.Note = audit.FindingStatus(tr.status), tr.Note
			}
			if doc, err = json.Marshal(&inc); err != nil {
				return fmt.Errorf("encode incident %s: %w", inc.ID, err)
			}
		}
		stored[k] = &triage{status: string(inc.Status), Note: inc.Note, CreatedAt: inc.CreatedAt}
		if _, err := tx.Exec(ctx, `INSERT INTO incidents
			(tenant, id, severity, status, family, merged_into, first_seen_ns, last_seen_ns, doc)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (tenant, id) DO UPDATE SET
				severity = excluded.severity, status = excluded.status, family = excluded.family,
				merged_into = excluded.merged_into, first_seen_ns = excluded.first_seen_ns,
				last_seen_ns = excluded.last_seen_ns, doc = excluded.doc`,
			inc.Tenant, inc.ID, int16(inc.Severity.Rank()), string(inc.Status), inc.Family, inc.MergedInto,
			nanos(inc.FirstSeen), nanos(inc.LastSeen), doc); err != nil {
			return fmt.Errorf("write incident %s: %w", inc.ID, err)
		}
		if inc.MergedInto != "" {
			if err := moveFindings(ctx, tx, inc.Tenant, inc.ID, inc.MergedInto); err != nil {
				return fmt.Errorf("move findings of incident %s: %w", inc.ID, err)
			}
		}
	}
	for _, c := range changes {
		inc := &c.inc
		if err := s.recordChange(ctx, tx, entityChange{kind: audit.KindIncident, tenant: inc.Tenant, id: inc.ID,
			severity: inc.Severity, status: inc.Status, rule: inc.HeadlineRule, family: inc.Family, doc: c.doc}); err != nil {
			return fmt.Errorf("record change of incident %s: %w", inc.ID, err)
		}
	}
	return nil
}

// moveFindings gives the findings of incident from (column and document)
// to incident to, a bounded chunk per statement.
func moveFindings(ctx context.Context, tx pgx.Tx, tenant, from, to string) error {
	if from == to {
		return nil
	}
	return patchFindings(ctx, tx, `tenant = $1 AND incident_id = $2`, []any{tenant, from},
		map[string]any{"incident_id": to}, `incident_id = $4`, []any{to})
}

// patchFindings sets fields of the documents of tenant's findings matching
// where (its parameters $1, $2 … in args) and the columns in set (its
// parameters $4, $5 … in setArgs: $1 to $3 are the patched keys and
// documents), chunk by chunk. Every
// chunk must stop matching where once patched, or this would not end.
// Documents are patched as JSON objects, not decoded into audit.Finding,
// so facts keep their exact numbers.
func patchFindings(ctx context.Context, tx pgx.Tx, where string, args []any, fields map[string]any, set string, setArgs []any) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		q := `SELECT tenant, id, doc FROM findings WHERE ` + where + fmt.Sprintf(` ORDER BY tenant, id LIMIT %d FOR UPDATE`, findingChunk)
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		var tenants, ids []string
		var docs [][]byte
		for rows.Next() {
			var tenant, id string
			var doc []byte
			if err := rows.Scan(&tenant, &id, &doc); err != nil {
				rows.Close()
				return err
			}
			patched, err := patchDoc(doc, fields)
			if err != nil {
				rows.Close()
				return fmt.Errorf("finding %s: %w", id, err)
			}
			tenants, ids, docs = append(tenants, tenant), append(ids, id), append(docs, patched)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		upd := `UPDATE findings f SET doc = k.doc, ` + set + `
			FROM unnest($1::text[], $2::text[], $3::bytea[]) AS k(tenant, id, doc)
			WHERE f.tenant = k.tenant AND f.id = k.id`
		if _, err := tx.Exec(ctx, upd, append([]any{tenants, ids, docs}, setArgs...)...); err != nil {
			return err
		}
		if len(ids) < findingChunk {
			return nil
		}
	}
}

// patchDoc sets top-level fields of the JSON object doc.
func patchDoc(doc []byte, fields map[string]any) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(doc, &obj); err != nil {
		return nil, fmt.Errorf("decode document: %w", err)
	}
	for k, v := range fields {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", k, err)
		}
		obj[k] = b
	}
	return json.Marshal(obj)
}

func getIncident(ctx context.Context, q findingQuerier, tenant, id string, lock bool) (*audit.Incident, error) {
	sql := `SELECT doc, merged_into FROM incidents WHERE tenant = $1 AND id = $2`
	if lock {
		sql += ` FOR UPDATE`
	}
	// Follow merges, a bounded number of hops.
	for range maxMergeHops {
		var doc []byte
		var merged string
		err := q.QueryRow(ctx, sql, tenant, id).Scan(&doc, &merged)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, notFound("incident", id)
		}
		if err != nil {
			return nil, translate(err, "get incident "+id)
		}
		if merged != "" {
			id = merged
			continue
		}
		var inc audit.Incident
		if err := json.Unmarshal(doc, &inc); err != nil {
			return nil, fmt.Errorf("decode incident %s: %w", id, err)
		}
		return &inc, nil
	}
	return nil, notFound("incident", id)
}

// GetIncident returns an incident of tenant, following merges; ENOTFOUND
// for an unknown id or one in another tenant.
func (s *Store) GetIncident(ctx context.Context, tenant, id string) (*audit.Incident, error) {
	if tenant == "" {
		return nil, notFound("incident", id)
	}
	return getIncident(ctx, s.pool, tenant, id, false)
}

// UpdateIncident applies a human's triage and records its lifecycle
// change, and with Cascade gives the same status and note to the
// incident's findings that are still open, in one transaction; ENOTFOUND
// as GetIncident, EINVALID for an unknown status.
func (s *Store) UpdateIncident(ctx context.Context, tenant, id string, u audit.IncidentUpdate) (*audit.Incident, error) {
	switch u.Status {
	case audit.StatusOpen, audit.StatusAcknowledged, audit.StatusResolved:
	default:
		return nil, invalid("status", "status %q must be open, acknowledged or resolved", u.Status)
	}
	if tenant == "" {
		return nil, notFound("incident", id)
	}
	var out *audit.Incident
	err := s.inTx(ctx, "update incident", func(tx pgx.Tx) error {
		inc, err := getIncident(ctx, tx, tenant, id, true)
		if err != nil {
			return err
		}
		inc.Status, inc.Note = u.Status, u.Note
		if !u.At.IsZero() {
			inc.UpdatedAt = u.At.UTC()
		}
		doc, err := json.Marshal(inc)
		if err != nil {
			return fmt.Errorf("encode incident %s: %w", inc.ID, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE incidents SET status = $1, doc = $2 WHERE tenant = $3 AND id = $4`,
			string(inc.Status), doc, tenant, inc.ID); err != nil {
			return fmt.Errorf("write incident %s: %w", inc.ID, err)
		}
		// The findings before the change: see upsertIncidents.
		if u.Cascade && u.Status != audit.StatusOpen {
			fields := map[string]any{"status": u.Status, "note": u.Note}
			if !u.At.IsZero() {
				fields["updated_at"] = u.At.UTC()
			}
			if err := patchFindings(ctx, tx, `tenant = $1 AND incident_id = $2 AND status = 'open'`, []any{tenant, inc.ID},
				fields, `status = $4`, []any{string(u.Status)}); err != nil {
				return fmt.Errorf("update findings of incident %s: %w", inc.ID, err)
			}
		}
		if err := s.recordChange(ctx, tx, entityChange{kind: audit.KindIncident, tenant: inc.Tenant, id: inc.ID,
			severity: inc.Severity, status: inc.Status, rule: inc.HeadlineRule, family: inc.Family, doc: doc, human: true}); err != nil {
			return fmt.Errorf("record change of incident %s: %w", inc.ID, err)
		}
		out = inc
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SearchIncidents returns incidents most recently seen first, ordered by
// (LastSeen, ID) descending (then tenant), with keyset paging; merged
// incidents are left out. A filter without Tenant or AllTenants is
// EINVALID.
func (s *Store) SearchIncidents(ctx context.Context, f audit.IncidentFilter) (*audit.IncidentPage, error) {
	if f.Tenant == "" && !f.AllTenants {
		return nil, invalid("tenant", "an incident search needs a tenant")
	}
	limit := searchLimit(f.Limit)
	var w whereList
	w.add("merged_into = ''")
	if f.Tenant != "" {
		w.add("tenant = ?", f.Tenant)
	}
	if f.Cursor != "" {
		c, err := parseSeenCursor(f.Cursor)
		if err != nil {
			return nil, err
		}
		w.add("(last_seen_ns, id, tenant) < (?, ?, ?)", c.ns, c.id, c.tenant)
	}
	if f.Severity != "" {
		w.add("severity >= ?", int16(f.Severity.Rank()))
	}
	if f.Status != "" {
		w.add("status = ?", string(f.Status))
	}
	if f.Family != "" {
		w.add("family = ?", f.Family)
	}
	if !f.Since.IsZero() {
		w.add("last_seen_ns >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		w.add("first_seen_ns < ?", f.Until.UnixNano())
	}
	q := `SELECT doc FROM incidents` + w.sql() + ` ORDER BY last_seen_ns DESC, id DESC, tenant DESC LIMIT ` + w.param(limit+1)
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, translate(err, "search incidents")
	}
	docs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, translate(err, "search incidents")
	}
	page := &audit.IncidentPage{Incidents: make([]audit.Incident, 0, min(len(docs), limit))}
	for _, doc := range docs {
		var inc audit.Incident
		if err := json.Unmarshal(doc, &inc); err != nil {
			return nil, fmt.Errorf("decode incident: %w", err)
		}
		page.Incidents = append(page.Incidents, inc)
	}
	if len(page.Incidents) > limit {
		page.Incidents = page.Incidents[:limit]
		last := page.Incidents[limit-1]
		page.Next = seenCursor{ns: nanos(last.LastSeen), tenant: last.Tenant, id: last.ID}.String()
	}
	return page, nil
}
