package query

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// columns tracks what the rows look like between stages, so that every
// stage can check that the names it uses exist.
type columns struct {
	// table is set after stats: rows are the names below, all sortable.
	table bool
	// names are the columns of a table, or, when not nil for event rows, the
	// subset a fields stage kept.
	names []string
	stats bool // a stats stage has run
}

var stageNames = []string{"stats", "sort", "head", "fields"}

// parseStages parses { "|" stage } up to the end of the query.
func (p *parser) parseStages(q *audit.Query) error {
	var cols columns
	for p.peek().kind == tPipe {
		pipe := p.next()
		if len(q.Stages) == MaxStages {
			return errAt(p.src, pipe.pos, "query has more than %d stages", MaxStages)
		}
		t := p.next()
		if t.kind != tWord {
			return p.unexpected(t, "a stage: "+strings.Join(stageNames, ", "))
		}
		var s audit.Stage
		var err error
		switch strings.ToLower(t.raw) {
		case "stats":
			s, err = p.parseStats(t, q, &cols)
		case "sort":
			s, err = p.parseSort(&cols)
		case "head":
			s, err = p.parseHead()
		case "fields":
			s, err = p.parseFields(&cols)
		default:
			hint := "stages are " + strings.Join(stageNames, ", ")
			if w := suggestWord(t.raw, stageNames); w != "" {
				hint = "did you mean " + w + "?"
			}
			return errAtHint(p.src, t.pos, hint, "unknown stage %q", clipText(t.raw))
		}
		if err != nil {
			return err
		}
		if k := p.peek().kind; k != tPipe && k != tEOF {
			return p.unexpected(p.peek(), "'|' or the end of the query")
		}
		q.Stages = append(q.Stages, s)
	}
	if t := p.peek(); t.kind != tEOF {
		return p.unexpected(t, "")
	}
	return nil
}

// name reads a bare name (a field or column) and rejects escapes and
// colons, which no name contains.
func (p *parser) name(what string) (token, error) {
	t := p.next()
	if t.kind != tWord {
		return t, p.unexpected(t, what)
	}
	if strings.ContainsAny(t.raw, `\:*`) {
		return t, errAt(p.src, t.pos, "invalid name %q", clipText(t.raw))
	}
	return t, nil
}

// eventField resolves a field name used by stats while rows are events.
func (p *parser) eventField(t token, cols *columns) (Field, error) {
	f, err := p.lookupField(t.raw, t.pos)
	if err != nil {
		return Field{}, err
	}
	if cols.names != nil && !slices.Contains(cols.names, f.Name) {
		return Field{}, errAtHint(p.src, t.pos, "columns here: "+listNames(cols.names),
			"%s was removed by an earlier fields stage", f.Name)
	}
	return f, nil
}

// column resolves an output column name for sort and fields, returning its
// canonical name and whether rows can be sorted by it.
func (p *parser) column(t token, cols *columns) (string, bool, error) {
	if !cols.table {
		f, err := p.eventField(t, cols)
		return f.Name, f.Sortable, err
	}
	if slices.Contains(cols.names, t.raw) {
		return t.raw, true, nil
	}
	hint := "columns here: " + listNames(cols.names)
	if w := suggestWord(t.raw, cols.names); w != "" {
		hint = "did you mean " + w + "?"
	}
	return "", false, errAtHint(p.src, t.pos, hint, "unknown column %q", clipText(t.raw))
}

func listNames(names []string) string {
	if len(names) > 12 {
		return strings.Join(names[:12], ", ") + ", …"
	}
	return strings.Join(names, ", ")
}

// parseStats parses: stats agg { [","] agg } [ by key { "," key } ].
func (p *parser) parseStats(kw token, q *audit.Query, cols *columns) (audit.Stage, error) {
	if cols.stats {
		return nil, errAt(p.src, kw.pos, "only one stats stage is allowed")
	}
	if cols.table {
		return nil, errAt(p.src, kw.pos, "stats must come before any stage that makes a table")
	}
	st := &audit.StatsStage{}
	used := map[string]bool{}
	for {
		if p.peek().kind == tComma && len(st.Aggs) > 0 {
			p.next()
			if t := p.peek(); t.kind != tWord || strings.EqualFold(t.raw, "by") {
				return nil, p.unexpected(t, "an aggregate after ','")
			}
		}
		t := p.peek()
		if t.kind != tWord || strings.EqualFold(t.raw, "by") {
			break
		}
		if len(st.Aggs) == MaxAggs {
			return nil, errAt(p.src, t.pos, "stats has more than %d aggregates", MaxAggs)
		}
		a, err := p.parseAgg(cols)
		if err != nil {
			return nil, err
		}
		if used[a.As] {
			return nil, errAtHint(p.src, t.pos, "rename one with as", "duplicate output column %q", a.As)
		}
		used[a.As] = true
		st.Aggs = append(st.Aggs, a)
	}
	if len(st.Aggs) == 0 {
		return nil, errAtHint(p.src, p.peek().pos, "count(), dc(field), min(field) or max(field)",
			"stats needs at least one aggregate")
	}
	if p.isKeyword("by") {
		p.next()
		for {
			if err := p.parseGroupKey(st, q, cols, used); err != nil {
				return nil, err
			}
			if p.peek().kind != tComma {
				break
			}
			p.next()
		}
	}
	cols.stats, cols.table, cols.names = true, true, nil
	for _, k := range st.By {
		cols.names = append(cols.names, k.Field)
	}
	for _, a := range st.Aggs {
		cols.names = append(cols.names, a.As)
	}
	return st, nil
}

