package query

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// Defaults of Options.
const (
	DefaultTimeout      = 30 * time.Second
	DefaultMaxScanned   = 50_000_000
	DefaultMaxDistinct  = 1_000_000
	DefaultMaxParts     = 400
	DefaultMaxTopGroups = 1_000_000
)

// Options bounds what one query may cost.
type Options struct {
	// Timeout is the longest one query runs, DefaultTimeout when 0.
	// Exports get ExportTimeout instead.
	Timeout time.Duration
	// ExportTimeout bounds one export; 0 means no limit beyond the
	// caller's context (an export is paced by its client).
	ExportTimeout time.Duration
	// MaxScanned is the most stored rows one query may examine,
	// DefaultMaxScanned when 0. Exports are not bounded by it.
	MaxScanned int64
	// MaxPartitions is the most storage partitions (days) one query may
	// read, DefaultMaxParts when 0.
	MaxPartitions int
	// MaxDistinct is the most values all dc() sets of one query may hold
	// together, DefaultMaxDistinct when 0: dc is exact, so its memory
	// grows with the distinct values.
	MaxDistinct int
	// MaxTopGroups is the most groups a stats stage may hold when a sort
	// and a head follow it directly (a top-N: "top 20 IPs by distinct
	// failed accounts" needs every IP's group to pick 20), default
	// DefaultMaxTopGroups. Other stats stages hold at most MaxGroups,
	// since all their groups are the answer.
	MaxTopGroups int
}

// Runner runs parsed queries (audit.QueryRunner) on a store: it pushes the
// scope, time range, filter, needed fields, order and limit down to the
// store's scan, lets a store that implements audit.EventGrouper count
// groups natively, and evaluates the rest in Go. See "How queries run" in
// docs/query-language.md.
type Runner struct {
	store audit.EventScanner
	opts  Options
}

var _ audit.QueryRunner = (*Runner)(nil)

// NewRunner returns a query runner on store with the given limits.
func NewRunner(store audit.EventScanner, o Options) *Runner {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxScanned <= 0 {
		o.MaxScanned = DefaultMaxScanned
	}
	if o.MaxPartitions <= 0 {
		o.MaxPartitions = DefaultMaxParts
	}
	if o.MaxDistinct <= 0 {
		o.MaxDistinct = DefaultMaxDistinct
	}
	if o.MaxTopGroups <= 0 {
		o.MaxTopGroups = DefaultMaxTopGroups
	}
	return &Runner{store: store, opts: o}
}

// errQueryTimeout is the cause of a query's own deadline, told apart from
// the caller going away.
var errQueryTimeout = errors.New("query time limit")

// run is the state of one query execution.
type run struct {
	q       *Runner
	scope   audit.QueryScope
	query   *audit.Query
	export  bool
	stats   audit.QueryStats
	limit   time.Duration
	distinc int // values held by all dc sets
	// fields are the event fields the query reads, nil for whole events:
	// a store may decode only those.
	fields []string
}

func limitErr(format string, args ...any) error {
	return &audit.Error{Code: audit.EINVALID, Message: fmt.Sprintf(format, args...)}
}

