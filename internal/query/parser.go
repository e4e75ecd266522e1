package query

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigilhq/vigil/internal/audit"
)

// Parse parses and validates a query. now resolves relative times ("-24h",
// "now"); it is truncated to the second so that the plan prints readably.
// A query without a lower time bound covers DefaultRange before its upper
// bound, and one without an upper bound ends audit.MaxFutureSkew after now
// (events may be stamped slightly in the future).
//
// Errors are *audit.Error with code audit.EINVALID whose message names the
// 1-based column (and the line, for multi-line sources) of the problem.
func Parse(src string, now time.Time) (*audit.Query, error) {
	if len(src) > MaxSourceBytes {
		return nil, errAt(src, MaxSourceBytes, "query exceeds the limit of %d bytes", MaxSourceBytes)
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks, now: now.UTC().Truncate(time.Second), times: map[*audit.CompareExpr]timeTerm{}}
	return p.parseQuery()
}

// parser is the state of one Parse call.
type parser struct {
	src   string
	toks  []token
	i     int
	now   time.Time
	depth int // current nesting of parentheses and NOT in the source
	terms int // comparisons and free-text terms so far
	// times holds the time bounds found in the filter, keyed by the
	// placeholder node that stands for each until they are lifted out.
	times map[*audit.CompareExpr]timeTerm
	// timePos is the offset of the last time bound, for range errors.
	timePos int
}

