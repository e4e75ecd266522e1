package sqlite

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// IPActors is one row of DistinctActorsByIP.
type IPActors struct {
	IP     netip.Addr
	Actors int
}

// DistinctActorsByIP counts, per source IP, the distinct actors of tenant's
// events with the given action in [since, until), largest counts first (ties
// by address), at most limit rows (DefaultPageSize when ≤ 0). It answers
// "which IPs failed against the most accounts" for the query layer; actors
// are counted by their 32-bit index hash, so two actors of one tenant whose
// ids collide count once.
func (s *EventStore) DistinctActorsByIP(ctx context.Context, tenant, action string, since, until time.Time, limit int) ([]IPActors, error) {
	if tenant == "" {
		return nil, invalid("tenant", "an aggregate needs a tenant")
	}
	if action == "" {
		return nil, invalid("action", "an aggregate needs an action")
	}
	if limit <= 0 {
		limit = audit.DefaultPageSize
	}
	from, to := clampNanos(since), clampNanos(until)
	if until.IsZero() {
		to = maxEventTime.UnixNano()
	}
	idxs := s.holding(s.partitionsNewestFirst(from, to), tenant)
	if len(idxs) <= maxAttached {
		parts := make([]*partition, 0, len(idxs))
		defer func() {
			for _, p := range parts {
				s.release(p)
			}
		}()
		for _, idx := range idxs {
			p, err := s.acquire(ctx, idx, false)
			if err != nil {
				return nil, err
			}
			if p != nil {
				parts = append(parts, p)
			}
		}
		switch len(parts) {
		case 0:
			return []IPActors{}, nil
		case 1:
			return parts[0].distinctActorsByIP(ctx, tenant, action, from, to, limit)
		}
		return distinctAttached(ctx, parts, tenant, action, from, to, limit)
	}
	// Wider windows: merge the distinct (ip, actor) pairs of every partition
	// in Go (exact, but every pair crosses cgo), one partition at a time.
	sets := map[string]map[int64]struct{}{}
	err := s.each(ctx, idxs, func(p *partition) (bool, error) {
		t, ok := p.id(tenant)
		if !ok {
			return false, nil
		}
		act, ok := p.id(action)
		if !ok {
			return false, nil
		}
		rows, err := p.f.r.QueryContext(ctx, `SELECT DISTINCT ip, ah FROM events INDEXED BY ev_act
			WHERE t = ? AND act = ? AND ts >= ? AND ts < ? AND ip IS NOT NULL AND ah IS NOT NULL`,
			t, act, from-p.start, to-p.start)
		if err != nil {
			return false, translate(err, "aggregate "+p.f.path)
		}
		defer rows.Close()
		for rows.Next() {
			var ip []byte
			var ah int64
			if err := rows.Scan(&ip, &ah); err != nil {
				return false, translate(err, "aggregate "+p.f.path)
			}
			set := sets[string(ip)]
			if set == nil {
				set = map[int64]struct{}{}
				sets[string(ip)] = set
			}
			set[ah] = struct{}{}
		}
		return false, translate(rows.Err(), "aggregate "+p.f.path)
	})
	if err != nil {
		return nil, err
	}
	out := make([]IPActors, 0, len(sets))
	for k, set := range sets {
		a, ok := netip.AddrFromSlice([]byte(k))
		if !ok {
			continue
		}
		out = append(out, IPActors{IP: a, Actors: len(set)})
	}
	slices.SortFunc(out, func(a, b IPActors) int {
		if a.Actors != b.Actors {
			return b.Actors - a.Actors
		}
		return a.IP.Compare(b.IP)
	})
	return out[:min(len(out), limit)], nil
}

// distinctActorsByIP answers DistinctActorsByIP within one partition
// entirely in SQL, returning only the top rows.
func (p *partition) distinctActorsByIP(ctx context.Context, tenant, action string, from, to int64, limit int) ([]IPActors, error) {
	out := []IPActors{}
	t, ok := p.id(tenant)
	if !ok {
		return out, nil
	}
	act, ok := p.id(action)
	if !ok {
		return out, nil
	}
	rows, err := p.f.r.QueryContext(ctx, `SELECT ip, count(DISTINCT ah) AS n FROM events INDEXED BY ev_act
		WHERE t = ? AND act = ? AND ts >= ? AND ts < ? AND ip IS NOT NULL AND ah IS NOT NULL
		GROUP BY ip ORDER BY n DESC, length(ip), ip LIMIT ?`, t, act, from-p.start, to-p.start, limit)
	if err != nil {
		return nil, translate(err, "aggregate "+p.f.path)
	}
	defer rows.Close()
	for rows.Next() {
		var ip []byte
		var n int
		if err := rows.Scan(&ip, &n); err != nil {
			return nil, translate(err, "aggregate "+p.f.path)
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, IPActors{IP: a, Actors: n})
		}
	}
	return out, translate(rows.Err(), "aggregate "+p.f.path)
}

// maxAttached is how many extra partitions distinctAttached attaches to one
// connection; SQLite allows 10 attached databases by default.
const maxAttached = 8

// distinctAttached answers DistinctActorsByIP over a few partitions in one
// SQL statement: it attaches the other partitions to a reader connection of
// the first and groups the union of their index rows, so only the top rows
// leave SQLite. Dictionary ids differ per file, so each branch gets its own.
func distinctAttached(ctx context.Context, parts []*partition, tenant, action string, from, to int64, limit int) (_ []IPActors, err error) {
	conn, err := parts[0].f.r.Conn(ctx)
	if err != nil {
		return nil, translate(err, "aggregate")
	}
	defer conn.Close()
	var branches []string
	var args []any
	for i, p := range parts {
		t, ok := p.id(tenant)
		if !ok {
			continue
		}
		act, ok := p.id(action)
		if !ok {
			continue
		}
		schema := "main"
		if i > 0 {
			schema = fmt.Sprintf("p%d", i)
			if _, err := conn.ExecContext(ctx, `ATTACH DATABASE ? AS `+schema, p.f.path); err != nil {
				return nil, translate(err, "attach "+p.f.path)
			}
			defer func() {
				// Detach before the connection returns to the pool.
				if _, derr := conn.ExecContext(context.WithoutCancel(ctx), `DETACH DATABASE `+schema); derr != nil && err == nil {
					err = translate(derr, "detach "+p.f.path)
				}
			}()
		}
		branches = append(branches, `SELECT ip, ah FROM `+schema+`.events INDEXED BY ev_act
			WHERE t = ? AND act = ? AND ts >= ? AND ts < ? AND ip IS NOT NULL AND ah IS NOT NULL`)
		args = append(args, t, act, from-p.start, to-p.start)
	}
	out := []IPActors{}
	if len(branches) == 0 {
		return out, nil
	}
	rows, err := conn.QueryContext(ctx, `SELECT ip, count(DISTINCT ah) AS n FROM (`+strings.Join(branches, " UNION ALL ")+`)
		GROUP BY ip ORDER BY n DESC, length(ip), ip LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, translate(err, "aggregate")
	}
	defer rows.Close()
	for rows.Next() {
		var ip []byte
		var n int
		if err := rows.Scan(&ip, &n); err != nil {
			return nil, translate(err, "aggregate")
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, IPActors{IP: a, Actors: n})
		}
	}
	return out, translate(rows.Err(), "aggregate")
}
