package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// plan is a filter compiled for one partition and one tenant.
type plan struct {
	index string // the pinned index
	where []string
	args  []any
	order string // ORDER BY, newest first (layout.go)
}

// SearchEvents returns events newest first, ordered by (Time, ID)
// descending (then tenant, for all-tenant searches), with keyset paging.
//
// Each partition is queried with one pinned index chosen by the most
// selective filter given — actor, session, target, IP/CIDR, action, else
// the tenant's time index — and the other indexed filters as conditions;
// hashed keys, outcome, enrichment and text are then checked exactly on
// the decoded event.
func (s *EventStore) SearchEvents(ctx context.Context, f audit.EventFilter) (*audit.EventPage, error) {
	if f.Tenant == "" && !f.AllTenants {
		return nil, invalid("tenant", "an event search needs a tenant")
	}
	var cur *cursor
	if f.Cursor != "" {
		c, err := parseCursor(f.Cursor)
		if err != nil {
			return nil, err
		}
		cur = &c
	}
	if f.IP.IsValid() {
		f.IP = unmapPrefix(f.IP)
	}
	if f.Text != "" {
		f.Text = strings.ToLower(f.Text)
	}
	limit := pageLimit(f.Limit)
	var from, to int64
	if !f.Since.IsZero() {
		from = clampNanos(f.Since)
	}
	if !f.Until.IsZero() {
		to = clampNanos(f.Until)
	}
	if cur != nil && (to == 0 || cur.ns+1 < to) {
		to = cur.ns + 1
	}
	out := make([]audit.Event, 0, limit+1)
	err := s.each(ctx, s.holding(s.partitionsNewestFirst(from, to), f.Tenant), func(p *partition) (bool, error) {
		var err error
		out, err = p.search(ctx, &f, cur, limit+1, out)
		return len(out) > limit, err
	})
	if err != nil {
		return nil, err
	}
	page := &audit.EventPage{Events: out}
	if len(out) > limit {
		page.Events = out[:limit]
		last := out[limit-1]
		c := cursor{ns: last.Time.UnixNano(), id: last.ID}
		if f.AllTenants && f.Tenant == "" {
			c.tenant = last.Tenant
		}
		page.Next = c.String()
	}
	return page, nil
}

func clampNanos(t time.Time) int64 {
	switch {
	case t.Before(minEventTime):
		return minEventTime.UnixNano()
	case t.After(maxEventTime):
		return maxEventTime.UnixNano()
	}
	return t.UnixNano()
}

func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() {
		bits := max(p.Bits()-96, 0)
		q, _ := a.Unmap().Prefix(bits)
		return q
	}
	return p.Masked()
}

