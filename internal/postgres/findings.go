package postgres

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.FindingStore = (*Store)(nil)

// findingChunk bounds the rows one batched statement carries.
const findingChunk = 500

// entityKey names a finding or an incident.
type entityKey struct{ tenant, id string }

// triage is what a stored finding or incident keeps through detection
// updates and rewrites: the status a person set, the note, the resolution
// and the time it was first stored.
type triage struct {
	status     string
	Note       string    `json:"note"`
	Resolution string    `json:"resolution"`
	CreatedAt  time.Time `json:"created_at"`
}

// humanOwned reports whether a person moved the record out of open, so
// that detection no longer sets its status and note.
func (t *triage) humanOwned() bool { return t.status != string(audit.StatusOpen) && t.status != "" }

// loadTriage reads, and locks for the transaction, the triage of the
// stored rows of table among keys (sorted, see distinctKeys).
func loadTriage(ctx context.Context, tx pgx.Tx, table string, keys []entityKey) (map[entityKey]*triage, error) {
	out := make(map[entityKey]*triage, len(keys))
	for start := 0; start < len(keys); start += findingChunk {
		part := keys[start:min(start+findingChunk, len(keys))]
		tenants, ids := make([]string, len(part)), make([]string, len(part))
		for i, k := range part {
			tenants[i], ids[i] = k.tenant, k.id
		}
		// table is one of two constants, never input.
		rows, err := tx.Query(ctx, `SELECT t.tenant, t.id, t.status, t.doc FROM `+table+` t
			JOIN unnest($1::text[], $2::text[]) AS k(tenant, id) ON t.tenant = k.tenant AND t.id = k.id
			ORDER BY t.tenant, t.id FOR UPDATE OF t`, tenants, ids)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k entityKey
			var tr triage
			var doc []byte
			if err := rows.Scan(&k.tenant, &k.id, &tr.status, &doc); err != nil {
				rows.Close()
				return nil, err
			}
			if err := json.Unmarshal(doc, &tr); err != nil {
				rows.Close()
				return nil, fmt.Errorf("decode %s %s: %w", strings.TrimSuffix(table, "s"), k.id, err)
			}
			out[k] = &tr
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// distinctKeys lists the keys, each once, sorted bytewise (the tables'
// order): every writer locks and inserts rows in that order, so that
// concurrent batches over the same rows wait for each other instead of
// deadlocking.
func distinctKeys(n int, key func(i int) entityKey) []entityKey {
	seen := make(map[entityKey]bool, n)
	var keys []entityKey
	for i := range n {
		k := key(i)
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b entityKey) int {
		return cmp.Or(strings.Compare(a.tenant, b.tenant), strings.Compare(a.id, b.id))
	})
	return keys
}

// findingRow is a finding's columns.
type findingRow struct {
	f        *audit.Finding
	doc      []byte
	severity int16
}

// UpsertFindings inserts or replaces findings by (Tenant, ID) in one
// transaction. A stored finding that a human has moved out of open keeps its
// Status, Note and Resolution; CreatedAt is always kept from the first
// insert. Each write records its alert lifecycle change in the same
// transaction.
func (s *Store) UpsertFindings(ctx context.Context, fs []audit.Finding) error {
	if len(fs) == 0 {
		return nil
	}
	for i := range fs {
		if fs[i].ID == "" {
			return invalid("id", "finding %d needs an id", i)
		}
	}
	return s.inTx(ctx, "upsert findings", func(tx pgx.Tx) error { return s.upsertFindings(ctx, tx, fs) })
}

func (s *Store) upsertFindings(ctx context.Context, tx pgx.Tx, fs []audit.Finding) error {
	keys := distinctKeys(len(fs), func(i int) entityKey { return entityKey{fs[i].Tenant, fs[i].ID} })
	stored, err := loadTriage(ctx, tx, "findings", keys)
	if err != nil {
		return fmt.Errorf("read stored findings: %w", err)
	}
	// Merge in order, so that a finding given twice takes the first
	// version's triage and creation time as a stored one would.
	latest := make(map[entityKey]*findingRow, len(keys))
	for i := range fs {
		if err := ctx.Err(); err != nil {
			return err
		}
		f := fs[i] // a copy: fs is the caller's and a retry starts over
		if f.Status == "" {
			f.Status = audit.StatusOpen
		}
		k := entityKey{f.Tenant, f.ID}
		if tr := stored[k]; tr != nil {
			f.CreatedAt = tr.CreatedAt
			if tr.humanOwned() {
				f.Status, f.Note, f.Resolution = audit.FindingStatus(tr.status), tr.Note, tr.Resolution
			}
		}
		stored[k] = &triage{status: string(f.Status), Note: f.Note, Resolution: f.Resolution, CreatedAt: f.CreatedAt}
		doc, err := json.Marshal(&f)
		if err != nil {
			return fmt.Errorf("encode finding %s: %w", f.ID, err)
		}
		latest[k] = &findingRow{f: &f, doc: doc, severity: int16(f.Severity.Rank())}
	}
	rows := make([]*findingRow, len(keys))
	for i, k := range keys {
		rows[i] = latest[k]
	}
	if err := writeFindings(ctx, tx, rows); err != nil {
		return err
	}
	// A change is recorded only when a finding opens or rises above the
	// highest severity alerted so far: the marks, read once here for the
	// batch (the finding rows are locked now), spare recordChange the
	// round trips of the findings that change nothing.
	marks, err := loadMarks(ctx, tx, audit.KindFinding, keys)
	if err != nil {
		return fmt.Errorf("read alert marks: %w", err)
	}
	for i := range fs {
		f := fs[i]
		k := entityKey{f.Tenant, f.ID}
		rank := f.Severity.Rank()
		if m, ok := marks[k]; ok && rank <= m {
			continue
		}
		if f.Status == "" {
			f.Status = audit.StatusOpen
		}
		// The change carries the version detection made, as SQLite's does.
		incoming, err := json.Marshal(&f)
		if err != nil {
			return fmt.Errorf("encode finding %s: %w", f.ID, err)
		}
		if err := s.recordChange(ctx, tx, entityChange{kind: audit.KindFinding, tenant: f.Tenant, id: f.ID,
			severity: f.Severity, status: f.Status, rule: f.RuleID, doc: incoming}); err != nil {
			return fmt.Errorf("record change of finding %s: %w", f.ID, err)
		}
		marks[k] = max(marks[k], rank)
	}
	return nil
}

// loadMarks reads the highest severity rank alerted so far of each of
// keys of kind that has an alert mark.
func loadMarks(ctx context.Context, tx pgx.Tx, kind string, keys []entityKey) (map[entityKey]int, error) {
	out := make(map[entityKey]int, len(keys))
	for start := 0; start < len(keys); start += findingChunk {
		part := keys[start:min(start+findingChunk, len(keys))]
		tenants, ids := make([]string, len(part)), make([]string, len(part))
		for i, k := range part {
			tenants[i], ids[i] = k.tenant, k.id
		}
		rows, err := tx.Query(ctx, `SELECT m.tenant, m.id, m.max_rank FROM alert_marks m
			JOIN unnest($1::text[], $2::text[]) AS k(tenant, id) ON m.tenant = k.tenant AND m.id = k.id
			WHERE m.kind = $3`, tenants, ids, kind)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k entityKey
			var rank int16
			if err := rows.Scan(&k.tenant, &k.id, &rank); err != nil {
				rows.Close()
				return nil, err
			}
			out[k] = int(rank)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// writeFindings inserts or replaces the rows (distinct keys), a chunk per
// statement.
func writeFindings(ctx context.Context, tx pgx.Tx, rows []*findingRow) error {
	for start := 0; start < len(rows); start += findingChunk {
		part := rows[start:min(start+findingChunk, len(rows))]
		n := len(part)
		var (
			tenants, ids, rules, statuses, actors = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			ips, incidents, subnets, asns         = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			sevs                                  = make([]int16, n)
			firsts, lasts                         = make([]int64, n), make([]int64, n)
			docs                                  = make([][]byte, n)
		)
		for i, r := range part {
			f := r.f
			tenants[i], ids[i], rules[i], statuses[i], actors[i] = f.Tenant, f.ID, f.RuleID, string(f.Status), f.ActorID
			ips[i], incidents[i] = f.IP, f.IncidentID
			subnets[i], asns[i] = audit.FindingNetworks(f.GroupKey)
			sevs[i], firsts[i], lasts[i], docs[i] = r.severity, nanos(f.FirstSeen), nanos(f.LastSeen), r.doc
		}
		if _, err := tx.Exec(ctx, `INSERT INTO findings
			(tenant, id, rule_id, severity, status, actor_id, ip, first_seen_ns, last_seen_ns, incident_id, subnet, asn, doc)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::text[], $6::text[], $7::text[],
				$8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::text[], $13::bytea[])
			ON CONFLICT (tenant, id) DO UPDATE SET
				rule_id = excluded.rule_id, severity = excluded.severity, status = excluded.status,
				actor_id = excluded.actor_id, ip = excluded.ip, first_seen_ns = excluded.first_seen_ns,
				last_seen_ns = excluded.last_seen_ns, incident_id = excluded.incident_id,
				subnet = excluded.subnet, asn = excluded.asn, doc = excluded.doc`,
			tenants, ids, rules, sevs, statuses, actors, ips, firsts, lasts, incidents, subnets, asns, docs); err != nil {
			return fmt.Errorf("write findings: %w", err)
		}
	}
	return nil
}

// findingQuerier is what reads run on: the pool or a transaction.
type findingQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func getFinding(ctx context.Context, q findingQuerier, tenant, id string, lock bool) (*audit.Finding, error) {
	sql := `SELECT doc FROM findings WHERE tenant = $1 AND id = $2`
	if lock {
		sql += ` FOR UPDATE`
	}
	var doc []byte
	err := q.QueryRow(ctx, sql, tenant, id).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
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
func (s *Store) GetFinding(ctx context.Context, tenant, id string) (*audit.Finding, error) {
	return getFinding(ctx, s.pool, tenant, id, false)
}

// UpdateFinding applies a human's triage and records its lifecycle change
// in one transaction; ENOTFOUND for an unknown id or one in another
// tenant, EINVALID for an unknown status or resolution. A resolution is
// kept only on a resolved finding.
func (s *Store) UpdateFinding(ctx context.Context, tenant, id string, u audit.FindingUpdate) (*audit.Finding, error) {
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
	var out *audit.Finding
	err := s.inTx(ctx, "update finding", func(tx pgx.Tx) error {
		f, err := getFinding(ctx, tx, tenant, id, true)
		if err != nil {
			return err
		}
		f.Status, f.Note, f.Resolution = u.Status, u.Note, ""
		if u.Status == audit.StatusResolved {
			f.Resolution = u.Resolution
		}
		if !u.At.IsZero() {
			f.UpdatedAt = u.At.UTC()
		}
		doc, err := json.Marshal(f)
		if err != nil {
			return fmt.Errorf("encode finding %s: %w", f.ID, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE findings SET status = $1, doc = $2 WHERE tenant = $3 AND id = $4`,
			string(f.Status), doc, tenant, id); err != nil {
			return fmt.Errorf("write finding %s: %w", id, err)
		}
		if err := s.recordChange(ctx, tx, entityChange{kind: audit.KindFinding, tenant: f.Tenant, id: f.ID,
			severity: f.Severity, status: f.Status, rule: f.RuleID, doc: doc, human: true}); err != nil {
			return fmt.Errorf("record change of finding %s: %w", id, err)
		}
		out = f
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SearchFindings returns findings most recently seen first, ordered by
// (LastSeen, ID) descending (then tenant, for all-tenant searches), with
// keyset paging. A filter without Tenant or AllTenants is EINVALID; a
// search by IP also finds the findings keyed on its subnet and, with ASN,
// on its autonomous system.
func (s *Store) SearchFindings(ctx context.Context, f audit.FindingFilter) (*audit.FindingPage, error) {
	if f.Tenant == "" && !f.AllTenants {
		return nil, invalid("tenant", "a finding search needs a tenant")
	}
	limit := searchLimit(f.Limit)
	var w whereList
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
	if f.RuleID != "" {
		w.add("rule_id = ?", f.RuleID)
	}
	if f.Severity != "" {
		w.add("severity >= ?", int16(f.Severity.Rank()))
	}
	if f.Status != "" {
		w.add("status = ?", string(f.Status))
	}
	if f.ActorID != "" {
		w.add("actor_id = ?", f.ActorID)
	}
	if f.IP != "" {
		// The address itself, its subnet, and its network when known.
		cond, args := "(ip = ?", []any{f.IP}
		if addr, err := netip.ParseAddr(f.IP); err == nil {
			cond, args = cond+" OR subnet = ?", append(args, audit.AddrSubnet(addr))
		}
		if f.ASN != 0 {
			cond, args = cond+" OR asn = ?", append(args, audit.ASNKey(f.ASN))
		}
		w.add(cond+")", args...)
	}
	if f.IncidentID != "" {
		w.add("incident_id = ?", f.IncidentID)
	}
	if !f.Since.IsZero() {
		w.add("last_seen_ns >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		w.add("first_seen_ns < ?", f.Until.UnixNano())
	}
	q := `SELECT doc FROM findings` + w.sql() + ` ORDER BY last_seen_ns DESC, id DESC, tenant DESC LIMIT ` + w.param(limit+1)
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, translate(err, "search findings")
	}
	docs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, translate(err, "search findings")
	}
	page := &audit.FindingPage{Findings: make([]audit.Finding, 0, min(len(docs), limit))}
	for _, doc := range docs {
		var fd audit.Finding
		if err := json.Unmarshal(doc, &fd); err != nil {
			return nil, fmt.Errorf("decode finding: %w", err)
		}
		page.Findings = append(page.Findings, fd)
	}
	if len(page.Findings) > limit {
		page.Findings = page.Findings[:limit]
		last := page.Findings[limit-1]
		page.Next = seenCursor{ns: nanos(last.LastSeen), tenant: last.Tenant, id: last.ID}.String()
	}
	return page, nil
}

// whereList builds a WHERE clause with numbered parameters: conditions are
// written with ? and numbered as they are added.
type whereList struct {
	conds []string
	args  []any
}

// add appends cond, its ?s standing for args in order.
func (w *whereList) add(cond string, args ...any) {
	var b strings.Builder
	i := 0
	for _, r := range cond {
		if r == '?' && i < len(args) {
			w.args = append(w.args, args[i])
			i++
			b.WriteString("$" + strconv.Itoa(len(w.args)))
			continue
		}
		b.WriteRune(r)
	}
	w.conds = append(w.conds, b.String())
}

// param adds v as a parameter and returns its placeholder.
func (w *whereList) param(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

// sql is the WHERE clause, with its leading space, or "".
func (w *whereList) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// searchLimit applies the default page size and the hard cap.
func searchLimit(n int) int {
	switch {
	case n <= 0:
		return audit.DefaultPageSize
	case n > audit.MaxPageSize:
		return audit.MaxPageSize
	}
	return n
}

// seenCursor is a position in a list ordered by (last seen, id, tenant)
// descending: the last item of the page before. Its text is SQLite's
// cursor format, so a cursor reads the same on either store.
type seenCursor struct {
	ns     int64
	tenant string
	id     string
}

const (
	seenCursorVersion = 1
	// maxSeenCursorBytes bounds a cursor's decoded size (ids are ≤ 128
	// bytes, tenants ≤ 64).
	maxSeenCursorBytes = 256
)

// String encodes c as opaque URL-safe text.
func (c seenCursor) String() string {
	b := []byte{seenCursorVersion}
	b = binary.AppendVarint(b, c.ns)
	b = binary.AppendUvarint(b, uint64(len(c.tenant)))
	b = append(b, c.tenant...)
	b = append(b, c.id...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseSeenCursor decodes a cursor made by String; anything else is
// EINVALID.
func parseSeenCursor(s string) (seenCursor, error) {
	bad := func(why string) (seenCursor, error) {
		return seenCursor{}, &audit.Error{Code: audit.EINVALID, Field: "cursor", Message: "cursor is malformed: " + why}
	}
	if len(s) > base64.RawURLEncoding.EncodedLen(maxSeenCursorBytes) {
		return bad("too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return bad("not base64url")
	}
	if len(b) == 0 || b[0] != seenCursorVersion {
		return bad("unknown version")
	}
	b = b[1:]
	ns, n := binary.Varint(b)
	if n <= 0 {
		return bad("bad time")
	}
	b = b[n:]
	tl, n := binary.Uvarint(b)
	if n <= 0 || tl > uint64(len(b)-n) {
		return bad("bad tenant")
	}
	b = b[n:]
	c := seenCursor{ns: ns, tenant: string(b[:tl]), id: string(b[tl:])}
	if c.id == "" {
		return bad("missing id")
	}
	if c.tenant != "" && !audit.ValidTenantID(c.tenant) {
		return bad("bad tenant")
	}
	return c, nil
}
