package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/query"
)

// Defaults of QueryOptions.
const (
	DefaultQueryTimeout     = 30 * time.Second
	DefaultQueryMaxScanned  = 50_000_000
	DefaultQueryMaxDistinct = 1_000_000
	DefaultQueryMaxParts    = 400
)

// QueryOptions bounds what one query may cost.
type QueryOptions struct {
	// Timeout is the longest one query runs, DefaultQueryTimeout when 0.
	// Exports get ExportTimeout instead.
	Timeout time.Duration
	// ExportTimeout bounds one export; 0 means no limit beyond the
	// caller's context (an export is paced by its client).
	ExportTimeout time.Duration
	// MaxScanned is the most stored rows one query may examine,
	// DefaultQueryMaxScanned when 0. Exports are not bounded by it.
	MaxScanned int64
	// MaxPartitions is the most partitions (days) one query may read,
	// DefaultQueryMaxParts when 0.
	MaxPartitions int
	// MaxDistinct is the most values all dc() sets of one query may hold
	// together, DefaultQueryMaxDistinct when 0: dc is exact, so its memory
	// grows with the distinct values.
	MaxDistinct int
	// MaxTopGroups is the most groups a stats stage may hold when a sort
	// and a head follow it directly (a top-N: "top 20 IPs by distinct
	// failed accounts" needs every IP's group to pick 20), default
	// DefaultQueryMaxTopGroups. Other stats stages hold at most
	// query.MaxGroups, since all their groups are the answer.
	MaxTopGroups int
}

// DefaultQueryMaxTopGroups is the default of QueryOptions.MaxTopGroups.
const DefaultQueryMaxTopGroups = 1_000_000

// Querier runs investigation queries (audit.QueryRunner) on the event
// store's partitions. See docs/perf/query.md for how and how fast.
type Querier struct {
	s    *EventStore
	opts QueryOptions
}

var _ audit.QueryRunner = (*Querier)(nil)

// Querier returns a query runner on this store with the given limits.
func (s *EventStore) Querier(o QueryOptions) *Querier {
	if o.Timeout <= 0 {
		o.Timeout = DefaultQueryTimeout
	}
	if o.MaxScanned <= 0 {
		o.MaxScanned = DefaultQueryMaxScanned
	}
	if o.MaxPartitions <= 0 {
		o.MaxPartitions = DefaultQueryMaxParts
	}
	if o.MaxDistinct <= 0 {
		o.MaxDistinct = DefaultQueryMaxDistinct
	}
	if o.MaxTopGroups <= 0 {
		o.MaxTopGroups = DefaultQueryMaxTopGroups
	}
	return &Querier{s: s, opts: o}
}

// errQueryTimeout is the cause of a query's own deadline, told apart from
// the caller going away.
var errQueryTimeout = errors.New("query time limit")

// run is the state of one query execution.
type run struct {
	q       *Querier
	scope   audit.QueryScope
	query   *audit.Query
	export  bool
	stats   audit.QueryStats
	limit   time.Duration
	distinc int // values held by all dc sets
	// lean is set when the query reads only fields that are columns or at
	// the head of the encoded body (time, action, ip, outcome, reason,
	// actor.id): rows are then decoded only that far.
	lean bool
}

func limitErr(format string, args ...any) error {
	return &audit.Error{Code: audit.EINVALID, Message: fmt.Sprintf(format, args...)}
}

// RunQuery implements audit.QueryRunner.
func (q *Querier) RunQuery(ctx context.Context, scope audit.QueryScope, qu *audit.Query) (*audit.QueryResult, error) {
	res := &audit.QueryResult{}
	sink := &collectSink{res: res}
	st, err := q.execute(ctx, scope, qu, sink, false)
	if err != nil {
		return nil, err
	}
	res.Stats = st
	if res.Rows == nil {
		res.Rows = [][]any{}
	}
	return res, nil
}

