package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
)

// UpsertFindings inserts or replaces findings by (Tenant, ID) in one
// transaction. A stored finding that a human has moved out of open keeps its
// Status and Note; CreatedAt is always kept from the first insert.
func (db *DB) UpsertFindings(ctx context.Context, fs []audit.Finding) error {
	if len(fs) == 0 {
		return nil
	}
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "upsert findings")
	}
	defer func() { _ = tx.Rollback() }()
	rctx := rowContext(ctx)
	for i := range fs {
		if err := ctx.Err(); err != nil {
			return err
		}
		f := fs[i]
		// An installation-wide rule's finding has no tenant: it is the
		// operator's, found by all-tenant searches.
		if f.ID == "" {
			return invalid("id", "finding %d needs an id", i)
		}
		if f.Status == "" {
			f.Status = audit.StatusOpen
		}
		doc, err := json.Marshal(&f)
		if err != nil {
			return fmt.Errorf("encode finding %s: %w", f.ID, err)
		}
		// A new version from the engine replaces the stored one in SQL,
		// without reading and decoding it here: the finding keeps the time
		// it was first stored and its note, and a human's triage
		// (acknowledged, resolved) outlives further evidence.
		subnet, asn := audit.FindingNetworks(f.GroupKey)
		if _, err := tx.ExecContext(rctx, upsertFindingSQL,
			f.Tenant, f.ID, f.RuleID, f.Severity.Rank(), string(f.Status), f.ActorID, f.IP,
			nanos(f.FirstSeen), nanos(f.LastSeen), doc, f.IncidentID, subnet, asn); err != nil {
			return translate(err, "upsert finding "+f.ID)
		}
		if err := db.recordChange(rctx, tx, entityChange{kind: audit.KindFinding, tenant: f.Tenant, id: f.ID,
			severity: f.Severity, status: f.Status, rule: f.RuleID, doc: doc}); err != nil {
			return err
		}
	}
	return translate(tx.Commit(), "upsert findings")
}

