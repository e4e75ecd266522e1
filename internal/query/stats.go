package query

import (
	"slices"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// This file holds the stats stage (groups, exact distinct counts, min/max,
// time buckets, the merge of groups a store counted natively) and the
// in-memory sort/head/fields stages.

// aggState is one aggregate of one group.
type aggState struct {
	n   int64
	set map[string]struct{}
	v   any
}

type group struct {
	keys []any
	aggs []aggState
}

type aggregator struct {
	r       *run
	st      *audit.StatsStage
	keyGets []getter
	aggGets []getter
	groups  map[string]*group
	keyBuf  []byte
	// maxGroups is the group limit: MaxGroups, or the runner's
	// MaxTopGroups for a top-N (stats | sort | head).
	maxGroups int
}

func newAggregator(r *run, st *audit.StatsStage) (*aggregator, error) {
	a := &aggregator{r: r, st: st, groups: map[string]*group{}, maxGroups: MaxGroups}
	for _, k := range st.By {
		g, ok := getterFor(k.Field)
		if !ok {
			return nil, audit.FieldErrorf("q", "unknown group key %q", k.Field)
		}
		a.keyGets = append(a.keyGets, g)
	}
	for _, ag := range st.Aggs {
		var g getter
		if ag.Func != audit.AggCount {
			var ok bool
			if g, ok = getterFor(ag.Field); !ok {
				return nil, audit.FieldErrorf("q", "unknown field %q in %s()", ag.Field, ag.Func)
			}
		}
		a.aggGets = append(a.aggGets, g)
	}
	return a, nil
}

// bucket returns the start of t's bucket of width w, aligned to the epoch.
func bucket(t time.Time, w time.Duration) time.Time {
	ns := t.UnixNano()
	b := ns / int64(w)
	if ns%int64(w) < 0 {
		b--
	}
	return time.Unix(0, b*int64(w)).UTC()
}

// groupFor returns the group of the key values, creating it within the
// group limit.
func (a *aggregator) groupFor(keys []any) (*group, error) {
	a.keyBuf = a.keyBuf[:0]
	for _, k := range keys {
		a.keyBuf = appendKey(a.keyBuf, k)
	}
	if g, ok := a.groups[string(a.keyBuf)]; ok {
		return g, nil
	}
	if len(a.groups) >= a.maxGroups {
		return nil, limitErr("the stats stage makes more than %d groups, its limit; group by fewer or coarser keys, narrow the filter, or follow it with | sort … | head N", a.maxGroups)
	}
	g := &group{keys: slices.Clone(keys), aggs: make([]aggState, len(a.st.Aggs))}
	a.groups[string(a.keyBuf)] = g
	return g, nil
}

// add counts one event.
func (a *aggregator) add(row *audit.EventRow) error {
	keys := make([]any, len(a.keyGets))
	for i, g := range a.keyGets {
		v := g(row)
		if w := a.st.By[i].Bin; w > 0 {
			if t, ok := v.(time.Time); ok {
				v = bucket(t, w)
			}
		}
		keys[i] = v
	}
	g, err := a.groupFor(keys)
	if err != nil {
		return err
	}
	for i, ag := range a.st.Aggs {
		s := &g.aggs[i]
		switch ag.Func {
		case audit.AggCount:
			s.n++
		case audit.AggDC:
			v := a.aggGets[i](row)
			if v == nil {
				continue
			}
			k := formatValue(v)
			if a.r.scope.AllTenants {
				k = row.Event.Tenant + "\x00" + k // the same id in two tenants is two accounts
			}
			if s.set == nil {
				s.set = map[string]struct{}{}
			}
			if _, seen := s.set[k]; !seen {
				if a.r.distinc >= a.r.q.opts.MaxDistinct {
					return limitErr("dc() would hold more than %d distinct values, its limit; narrow the filter or the time range", a.r.q.opts.MaxDistinct)
				}
				s.set[k] = struct{}{}
				a.r.distinc++
			}
		case audit.AggMin, audit.AggMax:
			a.minmax(s, ag.Func, a.aggGets[i](row))
		}
	}
	return nil
}

func (a *aggregator) minmax(s *aggState, f audit.AggFunc, v any) {
	if v == nil {
		return
	}
	c := compareValues(v, s.v)
	if s.v == nil || (f == audit.AggMin && c < 0) || (f == audit.AggMax && c > 0) {
		s.v = v
	}
}

// addPartial merges a group computed in SQL: n rows with the given
// smallest and largest times.
func (a *aggregator) addPartial(keys []any, n int64, minT, maxT time.Time) error {
	g, err := a.groupFor(keys)
	if err != nil {
		return err
	}
	for i, ag := range a.st.Aggs {
		s := &g.aggs[i]
		switch ag.Func {
		case audit.AggCount:
			s.n += n
		case audit.AggMin:
			a.minmax(s, ag.Func, minT)
		case audit.AggMax:
			a.minmax(s, ag.Func, maxT)
		}
	}
	return nil
}

// table returns the groups in key order. Without group keys there is
// always one row, so "count()" over nothing says 0.
func (a *aggregator) table() ([]audit.QueryColumn, [][]any) {
	var cols []audit.QueryColumn
	for _, k := range a.st.By {
		t := fieldType(k.Field)
		if k.Bin > 0 {
			t = audit.FieldTime
		}
		cols = append(cols, audit.QueryColumn{Name: k.Field, Type: t})
	}
	for _, ag := range a.st.Aggs {
		t := audit.FieldNumber
		if ag.Func == audit.AggMin || ag.Func == audit.AggMax {
			t = fieldType(ag.Field)
		}
		cols = append(cols, audit.QueryColumn{Name: ag.As, Type: t})
	}
	if len(a.st.By) == 0 && len(a.groups) == 0 {
		a.groups[""] = &group{aggs: make([]aggState, len(a.st.Aggs))}
	}
	gs := make([]*group, 0, len(a.groups))
	for _, g := range a.groups {
		gs = append(gs, g)
	}
	slices.SortFunc(gs, func(x, y *group) int {
		for i := range x.keys {
			if c := compareValues(x.keys[i], y.keys[i]); c != 0 {
				return c
			}
		}
		return 0
	})
	rows := make([][]any, len(gs))
	for i, g := range gs {
		row := make([]any, 0, len(cols))
		row = append(row, g.keys...)
		for j, ag := range a.st.Aggs {
			s := g.aggs[j]
			switch ag.Func {
			case audit.AggCount:
				row = append(row, s.n)
			case audit.AggDC:
				row = append(row, int64(len(s.set)))
			default:
				row = append(row, s.v)
			}
		}
		rows[i] = row
	}
	return cols, rows
}

// applyTableStages runs the stages after stats on the table.
func applyTableStages(cols []audit.QueryColumn, rows [][]any, stages []audit.Stage) ([]audit.QueryColumn, [][]any) {
	index := func(name string) int {
		return slices.IndexFunc(cols, func(c audit.QueryColumn) bool { return c.Name == name })
	}
	for _, s := range stages {
		switch s := s.(type) {
		case *audit.SortStage:
			type key struct {
				i    int
				desc bool
			}
			var keys []key
			for _, k := range s.Keys {
				if i := index(k.Name); i >= 0 {
					keys = append(keys, key{i, k.Desc})
				}
			}
			slices.SortStableFunc(rows, func(x, y []any) int {
				for _, k := range keys {
					c := compareValues(x[k.i], y[k.i])
					if k.desc {
						c = -c
					}
					if c != 0 {
						return c
					}
				}
				return 0
			})
		case *audit.HeadStage:
			rows = rows[:min(len(rows), s.N)]
		case *audit.FieldsStage:
			var idx []int
			var nc []audit.QueryColumn
			for _, n := range s.Names {
				if i := index(n); i >= 0 {
					idx = append(idx, i)
					nc = append(nc, cols[i])
				}
			}
			for j, row := range rows {
				nr := make([]any, len(idx))
				for k, i := range idx {
					nr[k] = row[i]
				}
				rows[j] = nr
			}
			cols = nc
		}
	}
	return cols, rows
}

// topK keeps the best k events of a sort, ties in arrival order.
type topK struct {
	keys  []audit.SortKey
	gets  []getter
	k     int
	items []topItem
	seq   int
	worst []any // the worst kept keys once the buffer has been cut
}

type topItem struct {
	ev   audit.Event
	keys []any
	seq  int
}

func newTopK(keys []audit.SortKey, k int) (*topK, error) {
	t := &topK{keys: keys, k: k}
	for _, sk := range keys {
		g, ok := getterFor(sk.Name)
		if !ok {
			return nil, audit.FieldErrorf("q", "unknown sort field %q", sk.Name)
		}
		t.gets = append(t.gets, g)
	}
	return t, nil
}

func (t *topK) cmpKeys(a, b []any) int {
	for i, sk := range t.keys {
		c := compareValues(a[i], b[i])
		if sk.Desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// offer considers one event; it reports whether an event was dropped.
func (t *topK) offer(row *audit.EventRow) (dropped bool) {
	keys := make([]any, len(t.gets))
	for i, g := range t.gets {
		keys[i] = g(row)
	}
	t.seq++
	if t.worst != nil && t.cmpKeys(keys, t.worst) >= 0 {
		return true // cannot beat the kept ones (ties lose to earlier events)
	}
	t.items = append(t.items, topItem{ev: row.Own(), keys: keys, seq: t.seq})
	if len(t.items) >= 2*t.k {
		t.cut()
		return true
	}
	return false
}

func (t *topK) cut() {
	slices.SortFunc(t.items, func(a, b topItem) int {
		if c := t.cmpKeys(a.keys, b.keys); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
	if len(t.items) > t.k {
		clear(t.items[t.k:])
		t.items = t.items[:t.k]
		t.worst = t.items[t.k-1].keys
	}
}

func (t *topK) sorted() []audit.Event {
	t.cut()
	out := make([]audit.Event, len(t.items))
	for i := range t.items {
		out[i] = t.items[i].ev
	}
	return out
}

// sortEvents sorts kept events in memory, stably.
func sortEvents(evs []audit.Event, keys []audit.SortKey) error {
	t, err := newTopK(keys, len(evs))
	if err != nil {
		return err
	}
	type item struct {
		ev   audit.Event
		keys []any
	}
	items := make([]item, len(evs))
	for i := range evs {
		row := &audit.EventRow{Event: evs[i]}
		k := make([]any, len(t.gets))
		for j, g := range t.gets {
			k[j] = g(row)
		}
		items[i] = item{evs[i], k}
	}
	slices.SortStableFunc(items, func(a, b item) int { return t.cmpKeys(a.keys, b.keys) })
	for i := range items {
		evs[i] = items[i].ev
	}
	return nil
}
