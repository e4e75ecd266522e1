package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.IncidentStore = (*DB)(nil)

// upsertIncidentSQL inserts an incident or takes the engine's new version,
// keeping created_at and, once a human has triaged it, its status and note
// (as findings do).
const upsertIncidentSQL = `INSERT INTO incidents
	(tenant, id, severity, status, family, merged_into, first_seen, last_seen, doc)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (tenant, id) DO UPDATE SET
		severity = excluded.severity,
		status = CASE WHEN incidents.status IN ('open', '') THEN excluded.status ELSE incidents.status END,
		family = excluded.family, merged_into = excluded.merged_into,
		first_seen = excluded.first_seen, last_seen = excluded.last_seen,
		doc = CASE WHEN incidents.status IN ('open', '')
			THEN json_set(CAST(excluded.doc AS TEXT),
				'$.created_at', json_extract(CAST(incidents.doc AS TEXT), '$.created_at'))
			ELSE json_set(CAST(excluded.doc AS TEXT),
				'$.created_at', json_extract(CAST(incidents.doc AS TEXT), '$.created_at'),
				'$.note', coalesce(json_extract(CAST(incidents.doc AS TEXT), '$.note'), ''),
				'$.status', incidents.status)
			END`

// moveFindingsSQL moves the findings of a merged incident to the one it
// joined, in the column and in the document.
const moveFindingsSQL = `UPDATE findings SET incident_id = ?,
	doc = json_set(CAST(doc AS TEXT), '$.incident_id', ?)
	WHERE tenant = ? AND incident_id = ?`

// UpsertIncidents inserts or replaces incidents by (Tenant, ID) in one
// transaction; a merged incident moves its findings to the incident it
// joined.
func (db *DB) UpsertIncidents(ctx context.Context, is []audit.Incident) error {
	if len(is) == 0 {
		return nil
	}
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "upsert incidents")
	}
	defer func() { _ = tx.Rollback() }()
	rctx := rowContext(ctx)
	for i := range is {
		if err := ctx.Err(); err != nil {
			return err
		}
		inc := is[i]
		if inc.Tenant == "" || inc.ID == "" {
			return invalid("id", "incident %d needs a tenant and an id", i)
		}
		if inc.Status == "" {
			inc.Status = audit.StatusOpen
		}
		doc, err := json.Marshal(&inc)
		if err != nil {
			return fmt.Errorf("encode incident %s: %w", inc.ID, err)
		}
		if _, err := tx.ExecContext(rctx, upsertIncidentSQL, inc.Tenant, inc.ID, inc.Severity.Rank(), string(inc.Status),
			inc.Family, inc.MergedInto, nanos(inc.FirstSeen), nanos(inc.LastSeen), doc); err != nil {
			return translate(err, "upsert incident "+inc.ID)
		}
		if inc.MergedInto == "" {
			if err := db.recordChange(rctx, tx, entityChange{kind: audit.KindIncident, tenant: inc.Tenant, id: inc.ID,
				severity: inc.Severity, status: inc.Status, rule: inc.HeadlineRule, family: inc.Family, doc: doc}); err != nil {
				return err
			}
		}
		if inc.MergedInto != "" {
			if _, err := tx.ExecContext(rctx, moveFindingsSQL, inc.MergedInto, inc.MergedInto, inc.Tenant, inc.ID); err != nil {
				return translate(err, "move findings of incident "+inc.ID)
			}
		}
	}
	return translate(tx.Commit(), "upsert incidents")
}

