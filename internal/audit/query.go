package audit

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// This file holds the investigation query plan: what internal/query parses
// from the query language and what storage adapters compile to
// parameterised SQL. The plan is plain data. Every operand is a typed value
// that an adapter binds as a parameter; nothing in it is ever meant to be
// spliced into SQL text. A plan produced by query.Parse is validated and
// bounded (time range, buckets, rows); a hand-built plan is not, and should
// be printed with String and re-parsed if it comes from outside.

// FieldType is the type of a queryable event field. It decides which
// comparison operators apply and which operand of a QueryValue is set.
type FieldType string

// Field types.
const (
	// FieldText is a string field: equality, prefix, suffix, contains, exists.
	FieldText FieldType = "text"
	// FieldNumber is an integer field: equality, <, <=, >, >=, exists.
	FieldNumber FieldType = "number"
	// FieldIP is an IP address field: within a prefix (a single address is a
	// /32 or /128), exists.
	FieldIP FieldType = "ip"
	// FieldTime is the event time. It never appears in a CompareExpr: time
	// bounds are lifted into Query.Since and Query.Until.
	FieldTime FieldType = "time"
)

// CompareOp is the operator of a CompareExpr.
type CompareOp string

// Comparison operators. Text matching is case-sensitive except where the
// field definition normalises case (action lowercase, geo.country uppercase).
const (
	OpEq       CompareOp = "eq"       // text or number equality
	OpPrefix   CompareOp = "prefix"   // text starts with Value.Text
	OpSuffix   CompareOp = "suffix"   // text ends with Value.Text
	OpContains CompareOp = "contains" // text contains Value.Text
	OpExists   CompareOp = "exists"   // field is present (non-empty, non-zero)
	OpLt       CompareOp = "lt"       // number < Value.Int
	OpLe       CompareOp = "le"       // number <= Value.Int
	OpGt       CompareOp = "gt"       // number > Value.Int
	OpGe       CompareOp = "ge"       // number >= Value.Int
	OpIn       CompareOp = "in"       // IP address within Value.Prefix
)

// Query is a parsed, validated investigation query: a filter over events in
// a time range, then a pipeline of stages.
//
// Since (inclusive) and Until (exclusive) are always set by the parser, in
// UTC, and bound every query; the compiler must apply them as a range on the
// event time. Filter nil matches every event in the range. The compiler
// must additionally scope the query to the caller's tenant(s): a Query never
// names a tenant.
type Query struct {
	Since  time.Time
	Until  time.Time
	Filter Expr
	Stages []Stage
}

// Expr is a node of the filter expression tree: *AndExpr, *OrExpr,
// *NotExpr, *CompareExpr or *TextExpr.
type Expr interface {
	// String prints the node in canonical query-language source.
	String() string
	isExpr()
}

// AndExpr matches when every term matches. The parser flattens nested ANDs,
// so no term of a parsed AndExpr is itself an *AndExpr, and it has at least
// two terms.
type AndExpr struct {
	Terms []Expr
}

// OrExpr matches when any term matches. Like AndExpr it is flattened and has
// at least two terms.
type OrExpr struct {
	Terms []Expr
}

// NotExpr matches when Term does not. On a missing field, NOT f:x matches
// (the event does not have f equal to x).
type NotExpr struct {
	Term Expr
}

// CompareExpr compares one field with a typed operand.
type CompareExpr struct {
	// Field is a canonical field name (see query.Fields), or "metadata.<key>".
	Field string
	Op    CompareOp
	// Value is the operand; its Type is the field's type. For OpExists it
	// carries only the Type.
	Value QueryValue
}

// QueryValue is a typed operand. Exactly one of Text, Int or Prefix is
// meaningful, as selected by Type.
type QueryValue struct {
	Type FieldType
	// Text is the literal for text fields, with wildcards removed and escapes
	// resolved: for OpPrefix "auth.login." means `auth.login.*`. It may
	// contain any character, including SQL LIKE metacharacters ('%', '_'),
	// which a compiler must escape when it uses LIKE.
	Text string
	// Int is the operand of number fields.
	Int int64
	// Prefix is the operand of the ip field, masked, IPv4 unmapped.
	Prefix netip.Prefix
}

// TextExpr is free text: it matches when Text occurs, case-insensitively, as
// a substring of the event's searchable text (metadata values, actor and
// target ids, emails and names, the reason and the user agent).
type TextExpr struct {
	Text string
}