// ExportQuery implements audit.QueryRunner.
func (q *Querier) ExportQuery(ctx context.Context, scope audit.QueryScope, qu *audit.Query, sink audit.QuerySink) (audit.QueryStats, error) {
	return q.execute(ctx, scope, qu, sink, true)
}

func (q *Querier) execute(ctx context.Context, scope audit.QueryScope, qu *audit.Query, sink audit.QuerySink, export bool) (audit.QueryStats, error) {
	start := time.Now()
	if err := scope.Validate(); err != nil {
		return audit.QueryStats{}, err
	}
	if qu == nil || qu.Since.IsZero() || qu.Until.IsZero() || !qu.Until.After(qu.Since) {
		return audit.QueryStats{}, invalid("q", "a query needs a time range")
	}
	r := &run{q: q, scope: scope, query: qu, export: export, limit: q.opts.Timeout, lean: leanQuery(qu)}
	if export {
		r.limit = q.opts.ExportTimeout
	}
	if r.limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, r.limit, errQueryTimeout)
		defer cancel()
	}
	err := r.execute(ctx, sink)
	r.stats.Elapsed = time.Since(start)
	if err != nil {
		if errors.Is(context.Cause(ctx), errQueryTimeout) {
			return r.stats, limitErr("the query ran longer than its limit of %s; narrow the time range or the filter", r.limit)
		}
		return r.stats, err
	}
	return r.stats, nil
}

// plan splits the stages around the (at most one) stats stage.
type stagePlan struct {
	pre   []audit.Stage
	stats *audit.StatsStage
	post  []audit.Stage
}

func splitStages(stages []audit.Stage) stagePlan {
	var sp stagePlan
	for i, s := range stages {
		if st, ok := s.(*audit.StatsStage); ok {
			sp.stats = st
			sp.post = stages[i+1:]
			return sp
		}
		sp.pre = append(sp.pre, s)
	}
	return sp
}

func (r *run) execute(ctx context.Context, sink audit.QuerySink) error {
	sp := splitStages(r.query.Stages)
	parts := r.q.s.partitionsNewestFirst(clampNanos(r.query.Since), clampNanos(r.query.Until))
	if len(parts) > r.q.opts.MaxPartitions {
		return limitErr("the query spans %d partitions (days), more than the limit of %d; narrow the time range", len(parts), r.q.opts.MaxPartitions)
	}
	if sp.stats == nil {
		return r.eventRows(ctx, parts, sp.pre, sink)
	}
	agg, err := newAggregator(r, sp.stats)
	if err != nil {
		return err
	}
	if len(sp.post) >= 2 {
		_, sorted := sp.post[0].(*audit.SortStage)
		_, headed := sp.post[1].(*audit.HeadStage)
		if sorted && headed {
			agg.maxGroups = r.q.opts.MaxTopGroups
		}
	}
	if len(sp.pre) == 0 && r.sqlAggregatable(sp.stats) {
		err = r.sqlAggregate(ctx, parts, agg)
	} else {
		err = r.feedEvents(ctx, parts, sp.pre, func(row *qrow) error { return agg.add(row) })
	}
	if err != nil {
		return err
	}
	cols, rows := agg.table()
	cols, rows = applyTableStages(cols, rows, sp.post)
	maxRows := query.MaxRows
	if len(rows) > maxRows {
		rows = rows[:maxRows]
		r.stats.Truncated = true
	}
	if err := sink.Columns(cols); err != nil {
		return err
	}
	for _, row := range rows {
		r.stats.Rows++
		if err := sink.Row(row, nil); err != nil {
			return err
		}
	}
	return nil
}

// scanner walks the matching events of the query's range, newest first
// per partition (per tenant within a partition for all-tenant scopes),
// calling fn for each exact match. fn returns stop=true to end the walk.
type scanFn func(row *qrow) (stop bool, err error)

