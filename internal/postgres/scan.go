package postgres

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

// This file is the store side of investigation queries
// (audit.EventScanner): per day partition, one parameterised statement
// whose WHERE clause is the filter compiled to the events columns, rows
// decoded only as far as the query reads them, and the engine's Match
// deciding what SQL could not.

var _ audit.EventScanner = (*Store)(nil)

// unmapEventPrefix is p masked, an IPv4-mapped prefix turned into the IPv4
// prefix it denotes (events store addresses unmapped).
func unmapEventPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() {
		q, _ := a.Unmap().Prefix(max(p.Bits()-96, 0))
		return q
	}
	return p.Masked()
}

// evCond is a compiled condition. sql "" means no constraint (not exact);
// never means no row can match (exact). exact means the condition holds
// exactly when the filter does.
type evCond struct {
	sql   string
	exact bool
	never bool
}

var (
	evNone  = evCond{}
	evNever = evCond{never: true, exact: true}
	evTrue  = evCond{sql: "TRUE", exact: true}
)

// compileExpr compiles a filter to the events columns, binding every value
// in a. The values of a part that compiles to no SQL are unbound again, so
// the placeholders stay numbered as the text uses them.
func compileExpr(e audit.Expr, a *evArgs) evCond {
	n := len(a.args)
	c := compileNode(e, a)
	if c.sql == "" {
		a.args = a.args[:n]
	}
	return c
}

func compileNode(e audit.Expr, a *evArgs) evCond {
	switch e := e.(type) {
	case nil:
		return evTrue
	case *audit.AndExpr:
		out := evCond{exact: true}
		var parts []string
		for _, t := range e.Terms {
			c := compileExpr(t, a)
			switch {
			case c.never:
				return evNever
			case c.sql == "":
				out.exact = false
				continue
			}
			parts = append(parts, "("+c.sql+")")
			out.exact = out.exact && c.exact
		}
		if len(parts) == 0 {
			if out.exact {
				return evTrue
			}
			return evNone
		}
		out.sql = strings.Join(parts, " AND ")
		return out
	case *audit.OrExpr:
		out := evCond{exact: true}
		var parts []string
		for _, t := range e.Terms {
			c := compileExpr(t, a)
			switch {
			case c.never:
				continue
			case c.sql == "":
				return evNone
			}
			parts = append(parts, "("+c.sql+")")
			out.exact = out.exact && c.exact
		}
		if len(parts) == 0 {
			return evNever
		}
		out.sql = strings.Join(parts, " OR ")
		return out
	case *audit.NotExpr:
		c := compileExpr(e.Term, a)
		switch {
		case c.never:
			return evTrue
		case c.sql == "" || !c.exact:
			return evNone // the negation of a superset is no pre-filter
		}
		// A comparison with a NULL column (a missing field) is NULL in SQL
		// and false in the language, so NOT of it must be true.
		return evCond{sql: "NOT coalesce((" + c.sql + "), false)", exact: true}
	case *audit.CompareExpr:
		return compileCompare(e, a)
	}
	return evNone // free text: decided in Go
}

func compileCompare(e *audit.CompareExpr, a *evArgs) evCond {
	v := e.Value
	switch e.Field {
	case "action", "outcome":
		col := e.Field
		if e.Op == audit.OpExists {
			if col == "action" {
				return evTrue
			}
			return evCond{sql: "outcome <> ''", exact: true}
		}
		if !safeText(v.Text) {
			return evNever
		}
		switch e.Op {
		case audit.OpEq:
			if v.Text == "" {
				return evNone
			}
			return evCond{sql: col + " = " + a.add(v.Text), exact: true}
		case audit.OpPrefix:
			return evCond{sql: col + " LIKE " + a.add(likeEscape(v.Text)+"%"), exact: col == "action"}
		case audit.OpSuffix:
			return evCond{sql: col + " LIKE " + a.add("%"+likeEscape(v.Text)), exact: col == "action"}
		case audit.OpContains:
			return evCond{sql: col + " LIKE " + a.add("%"+likeEscape(v.Text)+"%"), exact: col == "action"}
		}
	case "actor.id", "session", "target.id":
		col := map[string]string{"actor.id": "actor_id", "session": "session_id", "target.id": "target_id"}[e.Field]
		switch e.Op {
		case audit.OpExists:
			return evCond{sql: col + " IS NOT NULL", exact: true}
		case audit.OpEq:
			if v.Text == "" {
				return evNone
			}
			return evCond{sql: col + " = " + a.add([]byte(v.Text)), exact: true}
		}
	case "ip":
		switch e.Op {
		case audit.OpExists:
			return evCond{sql: "ip IS NOT NULL", exact: true}
		case audit.OpIn:
			if !v.Prefix.IsValid() {
				return evNever
			}
			return evCond{sql: "ip <<= " + a.add(unmapEventPrefix(v.Prefix)), exact: true}
		}
	}
	return evNone
}

func evLimitErr(format string, args ...any) error {
	return &audit.Error{Code: audit.EINVALID, Message: fmt.Sprintf(format, args...)}
}

