package sqlite

import (
	"context"
	"net/netip"
	"slices"
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
	parts := s.partitionsNewestFirst(from, to)
	if len(parts) == 1 {
		return parts[0].distinctActorsByIP(ctx, tenant, action, from, to, limit)
	}
	sets := map[string]map[int64]struct{}{}
	for _, p := range parts {
		t, ok := p.id(tenant)
		if !ok {
			continue
		}
		act, ok := p.id(action)
		if !ok {
			continue
		}
		rows, err := p.f.r.QueryContext(ctx, `SELECT DISTINCT ip, ah FROM events INDEXED BY ev_act
			WHERE t = ? AND act = ? AND ts >= ? AND ts < ? AND ip IS NOT NULL AND ah IS NOT NULL`,
			t, act, from-p.start, to-p.start)
		if err != nil {
			return nil, translate(err, "aggregate "+p.f.path)
		}
		for rows.Next() {
			var ip []byte
			var ah int64
			if err := rows.Scan(&ip, &ah); err != nil {
				rows.Close()
				return nil, translate(err, "aggregate "+p.f.path)
			}
			set := sets[string(ip)]
			if set == nil {
				set = map[int64]struct{}{}
				sets[string(ip)] = set
			}
			set[ah] = struct{}{}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, translate(err, "aggregate "+p.f.path)
		}
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