// timeTerm is one time bound as written: op is one of > >= < <=.
type timeTerm struct {
	op  string
	t   time.Time
	pos int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

// isKeyword reports whether the next token is the bare word kw, in any case.
func (p *parser) isKeyword(kw string) bool {
	t := p.peek()
	return t.kind == tWord && strings.EqualFold(t.raw, kw)
}

// startsTerm reports whether the next token can begin a filter term.
func (p *parser) startsTerm() bool {
	switch t := p.peek(); t.kind {
	case tString, tLParen, tMinus:
		return true
	case tWord:
		return !strings.EqualFold(t.raw, "and") && !strings.EqualFold(t.raw, "or")
	}
	return false
}

func (p *parser) parseQuery() (*audit.Query, error) {
	q := &audit.Query{}
	var filter audit.Expr
	if k := p.peek().kind; k != tPipe && k != tEOF {
		var err error
		if filter, err = p.parseOr(); err != nil {
			return nil, err
		}
		if k := p.peek().kind; k != tPipe && k != tEOF {
			return nil, p.unexpected(p.peek(), "")
		}
	}
	if err := p.liftTime(q, filter); err != nil {
		return nil, err
	}
	if q.Filter != nil && treeDepth(q.Filter) > MaxDepth {
		return nil, errAtHint(p.src, 0, "simplify the AND/OR/NOT structure",
			"filter is nested deeper than %d levels", MaxDepth)
	}
	if err := p.parseStages(q); err != nil {
		return nil, err
	}
	return q, nil
}

// parseOr parses: and { OR and }.
func (p *parser) parseOr() (audit.Expr, error) {
	first, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	terms := []audit.Expr{first}
	for p.isKeyword("or") {
		p.next()
		if !p.startsTerm() {
			return nil, p.unexpected(p.peek(), "a term after OR")
		}
		t, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		terms = append(terms, t)
	}
	return flatten(terms, false), nil
}

// parseAnd parses: unary { [AND] unary }; juxtaposition means AND.
func (p *parser) parseAnd() (audit.Expr, error) {
	first, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	terms := []audit.Expr{first}
	for {
		if p.isKeyword("and") {
			p.next()
			if !p.startsTerm() {
				return nil, p.unexpected(p.peek(), "a term after AND")
			}
		} else if !p.startsTerm() {
			break
		}
		t, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		terms = append(terms, t)
	}
	return flatten(terms, true), nil
}

// parseUnary parses: (NOT | "-") unary | primary.
func (p *parser) parseUnary() (audit.Expr, error) {
	if !p.isKeyword("not") && p.peek().kind != tMinus {
		return p.parsePrimary()
	}
	op := p.next()
	if op.kind == tMinus && p.peek().pos != op.end {
		return nil, errAt(p.src, op.pos, "'-' must be followed directly by the term it negates")
	}
	if err := p.enter(op.pos); err != nil {
		return nil, err
	}
	if !p.startsTerm() {
		return nil, p.unexpected(p.peek(), "a term after "+strings.ToUpper(op.raw))
	}
	t, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	p.depth--
	return &audit.NotExpr{Term: t}, nil
}

// enter counts one level of nesting and enforces MaxNesting, so that deeply
// nested input is rejected before it can exhaust the stack.
func (p *parser) enter(pos int) error {
	p.depth++
	if p.depth > MaxNesting {
		return errAt(p.src, pos, "query nests parentheses and NOT deeper than %d levels", MaxNesting)
	}
	return nil
}

// treeDepth is the most AND, OR and NOT nodes on a path from e to a leaf.
func treeDepth(e audit.Expr) int {
	switch n := e.(type) {
	case *audit.NotExpr:
		return 1 + treeDepth(n.Term)
	case *audit.AndExpr:
		return 1 + maxDepth(n.Terms)
	case *audit.OrExpr:
		return 1 + maxDepth(n.Terms)
	}
	return 0
}

func maxDepth(terms []audit.Expr) int {
	d := 0
	for _, t := range terms {
		d = max(d, treeDepth(t))
	}
	return d
}

// parsePrimary parses: "(" or ")" | term.
func (p *parser) parsePrimary() (audit.Expr, error) {
	t := p.peek()
	switch t.kind {
	case tLParen:
		p.next()
		if err := p.enter(t.pos); err != nil {
			return nil, err
		}
		if p.peek().kind == tRParen {
			return nil, errAt(p.src, t.pos, "empty parentheses")
		}
		if !p.startsTerm() {
			return nil, p.unexpected(p.peek(), "a term after '('")
		}
		e, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if p.peek().kind != tRParen {
			return nil, p.unexpected(p.peek(), fmt.Sprintf("')' to close the '(' at %s", position(p.src, t.pos)))
		}
		p.next()
		p.depth--
		return e, nil
	case tWord:
		return p.parseWordTerm()
	case tString:
		p.next()
		return p.freeText(t.raw, t.pos+1, true)
	}
	return nil, p.unexpected(t, "a term")
}

// countTerm enforces MaxTerms.
func (p *parser) countTerm(pos int) error {
	p.terms++
	if p.terms > MaxTerms {
		return errAt(p.src, pos, "query has more than %d terms", MaxTerms)
	}
	return nil
}

// parseWordTerm parses a bare word: field:value, field:"quoted value", or
// free text.
func (p *parser) parseWordTerm() (audit.Expr, error) {
	t := p.next()
	colon := unescapedIndex(t.raw, ':')
	if colon < 0 {
		return p.freeText(t.raw, t.pos, false)
	}
	name, raw := t.raw[:colon], t.raw[colon+1:]
	valuePos, quoted := t.pos+colon+1, false
	if name == "" {
		return nil, errAt(p.src, t.pos, "missing field name before ':'")
	}
	f, err := p.lookupField(name, t.pos)
	if err != nil {
		return nil, err
	}
	if f.Type != audit.FieldTime { // time bounds are lifted out of the tree
		if err := p.countTerm(t.pos); err != nil {
			return nil, err
		}
	}
	if raw == "" {
		s := p.peek()
		if s.kind != tString || s.pos != t.end {
			return nil, errAt(p.src, t.end, "missing value after %q", t.raw)
		}
		p.next()
		raw, valuePos, quoted = s.raw, s.pos+1, true
	}
	switch f.Type {
	case audit.FieldTime:
		return p.timeBound(raw, valuePos, t.pos, quoted)
	case audit.FieldNumber:
		return p.numberCompare(f, raw, valuePos, quoted)
	case audit.FieldIP:
		return p.ipCompare(f, raw, valuePos)
	}
	return p.textCompare(f, raw, valuePos, quoted)
}

// lookupField resolves a field name written at pos.
func (p *parser) lookupField(name string, pos int) (Field, error) {
	if f, ok := LookupField(name); ok {
		return f, nil
	}
	switch {
	case name == "metadata" || name == "metadata.":
		return Field{}, errAtHint(p.src, pos, "write metadata.<key>, e.g. metadata.factor", "metadata needs a key")
	case strings.HasPrefix(name, MetadataPrefix):
		return Field{}, errAtHint(p.src, pos, "keys are letters, digits, '_', '-' and '.', at most 128 bytes",
			"invalid metadata key %q", clipText(strings.TrimPrefix(name, MetadataPrefix)))
	}
	if s := suggestField(name); s != "" {
		return Field{}, errAtHint(p.src, pos, "did you mean "+s+"?", "unknown field %q", clipText(name))
	}
	return Field{}, errAtHint(p.src, pos, "see the field list in docs/query-language.md", "unknown field %q", clipText(name))
}

// freeText makes a free-text term from a bare word or quoted string. Free
// text has no wildcards: a star in a quoted string is literal, and in a bare
// word it is an error, because it would look like a wildcard that is not.
func (p *parser) freeText(raw string, pos int, quoted bool) (audit.Expr, error) {
	if err := p.countTerm(pos); err != nil {
		return nil, err
	}
	text, lead, trail, err := p.decode(raw, pos, quoted)
	if err != nil {
		return nil, err
	}
	if lead || trail {
		return nil, errAtHint(p.src, pos, `free text already matches substrings; write \* for a literal star`,
			"wildcards are not supported in free text")
	}
	if text == "" {
		return nil, errAt(p.src, pos, "empty free-text term")
	}
	return &audit.TextExpr{Text: text}, nil
}

// flatten combines terms with AND (and=true) or OR, splicing nested nodes of
// the same kind so that equivalent sources give equal plans.
func flatten(terms []audit.Expr, and bool) audit.Expr {
	if len(terms) == 1 {
		return terms[0]
	}
	var out []audit.Expr
	for _, t := range terms {
		switch n := t.(type) {
		case *audit.AndExpr:
			if and {
				out = append(out, n.Terms...)
				continue
			}
		case *audit.OrExpr:
			if !and {
				out = append(out, n.Terms...)
				continue
			}
		}
		out = append(out, t)
	}
	if and {
		return &audit.AndExpr{Terms: out}
	}
	return &audit.OrExpr{Terms: out}
}

// liftTime moves the top-level time bounds of filter into q.Since and
// q.Until, applies the defaults and checks the range.
func (p *parser) liftTime(q *audit.Query, filter audit.Expr) error {
	var terms []audit.Expr
	if a, ok := filter.(*audit.AndExpr); ok {
		terms = a.Terms
	} else if filter != nil {
		terms = []audit.Expr{filter}
	}
	var keep []audit.Expr
	var since, until time.Time
	for _, t := range terms {
		c, ok := t.(*audit.CompareExpr)
		if !ok || c.Field != "time" {
			keep = append(keep, t)
			continue
		}
		b := p.times[c]
		switch b.op {
		case ">=", ">":
			s := b.t
			if b.op == ">" {
				s = s.Add(time.Nanosecond)
			}
			if since.IsZero() || s.After(since) {
				since = s
			}
		default:
			u := b.t
			if b.op == "<=" {
				u = u.Add(time.Nanosecond)
			}
			if until.IsZero() || u.Before(until) {
				until = u
			}
		}
	}
	for _, t := range keep {
		if pos, ok := p.nestedTime(t); ok {
			return errAtHint(p.src, pos, "time bounds apply to the whole query",
				"time can only be compared at the top level, not inside OR or NOT")
		}
	}
	switch len(keep) {
	case 0:
	case 1:
		q.Filter = keep[0]
	default:
		q.Filter = &audit.AndExpr{Terms: keep}
	}
	if since.IsZero() {
		if until.IsZero() {
			since = p.now.Add(-DefaultRange)
		} else {
			since = until.Add(-DefaultRange)
		}
		if since.Before(minTime) {
			since = minTime // a derived bound obeys the same floor as a written one
		}
	}
	if until.IsZero() {
		until = p.now.Add(audit.MaxFutureSkew)
	}
	q.Since, q.Until = since, until
	if !since.Before(until) {
		return errAt(p.src, p.timePos, "empty time range: %s is not before %s",
			since.Format(time.RFC3339Nano), until.Format(time.RFC3339Nano))
	}
	if until.Sub(since) > MaxRange {
		return errAtHint(p.src, p.timePos, "narrow it with time:>= and time:<",
			"time range of %s exceeds the limit of %d days", roundDays(until.Sub(since)), MaxRange/(24*time.Hour))
	}
	return nil
}

// nestedTime finds a time bound left inside e and returns its offset.
func (p *parser) nestedTime(e audit.Expr) (int, bool) {
	switch n := e.(type) {
	case *audit.CompareExpr:
		if n.Field == "time" {
			return p.times[n].pos, true
		}
	case *audit.NotExpr:
		return p.nestedTime(n.Term)
	case *audit.AndExpr:
		for _, t := range n.Terms {
			if pos, ok := p.nestedTime(t); ok {
				return pos, true
			}
		}
	case *audit.OrExpr:
		for _, t := range n.Terms {
			if pos, ok := p.nestedTime(t); ok {
				return pos, true
			}
		}
	}
	return 0, false
}

func roundDays(d time.Duration) string {
	return fmt.Sprintf("%.1f days", d.Hours()/24)
}

// unexpected reports token t where something else was expected.
func (p *parser) unexpected(t token, expected string) error {
	if expected == "" {
		return errAt(p.src, t.pos, "unexpected %s", t.describe())
	}
	return errAtHint(p.src, t.pos, "expected "+expected, "unexpected %s", t.describe())
}

// errAt returns an EINVALID error whose message ends with the position of
// byte offset off in src.
func errAt(src string, off int, format string, args ...any) *audit.Error {
	return &audit.Error{Code: audit.EINVALID, Message: fmt.Sprintf(format, args...) + " at " + position(src, off)}
}

// errAtHint is errAt followed by a parenthesised hint.
func errAtHint(src string, off int, hint, format string, args ...any) *audit.Error {
	e := errAt(src, off, format, args...)
	e.Message += " (" + hint + ")"
	return e
}

// position describes byte offset off as "column C", or "line L, column C"
// when src has several lines. Columns count characters, from 1.
func position(src string, off int) string {
	off = min(max(off, 0), len(src))
	before := src[:off]
	line := strings.Count(before, "\n") + 1
	if i := strings.LastIndexByte(before, '\n'); i >= 0 {
		before = before[i+1:]
	}
	col := utf8.RuneCountInString(before) + 1
	if strings.Contains(src, "\n") {
		return fmt.Sprintf("line %d, column %d", line, col)
	}
	return fmt.Sprintf("column %d", col)
}

// clipText shortens s for an error message.
func clipText(s string) string {
	if utf8.RuneCountInString(s) <= 40 {
		return s
	}
	r := []rune(s)
	return string(r[:40]) + "…"
}