// tenantsOf returns the tenants of the scope present in p.
func (r *run) tenantsOf(p *partition) []string {
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
func (r *run) rowStmt(p *partition, tenant string, ordered bool, cols string) (stmt string, args []any, exact, ok bool) {
	t, _ := p.id(tenant)
	c := condCompiler{p: p, tenant: tenant}.expr(r.query.Filter)
	if c.never {
		return "", nil, false, false
	}
	index, _ := chooseIndex(r.query.Filter)
	where := "t = ? AND ts >= ? AND ts < ?"
	args = []any{t, clampNanos(r.query.Since) - p.start, clampNanos(r.query.Until) - p.start}
	if c.sql != "" {
		where += " AND (" + c.sql + ")"
		args = append(args, c.args...)
	}
	stmt = "SELECT " + cols + " FROM events INDEXED BY " + index + " WHERE " + where
	if ordered {
		stmt += " ORDER BY ts DESC, id DESC"
	}
	return stmt, args, c.exact, true
}

// scanTenant streams the exact matches of one tenant in one partition.
func (r *run) scanTenant(ctx context.Context, p *partition, tenant string, ordered bool, row *qrow, fn scanFn) (stop bool, err error) {
	stmt, args, exact, ok := r.rowStmt(p, tenant, ordered, "ts, id, act, ip, body")
	if !ok {
		return false, nil
	}
	rows, err := p.f.r.QueryContext(ctx, stmt, args...)
	if err != nil {
		return false, translate(err, "query "+p.f.path)
	}
	defer rows.Close()
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
		if !r.export && r.stats.Scanned > r.q.opts.MaxScanned {
			return false, limitErr("the query examined more than %d stored events, its limit; narrow the time range or add an indexed filter (action, actor.id, ip, session, target.id)", r.q.opts.MaxScanned)
		}
		row.reset()
		if r.lean {
			if err := decodePrefix(body, &row.ev, dictAdapter{p}); err != nil {
				return false, fmt.Errorf("decode event %s in %s: %w", id, p.f.path, err)
			}
			if a, ok := netip.AddrFromSlice(ip); ok {
				row.ev.Context.IP = a
			}
			row.metaDone = true
		} else if err := decodeEvent(body, &row.ev, encodeOpts{omitKey: true, dict: dictAdapter{p}, rawMeta: &row.rawMeta}); err != nil {
			return false, fmt.Errorf("decode event %s in %s: %w", id, p.f.path, err)
		}
		action, ok := p.name(uint64(act))
		if !ok {
			return false, fmt.Errorf("decode event %s in %s: unknown action id %d", id, p.f.path, act)
		}
		row.ev.ID, row.ev.Tenant, row.ev.Action = id, tenant, action
		row.ev.Time = time.Unix(0, p.start+ts).UTC()
		if !exact && !evalExpr(r.query.Filter, row) {
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

// scan walks every partition and tenant. With want > 0 and several
// tenants in a partition, it merges their newest rows by time so that an
// all-tenant result is newest first overall; otherwise it streams.
func (r *run) scan(ctx context.Context, parts []int64, ordered bool, want int, fn scanFn) error {
	row := &qrow{}
	return r.q.s.each(ctx, parts, func(p *partition) (bool, error) {
		return r.scanPartition(ctx, p, ordered, want, row, fn)
	})
}

// scanPartition is scan within one partition.
func (r *run) scanPartition(ctx context.Context, p *partition, ordered bool, want int, row *qrow, fn scanFn) (stop bool, err error) {
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
		if _, err := r.scanTenant(ctx, p, t, true, row, func(row *qrow) (bool, error) {
			buf = append(buf, row.own())
			n++
			return n >= want, nil
		}); err != nil {
			return true, err
		}
	}
	slices.SortFunc(buf, func(a, b audit.Event) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		if c := strings.Compare(b.ID, a.ID); c != 0 {
			return c
		}
		return strings.Compare(b.Tenant, a.Tenant)
	})
	for i := range buf {
		mrow := &qrow{ev: buf[i], metaDone: true}
		if stop, err := fn(mrow); stop || err != nil {
			return true, err
		}
	}
	return false, nil
}

// preLimit is how many leading events the pre-stats stages can use when
// they hold no sort: the smallest head (0 = all).
func preLimit(pre []audit.Stage) (limit int, sorted bool) {
	for _, s := range pre {
		switch s := s.(type) {
		case *audit.SortStage:
			return limit, true
		case *audit.HeadStage:
			if limit == 0 || s.N < limit {
				limit = s.N
			}
		}
	}
	return limit, false
}

// feedEvents applies the pre-stats stages to the matching events and hands
// the surviving events to fn (for aggregation). Without a sort they
// stream; a sort keeps the best query.MaxRows (or its head) in memory.
func (r *run) feedEvents(ctx context.Context, parts []int64, pre []audit.Stage, fn func(*qrow) error) error {
	limit, sorted := preLimit(pre)
	if !sorted {
		n := 0
		return r.scan(ctx, parts, limit > 0, limit, func(row *qrow) (bool, error) {
			if err := fn(row); err != nil {
				return true, err
			}
			n++
			return limit > 0 && n >= limit, nil
		})
	}
	evs, err := r.sortedEvents(ctx, parts, pre)
	if err != nil {
		return err
	}
	for i := range evs {
		if err := fn(&qrow{ev: evs[i], metaDone: true}); err != nil {
			return err
		}
	}
	return nil
}

// sortedEvents runs pre-stats stages that hold a sort: events up to the
// first sort stream (heads apply), the first sort keeps its top K (K = the
// head that follows it, at most query.MaxRows), and the remaining stages
// apply in memory. Fields stages only project at output and are skipped.
func (r *run) sortedEvents(ctx context.Context, parts []int64, pre []audit.Stage) ([]audit.Event, error) {
	first := slices.IndexFunc(pre, func(s audit.Stage) bool { _, ok := s.(*audit.SortStage); return ok })
	before, _ := preLimit(pre[:first])
	sortStage := pre[first].(*audit.SortStage)
	k, headed := query.MaxRows, false
	for _, s := range pre[first+1:] {
		if h, ok := s.(*audit.HeadStage); ok {
			k, headed = min(k, h.N), true
			break
		}
		if _, ok := s.(*audit.SortStage); ok {
			break
		}
	}
	top, err := newTopK(sortStage.Keys, k)
	if err != nil {
		return nil, err
	}
	n := 0
	err = r.scan(ctx, parts, before > 0, before, func(row *qrow) (bool, error) {
		if top.offer(row) && !headed {
			r.stats.Truncated = true // the sort kept only its first MaxRows
		}
		n++
		return before > 0 && n >= before, nil
	})
	if err != nil {
		return nil, err
	}
	evs := top.sorted()
	for _, s := range pre[first+1:] {
		switch s := s.(type) {
		case *audit.SortStage:
			if err := sortEvents(evs, s.Keys); err != nil {
				return nil, err
			}
		case *audit.HeadStage:
			evs = evs[:min(len(evs), s.N)]
		}
	}
	return evs, nil
}

// eventRows answers a query without stats: events newest first (or as
// sorted), projected to the default columns or the last fields stage.
func (r *run) eventRows(ctx context.Context, parts []int64, pre []audit.Stage, sink audit.QuerySink) error {
	cols, gets, err := r.eventColumns(pre)
	if err != nil {
		return err
	}
	whole := !slices.ContainsFunc(pre, func(s audit.Stage) bool { _, ok := s.(*audit.FieldsStage); return ok })
	if err := sink.Columns(cols); err != nil {
		return err
	}
	maxRows := int64(query.MaxRows)
	if r.export {
		maxRows = 0
	}
	vals := make([]any, len(gets))
	emit := func(row *qrow) (bool, error) {
		if maxRows > 0 && r.stats.Rows >= maxRows {
			r.stats.Truncated = true
			return true, nil
		}
		for i, g := range gets {
			vals[i] = g(row)
		}
		r.stats.Rows++
		var ev *audit.Event
		if whole {
			row.meta()
			ev = &row.ev
		}
		return false, sink.Row(vals, ev)
	}
	limit, sorted := preLimit(pre)
	if !sorted {
		want := limit
		if want == 0 && maxRows > 0 {
			want = int(maxRows) + 1
		}
		n := 0
		return r.scan(ctx, parts, true, want, func(row *qrow) (bool, error) {
			if limit > 0 && n >= limit {
				return true, nil
			}
			n++
			return emit(row)
		})
	}
	evs, err := r.sortedEvents(ctx, parts, pre)
	if err != nil {
		return err
	}
	for i := range evs {
		if stop, err := emit(&qrow{ev: evs[i], metaDone: true}); stop || err != nil {
			return err
		}
	}
	return nil
}

// defaultEventColumns are the columns of event rows without a fields stage.
var defaultEventColumns = []string{"time", "id", "action", "outcome", "reason", "actor.id", "target.id", "ip",
	"geo.country", "geo.city", "asn", "session", "user_agent"}

// eventColumns returns the output columns of event rows and their getters.
func (r *run) eventColumns(pre []audit.Stage) ([]audit.QueryColumn, []getter, error) {
	names := defaultEventColumns
	if r.scope.AllTenants {
		names = append([]string{"tenant"}, names...)
	}
	for _, s := range pre {
		if f, ok := s.(*audit.FieldsStage); ok {
			names = f.Names
		}
	}
	cols := make([]audit.QueryColumn, len(names))
	gets := make([]getter, len(names))
	for i, n := range names {
		g, ok := getterFor(n)
		if !ok {
			return nil, nil, invalid("q", "unknown field %q", n)
		}
		cols[i], gets[i] = audit.QueryColumn{Name: n, Type: fieldType(n)}, g
	}
	return cols, gets, nil
}

// fieldType is the column type of an event field.
func fieldType(name string) audit.FieldType {
	if name == "id" || name == "tenant" {
		return audit.FieldText
	}
	if f, ok := query.LookupField(name); ok {
		return f.Type
	}
	return audit.FieldText
}

// collectSink gathers a bounded result for RunQuery.
type collectSink struct {
	res *audit.QueryResult
}

func (c *collectSink) Columns(cols []audit.QueryColumn) error {
	c.res.Columns = cols
	return nil
}

func (c *collectSink) Row(vals []any, ev *audit.Event) error {
	c.res.Rows = append(c.res.Rows, slices.Clone(vals))
	if ev != nil {
		c.res.Events = append(c.res.Events, *ev)
	}
	return nil
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

// leanQuery reports whether every field q reads is in prefixFields. Event
// rows without a fields stage output whole events, so they are never lean.
func leanQuery(q *audit.Query) bool {
	ok := exprFields(q.Filter, func(f string) bool { return prefixFields[f] })
	hasStats, hasFields := false, false
	for _, s := range q.Stages {
		switch s := s.(type) {
		case *audit.StatsStage:
			hasStats = true
			for _, k := range s.By {
				ok = ok && prefixFields[k.Field]
			}
			for _, a := range s.Aggs {
				ok = ok && (a.Func == audit.AggCount || prefixFields[a.Field])
			}
		case *audit.SortStage:
			if !hasStats {
				for _, k := range s.Keys {
					ok = ok && prefixFields[k.Name]
				}
			}
		case *audit.FieldsStage:
			if !hasStats {
				hasFields = true
				for _, n := range s.Names {
					ok = ok && prefixFields[n]
				}
			}
		}
	}
	return ok && (hasStats || hasFields)
}

// exprFields reports whether keep holds for every field e compares; free
// text reads many fields, so it fails.
func exprFields(e audit.Expr, keep func(string) bool) bool {
	switch e := e.(type) {
	case nil:
		return true
	case *audit.AndExpr:
		for _, t := range e.Terms {
			if !exprFields(t, keep) {
				return false
			}
		}
		return true
	case *audit.OrExpr:
		for _, t := range e.Terms {
			if !exprFields(t, keep) {
				return false
			}
		}
		return true
	case *audit.NotExpr:
		return exprFields(e.Term, keep)
	case *audit.CompareExpr:
		return keep(e.Field)
	}
	return false
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