func (*AndExpr) isExpr()     {}
func (*OrExpr) isExpr()      {}
func (*NotExpr) isExpr()     {}
func (*CompareExpr) isExpr() {}
func (*TextExpr) isExpr()    {}

// Stage is one pipe stage: *StatsStage, *SortStage, *HeadStage or
// *FieldsStage. Stages apply in order to the rows the previous one produced;
// the first receives the matching events, newest first.
type Stage interface {
	// String prints the stage in canonical query-language source.
	String() string
	isStage()
}

// AggFunc is an aggregate function of a stats stage.
type AggFunc string

// Aggregate functions.
const (
	AggCount AggFunc = "count" // number of rows; Agg.Field is empty
	AggDC    AggFunc = "dc"    // number of distinct non-empty values of Field
	AggMin   AggFunc = "min"   // smallest value of Field
	AggMax   AggFunc = "max"   // largest value of Field
)

// Agg is one aggregate of a stats stage. As is its output column name,
// always set: by default "count" for count(), else func_field with dots
// replaced by underscores ("dc_actor_id").
type Agg struct {
	Func  AggFunc
	Field string
	As    string
}

// GroupKey is one group-by key of a stats stage: a field, or, when Bin is
// non-zero, time buckets of width Bin on the time field, aligned to the Unix
// epoch. Its output column is named Field.
type GroupKey struct {
	Field string
	Bin   time.Duration
}

// StatsStage groups rows by By (one group overall when By is empty) and
// computes Aggs per group. Its output columns are the By fields followed by
// the Agg names. The compiler must cap the number of groups (query.MaxGroups).
type StatsStage struct {
	Aggs []Agg
	By   []GroupKey
}

// SortKey orders by one output column.
type SortKey struct {
	Name string
	Desc bool
}

// SortStage orders rows by Keys, the first key most significant.
type SortStage struct {
	Keys []SortKey
}

// HeadStage keeps the first N rows.
type HeadStage struct {
	N int
}

// FieldsStage keeps only the named columns, in that order.
type FieldsStage struct {
	Names []string
}

func (*StatsStage) isStage()  {}
func (*SortStage) isStage()   {}
func (*HeadStage) isStage()   {}
func (*FieldsStage) isStage() {}

// String prints the query in canonical source: explicit time bounds first,
// then the filter, then the stages. Parsing the result gives an equal Query.
func (q *Query) String() string {
	var b strings.Builder
	b.WriteString("time:>=")
	b.WriteString(formatQueryTime(q.Since))
	b.WriteString(" time:<")
	b.WriteString(formatQueryTime(q.Until))
	if q.Filter != nil {
		// The time bounds are ANDed with the filter, so a top-level OR
		// needs parentheses to keep its meaning.
		b.WriteByte(' ')
		_, isOr := q.Filter.(*OrExpr)
		b.WriteString(wrapExpr(q.Filter, isOr))
	}
	for _, s := range q.Stages {
		b.WriteString(" | ")
		b.WriteString(s.String())
	}
	return b.String()
}

// String implements Expr.
func (e *AndExpr) String() string {
	parts := make([]string, len(e.Terms))
	for i, t := range e.Terms {
		parts[i] = wrapExpr(t, true)
	}
	return strings.Join(parts, " ")
}

// String implements Expr.
func (e *OrExpr) String() string {
	parts := make([]string, len(e.Terms))
	for i, t := range e.Terms {
		_, isOr := t.(*OrExpr)
		parts[i] = wrapExpr(t, isOr)
	}
	return strings.Join(parts, " OR ")
}

// String implements Expr.
func (e *NotExpr) String() string { return "NOT " + wrapExpr(e.Term, true) }

// wrapExpr prints t, in parentheses when it is a compound expression that
// would otherwise bind differently in its context.
func wrapExpr(t Expr, parens bool) string {
	switch t.(type) {
	case *AndExpr, *OrExpr:
		if parens {
			return "(" + t.String() + ")"
		}
	}
	return t.String()
}

