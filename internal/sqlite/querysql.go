package sqlite

import (
	"bytes"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
)

// This file compiles a query filter into the SQL pre-filter of one
// partition and one tenant. Only the columns of the events table can be
// tested in SQL: the action (a dictionary id), the IP (4/16-byte blob) and
// the 32-bit hashes of actor, session and target ids. Everything else lives
// in the encoded body and is decided in Go (queryeval.go).
//
// Safety: the SQL text is built only from the fixed fragments below and
// placeholders; every value — dictionary ids, hashes, IP bytes, times — is
// a bound parameter. No part of a query's source ever reaches the SQL text.
//
// A compiled condition is either exact (it holds exactly when the filter
// does) or a superset (hash matches, which a collision can satisfy, and
// fields that SQL cannot see at all). When the whole filter compiles
// exactly, rows need no decoding to be counted, which lets aggregations on
// columns (time buckets, action, ip) run inside SQLite.

// sqlCond is a compiled condition. sql "" means no constraint (TRUE, not
// exact); never means no row can match (exact).
type sqlCond struct {
	sql   string
	args  []any
	exact bool
	never bool
}

var (
	condNone  = sqlCond{}
	condNever = sqlCond{never: true, exact: true}
	condTrue  = sqlCond{sql: "1", exact: true}
)

// condCompiler compiles for one partition and tenant.
type condCompiler struct {
	p      *partition
	tenant string
}

func (c condCompiler) expr(e audit.Expr) sqlCond {
	switch e := e.(type) {
	case nil:
		return condTrue
	case *audit.AndExpr:
		out := sqlCond{exact: true}
		var parts []string
		for _, t := range e.Terms {
			ct := c.expr(t)
			switch {
			case ct.never:
				return condNever
			case ct.sql == "":
				out.exact = false
				continue
			}
			parts = append(parts, "("+ct.sql+")")
			out.args = append(out.args, ct.args...)
			out.exact = out.exact && ct.exact
		}
		if len(parts) == 0 {
			if out.exact {
				return condTrue
			}
			return condNone
		}
		out.sql = strings.Join(parts, " AND ")
		return out
	case *audit.OrExpr:
		out := sqlCond{exact: true}
		var parts []string
		for _, t := range e.Terms {
			ct := c.expr(t)
			switch {
			case ct.never:
				continue
			case ct.sql == "":
				return condNone // one unconstrained branch admits every row
			}
			parts = append(parts, "("+ct.sql+")")
			out.args = append(out.args, ct.args...)
			out.exact = out.exact && ct.exact
		}
		if len(parts) == 0 {
			return condNever
		}
		out.sql = strings.Join(parts, " OR ")
		return out
	case *audit.NotExpr:
		ct := c.expr(e.Term)
		switch {
		case ct.never:
			return condTrue
		case ct.sql == "" || !ct.exact:
			// The negation of a superset is a subset: not usable as a
			// pre-filter.
			return condNone
		}
		// A comparison with a NULL column (a missing field) is NULL in SQL
		// and false in the language, so NOT of it must be true.
		return sqlCond{sql: "NOT coalesce((" + ct.sql + "), 0)", args: ct.args, exact: true}
	case *audit.CompareExpr:
		return c.compare(e)
	}
	return condNone // free text: decided in Go
}

func (c condCompiler) compare(e *audit.CompareExpr) sqlCond {
	v := e.Value
	switch e.Field {
	case "action":
		return c.action(e.Op, v.Text)
	case "actor.id":
		return hashCond("ah", e.Op, c.tenant, v.Text)
	case "session":
		return hashCond("sh", e.Op, c.tenant, v.Text)
	case "target.id":
		return hashCond("gh", e.Op, c.tenant, v.Text)
	case "ip":
		switch e.Op {
		case audit.OpExists:
			return sqlCond{sql: "ip IS NOT NULL", exact: true}
		case audit.OpIn:
			if !v.Prefix.IsValid() {
				return condNever
			}
			lo, hi := prefixRange(unmapPrefix(v.Prefix))
			if bytes.Equal(lo, hi) {
				return sqlCond{sql: "ip = ?", args: []any{lo}, exact: true}
			}
			return sqlCond{sql: "ip BETWEEN ? AND ? AND length(ip) = ?", args: []any{lo, hi, len(lo)}, exact: true}
		}
	}
	return condNone
}

// hashCond tests a hashed id column: equality is a superset (collisions),
// presence is exact (the hash is NULL exactly when the id is empty).
func hashCond(col string, op audit.CompareOp, tenant, v string) sqlCond {
	switch op {
	case audit.OpExists:
		return sqlCond{sql: col + " IS NOT NULL", exact: true}
	case audit.OpEq:
		return sqlCond{sql: col + " = ?", args: []any{key32(tenant, v)}}
	}
	return condNone
}

// action compiles an action comparison into the set of dictionary ids of
// this partition that satisfy it. The dictionary also holds other strings
// (tenants, user agents…); their ids never appear in the act column, so
// including them is harmless.
func (c condCompiler) action(op audit.CompareOp, v string) sqlCond {
	if op == audit.OpExists {
		return condTrue
	}
	if op == audit.OpEq {
		id, ok := c.p.id(v)
		if !ok {
			return condNever
		}
		return sqlCond{sql: "act = ?", args: []any{id}, exact: true}
	}
	var ids []any
	c.p.dmu.RLock()
	for id, name := range c.p.names {
		if id == 0 {
			continue
		}
		var hit bool
		switch op {
		case audit.OpPrefix:
			hit = strings.HasPrefix(name, v)
		case audit.OpSuffix:
			hit = strings.HasSuffix(name, v)
		case audit.OpContains:
			hit = strings.Contains(name, v)
		}
		if hit && audit.ValidAction(name) {
			ids = append(ids, int64(id))
		}
	}
	c.p.dmu.RUnlock()
	switch len(ids) {
	case 0:
		return condNever
	case 1:
		return sqlCond{sql: "act = ?", args: ids, exact: true}
	}
	return sqlCond{sql: "act IN (" + strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",") + ")", args: ids, exact: true}
}

// chooseIndex picks the pinned index from the filter's top-level
// conjuncts, most selective first — actor, session, target, IP, one exact
// action — else the tenant's time index. The chosen conjunct is always part
// of the compiled condition, so the index's leading columns are
// constrained. sorted reports an IP range, whose rows come in address
// order.
func chooseIndex(f audit.Expr) (index string, ipRange bool) {
	var terms []audit.Expr
	switch e := f.(type) {
	case *audit.AndExpr:
		terms = e.Terms
	case nil:
	default:
		terms = []audit.Expr{e}
	}
	rank := map[string]int{"ev_actor": 5, "ev_sess": 4, "ev_tgt": 3, "ev_ip": 2, "ev_act": 1}
	best := "ev_time"
	for _, t := range terms {
		c, ok := t.(*audit.CompareExpr)
		if !ok {
			continue
		}
		var idx string
		switch {
		case c.Field == "actor.id" && c.Op == audit.OpEq:
			idx = "ev_actor"
		case c.Field == "session" && c.Op == audit.OpEq:
			idx = "ev_sess"
		case c.Field == "target.id" && c.Op == audit.OpEq:
			idx = "ev_tgt"
		case c.Field == "ip" && c.Op == audit.OpIn:
			idx = "ev_ip"
		case c.Field == "action" && c.Op == audit.OpEq:
			idx = "ev_act"
		default:
			continue
		}
		if rank[idx] > rank[best] {
			best = idx
			ipRange = idx == "ev_ip" && !c.Value.Prefix.IsSingleIP()
		}
	}
	return best, ipRange
}