// upsertFindingSQL inserts a finding or, when it exists, takes the new
// version but keeps created_at and, once a human has triaged it (status no
// longer open), its status and note — the same rule UpdateFinding's reader
// side expects.
// doc is JSON text stored in a BLOB column; it is cast to TEXT because
// SQLite's JSON functions read a BLOB as JSONB.
const upsertFindingSQL = `INSERT INTO findings
	(tenant, id, rule_id, severity, status, actor_id, ip, first_seen, last_seen, doc, incident_id, subnet, asn)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (tenant, id) DO UPDATE SET
		incident_id = excluded.incident_id, subnet = excluded.subnet, asn = excluded.asn,
		rule_id = excluded.rule_id, severity = excluded.severity,
		status = CASE WHEN findings.status IN ('open', '') THEN excluded.status ELSE findings.status END,
		actor_id = excluded.actor_id, ip = excluded.ip,
		first_seen = excluded.first_seen, last_seen = excluded.last_seen,
		doc = CASE WHEN findings.status IN ('open', '')
			THEN json_set(CAST(excluded.doc AS TEXT),
				'$.created_at', json_extract(CAST(findings.doc AS TEXT), '$.created_at'))
			ELSE json_set(CAST(excluded.doc AS TEXT),
				'$.created_at', json_extract(CAST(findings.doc AS TEXT), '$.created_at'),
				'$.note', coalesce(json_extract(CAST(findings.doc AS TEXT), '$.note'), ''),
				'$.resolution', coalesce(json_extract(CAST(findings.doc AS TEXT), '$.resolution'), ''),
				'$.status', findings.status)
			END`

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func putFinding(ctx context.Context, q querier, f *audit.Finding) error {
	doc, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode finding %s: %w", f.ID, err)
	}
	subnet, asn := audit.FindingNetworks(f.GroupKey)
	_, err = q.ExecContext(ctx, `INSERT OR REPLACE INTO findings
		(tenant, id, rule_id, severity, status, actor_id, ip, first_seen, last_seen, doc, incident_id, subnet, asn)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		f.Tenant, f.ID, f.RuleID, f.Severity.Rank(), string(f.Status), f.ActorID, f.IP,
		nanos(f.FirstSeen), nanos(f.LastSeen), doc, f.IncidentID, subnet, asn)
	return translate(err, "put finding "+f.ID)
}

func getFinding(ctx context.Context, q querier, tenant, id string) (*audit.Finding, error) {
	var doc []byte
	err := q.QueryRowContext(ctx, `SELECT doc FROM findings WHERE tenant = ? AND id = ?`, tenant, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("finding", id)
	}
	if err != nil {
		return nil, translate(err, "get finding "+id)
	}
	var f audit.Finding
	if err := json.Unmarshal(doc, &f); err != nil {
		return nil, fmt.Errorf("decode finding %s: %w", id, err)
	}
	return &f, nil
}

// GetFinding returns a finding of tenant (tenant "" for an
// installation-wide finding); ENOTFOUND for an unknown id or one in another
// tenant.
func (db *DB) GetFinding(ctx context.Context, tenant, id string) (*audit.Finding, error) {
	return getFinding(ctx, db.meta.r, tenant, id)
}

// UpdateFinding applies a human's triage; ENOTFOUND for an unknown id or one
// in another tenant, EINVALID for an unknown status.
func (db *DB) UpdateFinding(ctx context.Context, tenant, id string, u audit.FindingUpdate) (*audit.Finding, error) {
	switch u.Status {
	case audit.StatusOpen, audit.StatusAcknowledged, audit.StatusResolved:
	default:
		return nil, invalid("status", "status %q must be open, acknowledged or resolved", u.Status)
	}
	switch u.Resolution {
	case "", audit.ResolutionBenign, audit.ResolutionMalicious:
	default:
		return nil, invalid("resolution", "resolution %q must be benign or malicious", u.Resolution)
	}
	tx, err := db.meta.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, translate(err, "update finding")
	}
	defer func() { _ = tx.Rollback() }()
	f, err := getFinding(ctx, tx, tenant, id)
	if err != nil {
		return nil, err
	}
	f.Status, f.Note, f.Resolution = u.Status, u.Note, ""
	if u.Status == audit.StatusResolved {
		f.Resolution = u.Resolution
	}
	if !u.At.IsZero() {
		f.UpdatedAt = u.At.UTC()
	}
	if err := putFinding(ctx, tx, f); err != nil {
		return nil, err
	}
	doc, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode finding %s: %w", f.ID, err)
	}
	if err := db.recordChange(ctx, tx, entityChange{kind: audit.KindFinding, tenant: f.Tenant, id: f.ID,
		severity: f.Severity, status: f.Status, rule: f.RuleID, doc: doc, human: true}); err != nil {
		return nil, err
	}
	return f, translate(tx.Commit(), "update finding")
}

// SearchFindings returns findings most recently seen first, ordered by
// (LastSeen, ID) descending (then tenant, for all-tenant searches), with
// keyset paging. A filter without Tenant or AllTenants is EINVALID.
func (db *DB) SearchFindings(ctx context.Context, f audit.FindingFilter) (*audit.FindingPage, error) {
	if f.Tenant == "" && !f.AllTenants {
		return nil, invalid("tenant", "a finding search needs a tenant")
	}
	limit := pageLimit(f.Limit)
	var where []string
	var args []any
	idx := "findings_all_seen"
	if f.Tenant != "" {
		where, args = append(where, "tenant = ?"), append(args, f.Tenant)
		idx = "findings_seen"
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
	if f.RuleID != "" {
		add("rule_id = ?", f.RuleID)
	}
	if f.Severity != "" {
		add("severity >= ?", f.Severity.Rank())
	}
	if f.Status != "" {
		add("status = ?", string(f.Status))
	}
	if f.ActorID != "" {
		add("actor_id = ?", f.ActorID)
	}
	if f.IP != "" {
		// The address itself, its subnet, and its network when known.
		cond, a := "(ip = ?", []any{f.IP}
		if addr, err := netip.ParseAddr(f.IP); err == nil {
			cond, a = cond+" OR subnet = ?", append(a, audit.AddrSubnet(addr))
		}
		if f.ASN != 0 {
			cond, a = cond+" OR asn = ?", append(a, audit.ASNKey(f.ASN))
		}
		where, args = append(where, cond+")"), append(args, a...)
	}
	if f.IncidentID != "" {
		add("incident_id = ?", f.IncidentID)
	}
	if !f.Since.IsZero() {
		add("last_seen >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("first_seen < ?", f.Until.UnixNano())
	}
	q := `SELECT doc FROM findings INDEXED BY ` + idx
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY last_seen DESC, id DESC, tenant DESC LIMIT ?`
	args = append(args, limit+1)
	rows, err := db.meta.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, translate(err, "search findings")
	}
	defer rows.Close()
	page := &audit.FindingPage{Findings: []audit.Finding{}}
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, translate(err, "search findings")
		}
		var fd audit.Finding
		if err := json.Unmarshal(doc, &fd); err != nil {
			return nil, fmt.Errorf("decode finding: %w", err)
		}
		page.Findings = append(page.Findings, fd)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, "search findings")
	}
	if len(page.Findings) > limit {
		page.Findings = page.Findings[:limit]
		last := page.Findings[limit-1]
		page.Next = cursor{ns: nanos(last.LastSeen), tenant: last.Tenant, id: last.ID}.String()
	}
	return page, nil
}

// pageLimit applies the default page size and the hard cap.
func pageLimit(n int) int {
	switch {
	case n <= 0:
		return audit.DefaultPageSize
	case n > audit.MaxPageSize:
		return audit.MaxPageSize
	}
	return n
}