// String implements Expr.
func (e *CompareExpr) String() string {
	v := e.Value
	prefix := e.Field + ":"
	switch e.Op {
	case OpExists:
		return prefix + "*"
	case OpLt:
		return prefix + "<" + strconv.FormatInt(v.Int, 10)
	case OpLe:
		return prefix + "<=" + strconv.FormatInt(v.Int, 10)
	case OpGt:
		return prefix + ">" + strconv.FormatInt(v.Int, 10)
	case OpGe:
		return prefix + ">=" + strconv.FormatInt(v.Int, 10)
	case OpIn:
		if v.Prefix.IsSingleIP() {
			return prefix + v.Prefix.Addr().String()
		}
		return prefix + v.Prefix.String()
	}
	if v.Type == FieldNumber {
		return prefix + strconv.FormatInt(v.Int, 10)
	}
	lead := e.Op == OpSuffix || e.Op == OpContains
	trail := e.Op == OpPrefix || e.Op == OpContains
	return prefix + quoteQueryText(v.Text, lead, trail, false)
}

// String implements Expr.
func (e *TextExpr) String() string { return quoteQueryText(e.Text, false, false, true) }

// quoteQueryText prints a text operand bare when that is unambiguous and
// quoted otherwise, with the wildcards of its operator. freeText is set for
// bare terms, where a colon would read as a field and a keyword as an
// operator.
func quoteQueryText(s string, lead, trail, freeText bool) string {
	star := func(b bool) string {
		if b {
			return "*"
		}
		return ""
	}
	if queryBareSafe(s, freeText) {
		return star(lead) + s + star(trail)
	}
	var b strings.Builder
	b.WriteByte('"')
	b.WriteString(star(lead))
	for _, r := range s {
		if r == '"' || r == '\\' || r == '*' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteString(star(trail))
	b.WriteByte('"')
	return b.String()
}

// queryBareSafe reports whether s can be printed without quotes.
func queryBareSafe(s string, freeText bool) bool {
	if s == "" {
		return false
	}
	if freeText {
		switch strings.ToLower(s) {
		case "and", "or", "not":
			return false
		}
	}
	for i, r := range s {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
		case r == '_' || r == '.' || r == '@' || r == '/' || r == '+':
		case r == '-' && i > 0:
		case r == ':' && !freeText:
		default:
			return false
		}
	}
	return true
}

// String implements Stage.
func (s *StatsStage) String() string {
	var b strings.Builder
	b.WriteString("stats")
	for _, a := range s.Aggs {
		b.WriteByte(' ')
		b.WriteString(string(a.Func))
		b.WriteByte('(')
		b.WriteString(a.Field)
		b.WriteByte(')')
		if a.As != DefaultAggName(a.Func, a.Field) {
			b.WriteString(" as ")
			b.WriteString(a.As)
		}
	}
	for i, k := range s.By {
		if i == 0 {
			b.WriteString(" by ")
		} else {
			b.WriteString(", ")
		}
		if k.Bin > 0 {
			b.WriteString("bin(" + k.Field + ", " + FormatBinWidth(k.Bin) + ")")
		} else {
			b.WriteString(k.Field)
		}
	}
	return b.String()
}

// String implements Stage.
func (s *SortStage) String() string {
	parts := make([]string, len(s.Keys))
	for i, k := range s.Keys {
		if k.Desc {
			parts[i] = "-" + k.Name
		} else {
			parts[i] = k.Name
		}
	}
	return "sort " + strings.Join(parts, ", ")
}

// String implements Stage.
func (s *HeadStage) String() string { return "head " + strconv.Itoa(s.N) }

// String implements Stage.
func (s *FieldsStage) String() string { return "fields " + strings.Join(s.Names, ", ") }

// DefaultAggName is the output column of an aggregate without "as":
// "count" for count(), else the function and field joined by an underscore,
// with the field's dots replaced by underscores ("dc_actor_id").
func DefaultAggName(f AggFunc, field string) string {
	if field == "" {
		return string(f)
	}
	return string(f) + "_" + strings.ReplaceAll(field, ".", "_")
}

// FormatBinWidth prints a bucket width in the largest unit (w, d, h, m, s)
// that divides it exactly: 5m, 1h, 90s.
func FormatBinWidth(d time.Duration) string {
	for _, u := range []struct {
		unit string
		d    time.Duration
	}{{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if d >= u.d && d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.unit
		}
	}
	return d.String()
}

// formatQueryTime prints a time bound in RFC 3339 UTC with nanoseconds when
// they are non-zero.
func formatQueryTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