// search appends to out the matching events of this partition that come
// after the cursor, until out holds want events.
func (p *partition) search(ctx context.Context, f *audit.EventFilter, cur *cursor, want int, out []audit.Event) ([]audit.Event, error) {
	var tenants []string
	if f.Tenant != "" {
		tenants = []string{f.Tenant}
	} else {
		p.dmu.RLock()
		for t := range p.tenants {
			tenants = append(tenants, p.names[t])
		}
		p.dmu.RUnlock()
	}
	if len(tenants) == 1 {
		return p.searchTenant(ctx, f, tenants[0], cur, want, out)
	}
	// All tenants: take each tenant's best rows and merge.
	var all []audit.Event
	for _, t := range tenants {
		var err error
		if all, err = p.searchTenant(ctx, f, t, cur, len(all)+want-len(out), all); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(all, newestFirst)
	return append(out, all[:min(len(all), want-len(out))]...), nil
}

func (p *partition) compile(f *audit.EventFilter, tenant string, t int64, cur *cursor) (plan, bool) {
	var pl plan
	add := func(cond string, args ...any) {
		pl.where = append(pl.where, cond)
		pl.args = append(pl.args, args...)
	}
	// The action: an exact name, or every known name under a prefix.
	var acts []int64
	if f.Action != "" {
		if prefix, ok := strings.CutSuffix(f.Action, ".*"); ok {
			p.dmu.RLock()
			for id, name := range p.names {
				if id > 0 && strings.HasPrefix(name, prefix+".") {
					acts = append(acts, int64(id))
				}
			}
			p.dmu.RUnlock()
		} else if id, ok := p.id(f.Action); ok {
			acts = []int64{id}
		}
		if len(acts) == 0 {
			return pl, false
		}
	}
	switch {
	case f.ActorID != "":
		pl.index = "ev_actor"
		add("ah = ?", key32(tenant, f.ActorID))
	case f.SessionID != "":
		pl.index = "ev_sess"
		add("sh = ?", key32(tenant, f.SessionID))
	case f.TargetID != "":
		pl.index = "ev_tgt"
		add("gh = ?", key32(tenant, f.TargetID))
	case f.IP.IsValid():
		pl.index = "ev_ip"
	case len(acts) == 1:
		pl.index = "ev_act"
	default:
		pl.index = "ev_time"
	}
	add("t = ?", t)
	switch {
	case len(acts) == 1:
		add("act = ?", acts[0])
	case len(acts) > 1:
		add("act IN ("+strings.TrimSuffix(strings.Repeat("?,", len(acts)), ",")+")", anys(acts)...)
	}
	if f.ActorID != "" && pl.index != "ev_actor" {
		add("ah = ?", key32(tenant, f.ActorID))
	}
	if f.SessionID != "" && pl.index != "ev_sess" {
		add("sh = ?", key32(tenant, f.SessionID))
	}
	if f.TargetID != "" && pl.index != "ev_tgt" {
		add("gh = ?", key32(tenant, f.TargetID))
	}
	if f.IP.IsValid() {
		lo, hi := prefixRange(f.IP)
		if bytes.Equal(lo, hi) {
			add("ip = ?", lo)
		} else {
			add("ip BETWEEN ? AND ? AND length(ip) = ?", lo, hi, len(lo))
		}
	}
	// The time range, partition-relative, for the buckets (layout.go).
	from, to := int64(0), p.period
	if !f.Since.IsZero() {
		from = clampNanos(f.Since) - p.start
		add("ts >= ?", from)
	}
	if !f.Until.IsZero() {
		u := clampNanos(f.Until) - p.start
		to = min(to, u)
		add("ts < ?", u)
	}
	if cur != nil {
		cts := cur.ns - p.start
		to = min(to, cts+1)
		// Rows at the cursor's time come next when their id is smaller, or,
		// for an all-tenant cursor, equal with a smaller tenant.
		sameID := 0
		if cur.tenant != "" && tenant < cur.tenant {
			sameID = 1
		}
		add("ts <= ? AND (ts < ? OR id < ? OR (id = ? AND ?))", cts, cts, cur.id, cur.id, sameID)
	}
	if p.bucketed(pl.index) {
		cond, args := p.bucketCond(from, to)
		add(cond, args...)
	}
	pl.order = p.orderBy(pl.index)
	return pl, true
}

func anys[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func (pl plan) sql() string {
	return `SELECT ts, id, act, body FROM events INDEXED BY ` + pl.index +
		` WHERE ` + strings.Join(pl.where, " AND ") + pl.order
}

func (p *partition) searchTenant(ctx context.Context, f *audit.EventFilter, tenant string, cur *cursor, want int, out []audit.Event) ([]audit.Event, error) {
	t, ok := p.id(tenant)
	if !ok || !p.hasTenant(t) {
		return out, nil
	}
	pl, ok := p.compile(f, tenant, t, cur)
	if !ok {
		return out, nil
	}
	q, done, err := p.readConn(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	rows, err := q.QueryContext(ctx, pl.sql(), pl.args...)
	if err != nil {
		return nil, translate(err, "search "+p.f.path)
	}
	defer rows.Close()
	bs := bodies{q: q, path: p.f.path}
	var (
		ts, act int64
		id      string
		body    []byte
	)
	for len(out) < want && rows.Next() {
		if err := rows.Scan(&ts, &id, &act, &body); err != nil {
			return nil, translate(err, "search "+p.f.path)
		}
		if body, err = bs.get(ctx, body); err != nil {
			return nil, fmt.Errorf("search %s: event %s: %w", p.f.path, id, err)
		}
		out = append(out, audit.Event{})
		ev := &out[len(out)-1]
		if err := p.decode(ev, tenant, id, ts, act, body); err != nil {
			return nil, err
		}
		if !f.Matches(ev) {
			out = out[:len(out)-1]
		}
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, "search "+p.f.path)
	}
	return out, nil
}

// newestFirst orders events of several tenants as an all-tenant result
// lists them: time, then id, then tenant, all descending.
func newestFirst(a, b audit.Event) int {
	if c := b.Time.Compare(a.Time); c != 0 {
		return c
	}
	if c := strings.Compare(b.ID, a.ID); c != 0 {
		return c
	}
	return strings.Compare(b.Tenant, a.Tenant)
}
