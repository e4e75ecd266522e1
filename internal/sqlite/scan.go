package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// This file is the store side of investigation queries (audit.EventScanner
// and audit.EventGrouper): per partition and tenant, one parameterised
// statement whose WHERE clause is the filter compiled to the events
// table's columns (querysql.go), rows decoded only as far as the query
// reads them, and the engine's Match deciding what SQL could not. The
// query language itself — stages, stats, sort — runs in internal/query.

var (
	_ audit.EventScanner = (*EventStore)(nil)
	_ audit.EventGrouper = (*EventStore)(nil)
)

// scan is the state of one ScanEvents or GroupEvents call.
type scan struct {
	s     *EventStore
	scope audit.QueryScope
	since time.Time
	until time.Time
	// filter is the predicate tree; match decides rows SQL admits without
	// proving them.
	filter audit.Expr
	match  func(*audit.EventRow) bool
	// lean is set when the caller reads only fields that are columns or at
	// the head of the encoded body (time, action, ip, outcome, reason,
	// actor.id): rows are then decoded only that far.
	lean       bool
	maxScanned int64
	stats      audit.ScanStats
}

func limitErr(format string, args ...any) error {
	return &audit.Error{Code: audit.EINVALID, Message: fmt.Sprintf(format, args...)}
}

// scanParts validates a scan's scope and range and returns its partitions,
// newest first, within maxParts.
func (s *EventStore) scanParts(scope audit.QueryScope, since, until time.Time, maxParts int) ([]int64, error) {
	if err := scope.Validate(); err != nil {
		return nil, err
	}
	if since.IsZero() || until.IsZero() || !until.After(since) {
		return nil, invalid("q", "a query needs a time range")
	}
	parts := s.partitionsNewestFirst(clampNanos(since), clampNanos(until))
	if maxParts > 0 && len(parts) > maxParts {
		return nil, limitErr("the query spans %d partitions (days), more than the limit of %d; narrow the time range", len(parts), maxParts)
	}
	if !scope.AllTenants {
		parts = s.holding(parts, scope.Tenant)
	}
	return parts, nil
}

// ScanEvents implements audit.EventScanner.
func (s *EventStore) ScanEvents(ctx context.Context, es audit.EventScan, fn func(row *audit.EventRow) (bool, error)) (audit.ScanStats, error) {
	parts, err := s.scanParts(es.Scope, es.Since, es.Until, es.MaxPartitions)
	if err != nil {
		return audit.ScanStats{}, err
	}
	r := &scan{s: s, scope: es.Scope, since: es.Since, until: es.Until, filter: es.Filter, match: es.Match,
		lean: leanFields(es.Fields), maxScanned: es.MaxScanned}
	row := &audit.EventRow{}
	err = s.each(ctx, parts, func(p *partition) (bool, error) {
		return r.scanPartition(ctx, p, es.Ordered, es.Limit, row, fn)
	})
	return r.stats, err
}

// scanFn receives each matching row; stop=true ends the scan.
type scanFn func(row *audit.EventRow) (stop bool, err error)

// tenantsOf returns the tenants of the scope present in p.
func (r *scan) tenantsOf(p *partition) []string {
	if !r.scope.AllTenants {
		if t, ok := p.id(r.scope.Tenant); ok && p.hasTenant(t) {
			return []string{r.scope.Tenant}
		}
		return nil
	}
	p.dmu.RLock()
	out := make([]string, 0, len(p.tenants))
	for t := range p.tenants {
		out = append(out, p.names[t])
	}
	p.dmu.RUnlock()
	slices.Sort(out)
	return out
}

// rowStmt builds the row query of one partition and tenant; ok is false
// when no row can match.
func (r *scan) rowStmt(p *partition, tenant string, ordered bool, cols string) (stmt string, args []any, exact, ok bool) {
	t, _ := p.id(tenant)
	c := condCompiler{p: p, tenant: tenant}.expr(r.filter)
	if c.never {
		return "", nil, false, false
	}
	index, _ := chooseIndex(r.filter)
	from, to := clampNanos(r.since)-p.start, clampNanos(r.until)-p.start
	where := "t = ? AND ts >= ? AND ts < ?"
	args = []any{t, from, to}
	if p.bucketed(index) {
		cond, bs := p.bucketCond(from, to)
		where += " AND " + cond
		args = append(args, bs...)
	}
	if c.sql != "" {
		where += " AND (" + c.sql + ")"
		args = append(args, c.args...)
	}
	stmt = "SELECT " + cols + " FROM events INDEXED BY " + index + " WHERE " + where
	if ordered {
		stmt += p.orderBy(index)
	}
	return stmt, args, c.exact, true
}