// parseAgg parses: func "(" [field] ")" [ as name ].
func (p *parser) parseAgg(cols *columns) (audit.Agg, error) {
	fn := p.next()
	var a audit.Agg
	switch strings.ToLower(fn.raw) {
	case "count":
		a.Func = audit.AggCount
	case "dc":
		a.Func = audit.AggDC
	case "min":
		a.Func = audit.AggMin
	case "max":
		a.Func = audit.AggMax
	default:
		return a, errAtHint(p.src, fn.pos, "aggregates are count(), dc(field), min(field) and max(field)",
			"unknown aggregate %q", clipText(fn.raw))
	}
	if t := p.next(); t.kind != tLParen {
		return a, p.unexpected(t, "'(' after "+string(a.Func))
	}
	if p.peek().kind == tWord {
		t, err := p.name("a field")
		if err != nil {
			return a, err
		}
		if a.Func == audit.AggCount {
			return a, errAt(p.src, t.pos, "count() takes no field")
		}
		f, err := p.eventField(t, cols)
		if err != nil {
			return a, err
		}
		switch {
		case a.Func == audit.AggDC && !f.Groupable:
			return a, errAt(p.src, t.pos, "dc() cannot count distinct values of %s", f.Name)
		case a.Func != audit.AggDC && !f.Aggregatable:
			return a, errAtHint(p.src, t.pos, "min() and max() take time, asn or risk.score",
				"%s() cannot be applied to %s", a.Func, f.Name)
		}
		a.Field = f.Name
	} else if a.Func != audit.AggCount {
		return a, p.unexpected(p.peek(), "a field for "+string(a.Func)+"()")
	}
	if t := p.next(); t.kind != tRParen {
		return a, p.unexpected(t, "')'")
	}
	a.As = audit.DefaultAggName(a.Func, a.Field)
	if p.isKeyword("as") {
		p.next()
		t := p.next()
		if t.kind != tWord || !validColumnName(t.raw) {
			return a, errAtHint(p.src, t.pos, "names are letters, digits and '_', starting with a letter or '_', at most 64 bytes",
				"invalid output name %s", t.describe())
		}
		a.As = t.raw
	}
	return a, nil
}