// evScan is a scan's compiled statement parts.
type evScan struct {
	cond  string // WHERE clause
	args  []any
	exact bool
	never bool
	days  []int64
}

// planScan validates a scan's scope and range, compiles its filter and
// finds its partitions, newest first, within maxParts.
func (s *Store) planScan(ctx context.Context, scope audit.QueryScope, since, until time.Time, filter audit.Expr, maxParts int) (*evScan, error) {
	if err := scope.Validate(); err != nil {
		return nil, err
	}
	if since.IsZero() || until.IsZero() || !until.After(since) {
		return nil, invalid("q", "a query needs a time range")
	}
	from, to := clampNanos(since), clampNanos(until)
	days, err := s.eventParts(ctx, from, to)
	if err != nil {
		return nil, err
	}
	if maxParts > 0 && len(days) > maxParts {
		return nil, evLimitErr("the query spans %d partitions (days), more than the limit of %d; narrow the time range", len(days), maxParts)
	}
	var a evArgs
	where := []string{"time_ns >= " + a.add(from), "time_ns < " + a.add(to)}
	if !scope.AllTenants {
		where = append([]string{"tenant = " + a.add(scope.Tenant)}, where...)
	}
	c := compileExpr(filter, &a)
	if c.sql != "" {
		where = append(where, "("+c.sql+")")
	}
	return &evScan{cond: " WHERE " + strings.Join(where, " AND "), args: a.args, exact: c.exact, never: c.never, days: days}, nil
}

// leanFields are the fields the columns hold: a scan reading only these
// does not read bodies.
var leanFields = map[string]bool{"id": true, "tenant": true, "time": true, "action": true, "outcome": true,
	"actor.id": true, "session": true, "target.id": true, "ip": true}

func isLean(fields []string) bool {
	if fields == nil {
		return false
	}
	for _, f := range fields {
		if !leanFields[f] {
			return false
		}
	}
	return true
}

// ScanEvents implements audit.EventScanner: the partitions newest first,
// each through a cursor over one statement (ordered by time, id and tenant
// descending when asked, which is also the all-tenant order), with the
// filter's exact part decided in SQL and Match asked about the rest.
func (s *Store) ScanEvents(ctx context.Context, es audit.EventScan, fn func(row *audit.EventRow) (bool, error)) (audit.ScanStats, error) {
	var st audit.ScanStats
	pl, err := s.planScan(ctx, es.Scope, es.Since, es.Until, es.Filter, es.MaxPartitions)
	if err != nil {
		return st, err
	}
	if pl.never {
		return st, nil
	}
	lean := isLean(es.Fields)
	cols := "tenant, id, time_ns, action, outcome, actor_id, session_id, target_id, ip"
	if !lean {
		cols += ", body"
	}
	order := ""
	if es.Ordered {
		order = " ORDER BY time_ns DESC, id DESC, tenant DESC"
	}
	first := evFetch
	if es.Ordered && es.Limit > 0 && pl.exact {
		first = min(es.Limit, evFetch)
	}
	row := &audit.EventRow{}
	for _, day := range pl.days {
		st.Partitions++
		stop := false
		stmt := `SELECT ` + cols + ` FROM ` + pgx.Identifier{partName(day)}.Sanitize() + pl.cond + order
		err := s.streamPart(ctx, stmt, pl.args, first, func(rows pgx.Rows) (bool, error) {
			var (
				tenant, id, action, outcome string
				ns                          int64
				actor, session, target      []byte
				ip                          *netip.Prefix
				body                        []byte
			)
			dest := []any{&tenant, &id, &ns, &action, &outcome, &actor, &session, &target, &ip}
			if !lean {
				dest = append(dest, &body)
			}
			if err := rows.Scan(dest...); err != nil {
				return true, translate(err, "scan events")
			}
			st.Scanned++
			if es.MaxScanned > 0 && st.Scanned > es.MaxScanned {
				return true, evLimitErr("the query examined more than %d stored events, its limit; narrow the time range or add an indexed filter (action, actor.id, ip, session, target.id)", es.MaxScanned)
			}
			if lean {
				row.Event = audit.Event{ID: id, Tenant: tenant, Action: action, Outcome: audit.Outcome(outcome),
					Time: time.Unix(0, ns).UTC()}
				row.Event.Actor.ID, row.Event.Context.SessionID, row.Event.Target.ID = string(actor), string(session), string(target)
				if ip != nil {
					row.Event.Context.IP = ip.Addr()
				}
				row.RawMetadata = nil
			} else if err := decodeBody(body, ns, &row.Event, &row.RawMetadata); err != nil {
				return true, fmt.Errorf("decode event %s: %w", id, err)
			} else {
				row.Event.ID, row.Event.Tenant, row.Event.Action = id, tenant, action
			}
			if !pl.exact && es.Match != nil && !es.Match(row) {
				return false, nil
			}
			st.Matched++
			var err error
			stop, err = fn(row)
			return stop, err
		})
		if err != nil || stop {
			return st, err
		}
	}
	return st, nil
}