func getIncident(ctx context.Context, q querier, tenant, id string) (*audit.Incident, error) {
	// Follow merges, a bounded number of hops.
	for range 16 {
		var doc []byte
		var merged string
		err := q.QueryRowContext(ctx, `SELECT doc, merged_into FROM incidents WHERE tenant = ? AND id = ?`, tenant, id).Scan(&doc, &merged)
		if errors.Is(err, sql.ErrNoRows) {
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

// GetIncident returns an incident of tenant, following merges;
// ENOTFOUND for an unknown id or one in another tenant.
func (db *DB) GetIncident(ctx context.Context, tenant, id string) (*audit.Incident, error) {
	if tenant == "" {
		return nil, notFound("incident", id)
	}
	return getIncident(ctx, db.meta.r, tenant, id)
}

// UpdateIncident applies a human's triage, and with Cascade the same status
// and note to the incident's findings that are still open, in one
// transaction.
func (db *DB) UpdateIncident(ctx context.Context, tenant, id string, u audit.IncidentUpdate) (*audit.Incident, error) {
	switch u.Status {
	case audit.StatusOpen, audit.StatusAcknowledged, audit.StatusResolved:
	default:
		return nil, invalid("status", "status %q must be open, acknowledged or resolved", u.Status)
	}
	if tenant == "" {
		return nil, notFound("incident", id)
	}
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, translate(err, "update incident")
	}
	defer func() { _ = tx.Rollback() }()
	inc, err := getIncident(ctx, tx, tenant, id)
	if err != nil {
		return nil, err
	}
	inc.Status, inc.Note = u.Status, u.Note
	if !u.At.IsZero() {
		inc.UpdatedAt = u.At.UTC()
	}
	doc, err := json.Marshal(inc)
	if err != nil {
		return nil, fmt.Errorf("encode incident %s: %w", inc.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE incidents SET status = ?, doc = ? WHERE tenant = ? AND id = ?`,
		string(inc.Status), doc, tenant, inc.ID); err != nil {
		return nil, translate(err, "update incident "+inc.ID)
	}
	if err := db.recordChange(ctx, tx, entityChange{kind: audit.KindIncident, tenant: inc.Tenant, id: inc.ID,
		severity: inc.Severity, status: inc.Status, rule: inc.HeadlineRule, family: inc.Family, doc: doc, human: true}); err != nil {
		return nil, err
	}
	if u.Cascade && u.Status != audit.StatusOpen {
		at := ""
		if !u.At.IsZero() {
			at = u.At.UTC().Format("2006-01-02T15:04:05.999999999Z07:00")
		}
		if _, err := tx.ExecContext(ctx, `UPDATE findings SET status = ?,
			doc = json_set(CAST(doc AS TEXT), '$.status', ?, '$.note', ?, '$.updated_at',
				CASE WHEN ? = '' THEN json_extract(CAST(doc AS TEXT), '$.updated_at') ELSE ? END)
			WHERE tenant = ? AND incident_id = ? AND status = 'open'`,
			string(u.Status), string(u.Status), u.Note, at, at, tenant, inc.ID); err != nil {
			return nil, translate(err, "update findings of incident "+inc.ID)
		}
	}
	return inc, translate(tx.Commit(), "update incident")
}

// SearchIncidents returns incidents most recently seen first, ordered by
// (LastSeen, ID) descending (then tenant), with keyset paging; merged
// incidents are left out. A filter without Tenant or AllTenants is
// EINVALID.
func (db *DB) SearchIncidents(ctx context.Context, f audit.IncidentFilter) (*audit.IncidentPage, error) {
	if f.Tenant == "" && !f.AllTenants {
		return nil, invalid("tenant", "an incident search needs a tenant")
	}
	limit := pageLimit(f.Limit)
	where := []string{"merged_into = ''"}
	var args []any
	idx := "incidents_all_seen"
	if f.Tenant != "" {
		where, args = append(where, "tenant = ?"), append(args, f.Tenant)
		idx = "incidents_seen"
	}
	if f.Cursor != "" {
		c, err := parseCursor(f.Cursor)
		if err != nil {
			return nil, err
		}
		where = append(where, "last_seen <= ? AND (last_seen < ? OR id < ? OR (id = ? AND tenant < ?))")
		args = append(args, c.ns, c.ns, c.id, c.id, c.tenant)
	}
	add := func(cond string, v any) { where, args = append(where, cond), append(args, v) }
	if f.Severity != "" {
		add("severity >= ?", f.Severity.Rank())
	}
	if f.Status != "" {
		add("status = ?", string(f.Status))
	}
	if f.Family != "" {
		add("family = ?", f.Family)
	}
	if !f.Since.IsZero() {
		add("last_seen >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("first_seen < ?", f.Until.UnixNano())
	}
	q := `SELECT doc FROM incidents INDEXED BY ` + idx + ` WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY last_seen DESC, id DESC, tenant DESC LIMIT ?`
	args = append(args, limit+1)
	rows, err := db.meta.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, translate(err, "search incidents")
	}
	defer rows.Close()
	page := &audit.IncidentPage{Incidents: []audit.Incident{}}
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, translate(err, "search incidents")
		}
		var inc audit.Incident
		if err := json.Unmarshal(doc, &inc); err != nil {
			return nil, fmt.Errorf("decode incident: %w", err)
		}
		page.Incidents = append(page.Incidents, inc)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, "search incidents")
	}
	if len(page.Incidents) > limit {
		page.Incidents = page.Incidents[:limit]
		last := page.Incidents[limit-1]
		page.Next = cursor{ns: nanos(last.LastSeen), tenant: last.Tenant, id: last.ID}.String()
	}
	return page, nil
}
