package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// groupable reports whether a grouping can run inside SQLite: the filter
// compiles exactly to columns and the keys are time buckets, action or ip.
func groupable(g audit.EventGrouping) bool {
	if !exactInSQL(g.Filter) {
		return false
	}
	for _, k := range g.By {
		switch {
		case k.Bin > 0 && k.Field == "time", k.Field == "action", k.Field == "ip":
		default:
			return false
		}
	}
	return true
}

// exactInSQL reports whether condCompiler compiles e exactly, whatever the
// partition: it mirrors condCompiler's rules.
func exactInSQL(e audit.Expr) bool {
	switch e := e.(type) {
	case nil:
		return true
	case *audit.AndExpr:
		for _, t := range e.Terms {
			if !exactInSQL(t) {
				return false
			}
		}
		return true
	case *audit.OrExpr:
		for _, t := range e.Terms {
			if !exactInSQL(t) {
				return false
			}
		}
		return true
	case *audit.NotExpr:
		return exactInSQL(e.Term)
	case *audit.CompareExpr:
		switch e.Field {
		case "action":
			return true
		case "ip":
			return e.Op == audit.OpIn || e.Op == audit.OpExists
		case "actor.id", "session", "target.id":
			return e.Op == audit.OpExists
		}
	}
	return false
}

// GroupEvents implements audit.EventGrouper: the grouping runs as GROUP BY
// on the covering indexes of each partition, and the caller merges the
// partial groups (counts add up, min/max combine).
func (s *EventStore) GroupEvents(ctx context.Context, g audit.EventGrouping, fn func(audit.EventGroup) error) (audit.ScanStats, error) {
	if !groupable(g) {
		return audit.ScanStats{}, audit.ErrNotGrouped
	}
	parts, err := s.scanParts(g.Scope, g.Since, g.Until, g.MaxPartitions)
	if err != nil {
		return audit.ScanStats{}, err
	}
	r := &scan{s: s, scope: g.Scope, since: g.Since, until: g.Until, filter: g.Filter, maxScanned: g.MaxScanned}
	err = s.each(ctx, parts, func(p *partition) (bool, error) {
		tenants := r.tenantsOf(p)
		if len(tenants) == 0 {
			return false, nil
		}
		r.stats.Partitions++
		for _, tenant := range tenants {
			if err := r.groupTenant(ctx, p, tenant, g, fn); err != nil {
				return true, err
			}
		}
		if r.maxScanned > 0 && r.stats.Scanned > r.maxScanned {
			return true, limitErr("the query examined more than %d stored events, its limit; narrow the time range", r.maxScanned)
		}
		return false, nil
	})
	return r.stats, err
}

func (r *scan) groupTenant(ctx context.Context, p *partition, tenant string, g audit.EventGrouping, fn func(audit.EventGroup) error) error {
	var sel []string
	var selArgs []any
	for _, k := range g.By {
		switch {
		case k.Bin > 0:
			sel = append(sel, "(ts + ?) / ?")
			selArgs = append(selArgs, p.start, int64(k.Bin))
		case k.Field == "action":
			sel = append(sel, "act")
		default:
			sel = append(sel, "ip")
		}
	}
	nk := len(sel)
	sel = append(sel, "count(*)", "min(ts)", "max(ts)")
	cols := ""
	for i, s := range sel {
		if i > 0 {
			cols += ", "
		}
		cols += s
	}
	stmt, args, _, ok := r.rowStmt(p, tenant, false, cols)
	if !ok {
		return nil
	}
	if nk > 0 {
		stmt += " GROUP BY "
		for i := range nk {
			if i > 0 {
				stmt += ", "
			}
			stmt += fmt.Sprint(i + 1)
		}
		if g.MaxGroups > 0 {
			stmt += fmt.Sprintf(" LIMIT %d", g.MaxGroups+1)
		}
	}
	rows, err := p.f.r.QueryContext(ctx, stmt, append(selArgs, args...)...)
	if err != nil {
		return translate(err, "aggregate "+p.f.path)
	}
	defer rows.Close()
	dest := make([]any, nk+3)
	raw := make([]any, nk+3)
	for i := range dest {
		dest[i] = &raw[i]
	}
	for rows.Next() {
		keys := make([]any, nk)
		if err := rows.Scan(dest...); err != nil {
			return translate(err, "aggregate "+p.f.path)
		}
		n, _ := raw[nk].(int64)
		if n == 0 {
			continue
		}
		for i, k := range g.By {
			switch {
			case k.Bin > 0:
				b, _ := raw[i].(int64)
				keys[i] = time.Unix(0, b*int64(k.Bin)).UTC()
			case k.Field == "action":
				id, _ := raw[i].(int64)
				if name, _ := p.name(uint64(id)); name != "" {
					keys[i] = name
				}
			default:
				b, _ := raw[i].([]byte)
				keys[i] = ipFromKey(b)
			}
		}
		minTs, _ := raw[nk+1].(int64)
		maxTs, _ := raw[nk+2].(int64)
		r.stats.Scanned += n
		r.stats.Matched += n
		if err := fn(audit.EventGroup{Keys: keys, Count: n, MinTime: time.Unix(0, p.start+minTs).UTC(), MaxTime: time.Unix(0, p.start+maxTs).UTC()}); err != nil {
			return err
		}
	}
	return translate(rows.Err(), "aggregate "+p.f.path)
}