// RunQuery implements audit.QueryRunner.
func (q *Runner) RunQuery(ctx context.Context, scope audit.QueryScope, qu *audit.Query) (*audit.QueryResult, error) {
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
func (q *Runner) ExportQuery(ctx context.Context, scope audit.QueryScope, qu *audit.Query, sink audit.QuerySink) (audit.QueryStats, error) {
	return q.execute(ctx, scope, qu, sink, true)
}

func (q *Runner) execute(ctx context.Context, scope audit.QueryScope, qu *audit.Query, sink audit.QuerySink, export bool) (audit.QueryStats, error) {
	start := time.Now()
	if err := scope.Validate(); err != nil {
		return audit.QueryStats{}, err
	}
	if qu == nil || qu.Since.IsZero() || qu.Until.IsZero() || !qu.Until.After(qu.Since) {
		return audit.QueryStats{}, audit.FieldErrorf("q", "a query needs a time range")
	}
	r := &run{q: q, scope: scope, query: qu, export: export, limit: q.opts.Timeout, fields: readFields(qu)}
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
	if sp.stats == nil {
		return r.eventRows(ctx, sp.pre, sink)
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
	grouped := false
	if len(sp.pre) == 0 && groupableAggs(sp.stats) {
		if grouped, err = r.groupInStore(ctx, agg); err != nil {
			return err
		}
	}
	if !grouped {
		if err := r.feedEvents(ctx, sp.pre, func(row *audit.EventRow) error { return agg.add(row) }); err != nil {
			return err
		}
	}
	cols, rows := agg.table()
	cols, rows = applyTableStages(cols, rows, sp.post)
	if len(rows) > MaxRows {
		rows = rows[:MaxRows]
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

// scanFn receives each matching event; it returns stop=true to end the
// scan.
type scanFn func(row *audit.EventRow) (stop bool, err error)

// scan asks the store for the matching events of the query, newest first
// when ordered; want > 0 is the most the caller will take.
func (r *run) scan(ctx context.Context, ordered bool, want int, fn scanFn) error {
	s := audit.EventScan{
		Scope: r.scope, Since: r.query.Since, Until: r.query.Until, Filter: r.query.Filter,
		Match: r.match, Fields: r.fields, Ordered: ordered, Limit: want, MaxPartitions: r.q.opts.MaxPartitions,
	}
	if !r.export {
		s.MaxScanned = r.q.opts.MaxScanned
	}
	st, err := r.q.store.ScanEvents(ctx, s, fn)
	r.addStats(st)
	return err
}

// match decides the rows the store could not decide itself.
func (r *run) match(row *audit.EventRow) bool { return evalExpr(r.query.Filter, row) }

func (r *run) addStats(st audit.ScanStats) {
	r.stats.Partitions += st.Partitions
	r.stats.Scanned += st.Scanned
	r.stats.Matched += st.Matched
}

// groupableAggs reports whether every aggregate can be computed from the
// counts and time bounds a store's grouping returns.
func groupableAggs(st *audit.StatsStage) bool {
	for _, a := range st.Aggs {
		switch {
		case a.Func == audit.AggCount:
		case (a.Func == audit.AggMin || a.Func == audit.AggMax) && a.Field == "time":
		default:
			return false
		}
	}
	return true
}

// groupInStore lets a store that can group natively count the stats
// stage's groups; grouped is false when it cannot (or does not offer to),
// and the events are then grouped in Go.
func (r *run) groupInStore(ctx context.Context, agg *aggregator) (grouped bool, err error) {
	g, ok := r.q.store.(audit.EventGrouper)
	if !ok {
		return false, nil
	}
	req := audit.EventGrouping{
		Scope: r.scope, Since: r.query.Since, Until: r.query.Until, Filter: r.query.Filter,
		By: agg.st.By, MaxGroups: agg.maxGroups, MaxScanned: r.q.opts.MaxScanned, MaxPartitions: r.q.opts.MaxPartitions,
	}
	st, err := g.GroupEvents(ctx, req, func(gr audit.EventGroup) error {
		return agg.addPartial(gr.Keys, gr.Count, gr.MinTime, gr.MaxTime)
	})
	if errors.Is(err, audit.ErrNotGrouped) {
		return false, nil
	}
	r.addStats(st)
	return true, err
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
// stream; a sort keeps the best MaxRows (or its head) in memory.
func (r *run) feedEvents(ctx context.Context, pre []audit.Stage, fn func(*audit.EventRow) error) error {
	limit, sorted := preLimit(pre)
	if !sorted {
		n := 0
		return r.scan(ctx, limit > 0, limit, func(row *audit.EventRow) (bool, error) {
			if err := fn(row); err != nil {
				return true, err
			}
			n++
			return limit > 0 && n >= limit, nil
		})
	}
	evs, err := r.sortedEvents(ctx, pre)
	if err != nil {
		return err
	}
	for i := range evs {
		if err := fn(&audit.EventRow{Event: evs[i]}); err != nil {
			return err
		}
	}
	return nil
}

// sortedEvents runs pre-stats stages that hold a sort: events up to the
// first sort stream (heads apply), the first sort keeps its top K (K = the
// head that follows it, at most MaxRows), and the remaining stages
// apply in memory. Fields stages only project at output and are skipped.
func (r *run) sortedEvents(ctx context.Context, pre []audit.Stage) ([]audit.Event, error) {
	first := slices.IndexFunc(pre, func(s audit.Stage) bool { _, ok := s.(*audit.SortStage); return ok })
	before, _ := preLimit(pre[:first])
	sortStage := pre[first].(*audit.SortStage)
	k, headed := MaxRows, false
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
	err = r.scan(ctx, before > 0, before, func(row *audit.EventRow) (bool, error) {
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
func (r *run) eventRows(ctx context.Context, pre []audit.Stage, sink audit.QuerySink) error {
	cols, gets, err := r.eventColumns(pre)
	if err != nil {
		return err
	}
	whole := !slices.ContainsFunc(pre, func(s audit.Stage) bool { _, ok := s.(*audit.FieldsStage); return ok })
	if err := sink.Columns(cols); err != nil {
		return err
	}
	maxRows := int64(MaxRows)
	if r.export {
		maxRows = 0
	}
	vals := make([]any, len(gets))
	emit := func(row *audit.EventRow) (bool, error) {
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
			row.Metadata()
			ev = &row.Event
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
		return r.scan(ctx, true, want, func(row *audit.EventRow) (bool, error) {
			if limit > 0 && n >= limit {
				return true, nil
			}
			n++
			return emit(row)
		})
	}
	evs, err := r.sortedEvents(ctx, pre)
	if err != nil {
		return err
	}
	for i := range evs {
		if stop, err := emit(&audit.EventRow{Event: evs[i]}); stop || err != nil {
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
			return nil, nil, audit.FieldErrorf("q", "unknown field %q", n)
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
	if f, ok := LookupField(name); ok {
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

// readFields returns the event fields q reads, or nil when it needs whole
// events: event rows without a fields stage output the whole event, and
// free text reads many fields.
func readFields(q *audit.Query) []string {
	seen := map[string]bool{}
	var out []string
	add := func(f string) {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	if !exprFields(q.Filter, func(f string) bool { add(f); return true }) {
		return nil
	}
	hasStats, hasFields := false, false
	for _, s := range q.Stages {
		switch s := s.(type) {
		case *audit.StatsStage:
			hasStats = true
			for _, k := range s.By {
				add(k.Field)
			}
			for _, a := range s.Aggs {
				if a.Func != audit.AggCount {
					add(a.Field)
				}
			}
		case *audit.SortStage:
			if !hasStats {
				for _, k := range s.Keys {
					add(k.Name)
				}
			}
		case *audit.FieldsStage:
			if !hasStats {
				hasFields = true
				for _, n := range s.Names {
					add(n)
				}
			}
		}
	}
	if !hasStats && !hasFields {
		return nil
	}
	if out == nil {
		out = []string{}
	}
	return out
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