// validColumnName reports whether s can name a stats output column.
func validColumnName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	switch strings.ToLower(s) {
	case "by", "as", "bin", "and", "or", "not":
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// parseGroupKey parses one "by" key: a field, or bin(time, width).
func (p *parser) parseGroupKey(st *audit.StatsStage, q *audit.Query, cols *columns, used map[string]bool) error {
	t, err := p.name("a field or bin(time, width)")
	if err != nil {
		return err
	}
	if len(st.By) == MaxGroupKeys {
		return errAt(p.src, t.pos, "stats has more than %d group keys", MaxGroupKeys)
	}
	var k audit.GroupKey
	if strings.EqualFold(t.raw, "bin") && p.peek().kind == tLParen {
		if k, err = p.parseBin(t, q, cols); err != nil {
			return err
		}
	} else {
		f, err := p.eventField(t, cols)
		if err != nil {
			return err
		}
		if f.Name == "time" {
			return errAtHint(p.src, t.pos, "group by time buckets with bin(time, 5m)", "cannot group by raw time")
		}
		if !f.Groupable {
			return errAt(p.src, t.pos, "cannot group by %s", f.Name)
		}
		k.Field = f.Name
	}
	if used[k.Field] {
		return errAt(p.src, t.pos, "duplicate output column %q", k.Field)
	}
	used[k.Field] = true
	st.By = append(st.By, k)
	return nil
}

// parseBin parses "(" time "," width ")" after bin, and checks the width
// and the number of buckets it makes over the query's time range.
func (p *parser) parseBin(kw token, q *audit.Query, cols *columns) (audit.GroupKey, error) {
	p.next() // (
	t, err := p.name("time")
	if err != nil {
		return audit.GroupKey{}, err
	}
	f, err := p.eventField(t, cols)
	if err != nil {
		return audit.GroupKey{}, err
	}
	if f.Name != "time" {
		return audit.GroupKey{}, errAt(p.src, t.pos, "bin() only buckets time, not %s", f.Name)
	}
	if c := p.next(); c.kind != tComma {
		return audit.GroupKey{}, p.unexpected(c, "',' and a width like 5m")
	}
	w := p.next()
	width, err := parseDuration(w.raw)
	if w.kind != tWord || err != nil || width < MinBinWidth {
		return audit.GroupKey{}, errAtHint(p.src, w.pos, "write a width like 30s, 5m, 1h or 1d",
			"invalid bucket width %s", w.describe())
	}
	if c := p.next(); c.kind != tRParen {
		return audit.GroupKey{}, p.unexpected(c, "')'")
	}
	span := q.Until.Sub(q.Since)
	if n := (span + width - 1) / width; n > MaxBuckets {
		return audit.GroupKey{}, errAtHint(p.src, w.pos, fmt.Sprintf("use a width of at least %s or a shorter time range", audit.FormatBinWidth(minWidth(span))),
			"bin(time, %s) makes %d buckets over the time range, more than the limit of %d", audit.FormatBinWidth(width), n, MaxBuckets)
	}
	return audit.GroupKey{Field: "time", Bin: width}, nil
}

// minWidth is the narrowest whole-second width that fits span into
// MaxBuckets buckets.
func minWidth(span time.Duration) time.Duration {
	w := (span + MaxBuckets - 1) / MaxBuckets
	return (w + time.Second - 1) / time.Second * time.Second
}

// parseSort parses: sort key { [","] key }, key = ["-"|"+"] name.
func (p *parser) parseSort(cols *columns) (audit.Stage, error) {
	st := &audit.SortStage{}
	for {
		desc := false
		if m := p.peek(); m.kind == tMinus {
			p.next()
			if p.peek().pos != m.end {
				return nil, errAt(p.src, m.pos, "'-' must be followed directly by the column name")
			}
			desc = true
		}
		t, err := p.name("a column to sort by")
		if err != nil {
			return nil, err
		}
		if !desc {
			if r, ok := strings.CutPrefix(t.raw, "+"); ok {
				t.raw, t.pos = r, t.pos+1
			}
		}
		name, sortable, err := p.column(t, cols)
		if err != nil {
			return nil, err
		}
		if !sortable {
			return nil, errAt(p.src, t.pos, "cannot sort by %s", name)
		}
		if slices.ContainsFunc(st.Keys, func(k audit.SortKey) bool { return k.Name == name }) {
			return nil, errAt(p.src, t.pos, "duplicate sort key %q", name)
		}
		if len(st.Keys) == MaxSortKeys {
			return nil, errAt(p.src, t.pos, "sort has more than %d keys", MaxSortKeys)
		}
		st.Keys = append(st.Keys, audit.SortKey{Name: name, Desc: desc})
		if !p.moreNames() {
			return st, nil
		}
	}
}

// moreNames consumes an optional ',' and reports whether another name
// follows in a list.
func (p *parser) moreNames() bool {
	if p.peek().kind == tComma {
		p.next()
		return true
	}
	k := p.peek().kind
	return k == tWord || k == tMinus
}

// parseHead parses: head N, 1 ≤ N ≤ MaxRows.
func (p *parser) parseHead() (audit.Stage, error) {
	t := p.next()
	n, err := strconv.Atoi(t.raw)
	if t.kind != tWord || err != nil || n < 1 || n > MaxRows {
		return nil, errAt(p.src, t.pos, "head takes a number of rows from 1 to %d, not %s", MaxRows, t.describe())
	}
	return &audit.HeadStage{N: n}, nil
}

// parseFields parses: fields name { [","] name }.
func (p *parser) parseFields(cols *columns) (audit.Stage, error) {
	st := &audit.FieldsStage{}
	for {
		t, err := p.name("a column name")
		if err != nil {
			return nil, err
		}
		name, _, err := p.column(t, cols)
		if err != nil {
			return nil, err
		}
		if slices.Contains(st.Names, name) {
			return nil, errAt(p.src, t.pos, "duplicate column %q", name)
		}
		if len(st.Names) == MaxStages*MaxAggs {
			return nil, errAt(p.src, t.pos, "too many columns")
		}
		st.Names = append(st.Names, name)
		if !p.moreNames() {
			break
		}
	}
	cols.names = st.Names
	return st, nil
}
