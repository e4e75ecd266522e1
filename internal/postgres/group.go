package postgres

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.EventGrouper = (*Store)(nil)

// evGroupBound caps the groups one partition hands out when the caller
// sets no MaxGroups.
const evGroupBound = 1_000_000

// groupKeySQL is the column expression of a group key; ok is false for a
// key the columns cannot give.
func groupKeySQL(k audit.GroupKey, a *evArgs) (string, bool) {
	switch {
	case k.Bin > 0 && k.Field == "time":
		b := a.add(int64(k.Bin))
		// The bucket's start, floor-aligned to the epoch also before it.
		return "time_ns - ((time_ns % " + b + ") + " + b + ") % " + b, true
	case k.Field == "action", k.Field == "outcome", k.Field == "ip":
		return k.Field, true
	case k.Field == "actor.id":
		return "actor_id", true
	case k.Field == "session":
		return "session_id", true
	case k.Field == "target.id":
		return "target_id", true
	}
	return "", false
}

// GroupEvents implements audit.EventGrouper: when the filter compiles
// exactly to columns and every key is a column or a time bucket, each
// partition runs one GROUP BY (at most MaxGroups+1 groups) and the caller
// merges the partial groups; otherwise ErrNotGrouped.
func (s *Store) GroupEvents(ctx context.Context, g audit.EventGrouping, fn func(audit.EventGroup) error) (audit.ScanStats, error) {
	var st audit.ScanStats
	var probe evArgs
	if !compileExpr(g.Filter, &probe).exact {
		return st, audit.ErrNotGrouped
	}
	for _, k := range g.By {
		if _, ok := groupKeySQL(k, &probe); !ok {
			return st, audit.ErrNotGrouped
		}
	}
	pl, err := s.planScan(ctx, g.Scope, g.Since, g.Until, g.Filter, g.MaxPartitions)
	if err != nil {
		return st, err
	}
	if pl.never {
		return st, nil
	}
	a := evArgs{args: pl.args}
	var keys []string
	for _, k := range g.By {
		sql, _ := groupKeySQL(k, &a)
		keys = append(keys, sql)
	}
	bound := evGroupBound
	if g.MaxGroups > 0 {
		bound = g.MaxGroups + 1
	}
	sel := append(append([]string{}, keys...), "count(*)", "min(time_ns)", "max(time_ns)")
	groupBy := ""
	if len(keys) > 0 {
		ords := make([]string, len(keys))
		for i := range keys {
			ords[i] = strconv.Itoa(i + 1)
		}
		groupBy = " GROUP BY " + strings.Join(ords, ", ")
	}
	limit := " LIMIT " + a.add(bound)
	for _, day := range pl.days {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		st.Partitions++
		stmt := `SELECT ` + strings.Join(sel, ", ") + ` FROM ` + pgx.Identifier{partName(day)}.Sanitize() + pl.cond + groupBy + limit
		rows, err := s.pool.Query(ctx, stmt, a.args...)
		if sqlState(err) == "42P01" {
			continue
		}
		if err != nil {
			return st, translate(err, "group events")
		}
		n := len(keys)
		raw := make([]any, n+3)
		dest := make([]any, n+3)
		for i := range dest {
			dest[i] = &raw[i]
		}
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return st, translate(err, "group events")
			}
			cnt, _ := raw[n].(int64)
			if cnt == 0 {
				continue
			}
			out := audit.EventGroup{Keys: make([]any, n), Count: cnt}
			for i, k := range g.By {
				out.Keys[i] = groupKeyValue(k, raw[i])
			}
			minNs, _ := raw[n+1].(int64)
			maxNs, _ := raw[n+2].(int64)
			out.MinTime, out.MaxTime = time.Unix(0, minNs).UTC(), time.Unix(0, maxNs).UTC()
			st.Scanned += cnt
			st.Matched += cnt
			if err := fn(out); err != nil {
				rows.Close()
				return st, err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return st, translate(err, "group events")
		}
		if g.MaxScanned > 0 && st.Scanned > g.MaxScanned {
			return st, evLimitErr("the query examined more than %d stored events, its limit; narrow the time range", g.MaxScanned)
		}
	}
	return st, nil
}

// groupKeyValue is a scanned key as the engine types it: nil when absent.
func groupKeyValue(k audit.GroupKey, v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case int64:
		if k.Bin > 0 {
			return time.Unix(0, x).UTC()
		}
		return x
	case string:
		if x == "" {
			return nil
		}
		return x
	case []byte:
		if len(x) == 0 {
			return nil
		}
		return string(x)
	case netip.Prefix:
		return x.Addr()
	}
	return v
}