// scanTenant streams the exact matches of one tenant in one partition.
func (r *scan) scanTenant(ctx context.Context, p *partition, tenant string, ordered bool, row *audit.EventRow, fn scanFn) (stop bool, err error) {
	stmt, args, exact, ok := r.rowStmt(p, tenant, ordered, "ts, id, act, ip, body")
	if !ok {
		return false, nil
	}
	q, done, err := p.readConn(ctx)
	if err != nil {
		return false, err
	}
	defer done()
	rows, err := q.QueryContext(ctx, stmt, args...)
	if err != nil {
		return false, translate(err, "query "+p.f.path)
	}
	defer rows.Close()
	bs := bodies{q: q, path: p.f.path}
	var (
		ts, act int64
		id      string
		ip      sql.RawBytes
		body    sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&ts, &id, &act, &ip, &body); err != nil {
			return false, translate(err, "query "+p.f.path)
		}
		r.stats.Scanned++
		if r.maxScanned > 0 && r.stats.Scanned > r.maxScanned {
			return false, limitErr("the query examined more than %d stored events, its limit; narrow the time range or add an indexed filter (action, actor.id, ip, session, target.id)", r.maxScanned)
		}
		row.RawMetadata = nil
		body, err := bs.get(ctx, body)
		if err != nil {
			return false, fmt.Errorf("decode event %s in %s: %w", id, p.f.path, err)
		}
		if r.lean {
			if err := decodePrefix(body, &row.Event, dictAdapter{p}); err != nil {
				return false, fmt.Errorf("decode event %s in %s: %w", id, p.f.path, err)
			}
			if a, ok := netip.AddrFromSlice(ip); ok {
				row.Event.Context.IP = a
			}
		} else if err := decodeEvent(body, &row.Event, encodeOpts{omitKey: true, dict: dictAdapter{p}, rawMeta: &row.RawMetadata}); err != nil {
			return false, fmt.Errorf("decode event %s in %s: %w", id, p.f.path, err)
		}
		action, ok := p.name(uint64(act))
		if !ok {
			return false, fmt.Errorf("decode event %s in %s: unknown action id %d", id, p.f.path, act)
		}
		row.Event.ID, row.Event.Tenant, row.Event.Action = id, tenant, action
		row.Event.Time = time.Unix(0, p.start+ts).UTC()
		if !exact && r.match != nil && !r.match(row) {
			continue
		}
		r.stats.Matched++
		if stop, err := fn(row); stop || err != nil {
			return stop, err
		}
	}
	if err := rows.Err(); err != nil {
		return false, translate(err, "query "+p.f.path)
	}
	return false, nil
}

// scanPartition scans one partition. With want > 0 and several tenants in
// it, it merges their newest rows by time so that an all-tenant result is
// newest first overall; otherwise it streams.
func (r *scan) scanPartition(ctx context.Context, p *partition, ordered bool, want int, row *audit.EventRow, fn scanFn) (stop bool, err error) {
	tenants := r.tenantsOf(p)
	if len(tenants) == 0 {
		return false, nil
	}
	r.stats.Partitions++
	if !ordered || want <= 0 || len(tenants) == 1 {
		for _, t := range tenants {
			if stop, err := r.scanTenant(ctx, p, t, ordered, row, fn); stop || err != nil {
				return true, err
			}
		}
		return false, nil
	}
	var buf []audit.Event
	for _, t := range tenants {
		n := 0
		if _, err := r.scanTenant(ctx, p, t, true, row, func(row *audit.EventRow) (bool, error) {
			buf = append(buf, row.Own())
			n++
			return n >= want, nil
		}); err != nil {
			return true, err
		}
	}
	slices.SortFunc(buf, newestFirst)
	for i := range buf {
		mrow := &audit.EventRow{Event: buf[i]}
		if stop, err := fn(mrow); stop || err != nil {
			return true, err
		}
	}
	return false, nil
}

// ipFromKey turns an index key back into an address.
func ipFromKey(b []byte) any {
	if a, ok := netip.AddrFromSlice(b); ok {
		return a
	}
	return nil
}

// prefixFields are the fields a lean decode provides.
var prefixFields = map[string]bool{"time": true, "action": true, "ip": true, "outcome": true, "reason": true, "actor.id": true}

// leanFields reports whether every field of a scan is in prefixFields; nil
// (the whole event) never is.
func leanFields(fields []string) bool {
	if fields == nil {
		return false
	}
	for _, f := range fields {
		if !prefixFields[f] {
			return false
		}
	}
	return true
}

// decodePrefix decodes only the head of a partition-encoded body
// (omitKey form): received time, outcome, reason and actor id, in
// decodeEvent's order. Every other field of ev is zeroed.
// TestDecodePrefixAgrees keeps it in step with the codec.
func decodePrefix(b []byte, ev *audit.Event, dict dictionary) error {
	*ev = audit.Event{}
	d := decoder{b: b, dict: dict, field: "version"}
	if v := d.byte1(); v != codecVersion && d.err == nil {
		d.fail("unknown version %d", v)
	}
	d.field = "received_at"
	ev.ReceivedAt = d.time()
	d.field = "outcome"
	ev.Outcome = audit.Outcome(d.dstr())
	d.field = "reason"
	ev.Reason = d.dstr()
	d.field = "actor"
	ev.Actor.ID = d.str()
	return d.err
}
