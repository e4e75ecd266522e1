package query

import (
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vigilhq/vigil/internal/audit"
)

// unescapedIndex returns the byte index of the first c in raw that is not
// escaped by a backslash, or -1.
func unescapedIndex(raw string, c byte) int {
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '\\':
			i++
		case c:
			return i
		}
	}
	return -1
}

// decode resolves the escapes of a raw value written at offset pos and
// reports an unescaped '*' at its start (lead) and end (trail). A '*'
// anywhere else is an error, as is escaping a letter or digit (reserved) or
// a value over MaxValueBytes. With literal set every '*' is plain text.
func (p *parser) decode(raw string, pos int, literal bool) (text string, lead, trail bool, err error) {
	var b strings.Builder
	for j := 0; j < len(raw); {
		r, size := utf8.DecodeRuneInString(raw[j:])
		switch {
		case r == '\\':
			r2, size2 := utf8.DecodeRuneInString(raw[j+1:])
			if unicode.IsLetter(r2) || unicode.IsDigit(r2) {
				return "", false, false, errAt(p.src, pos+j, "unknown escape \\%c", r2)
			}
			b.WriteRune(r2)
			j += 1 + size2
			continue
		case r == '*' && literal:
			b.WriteRune(r)
		case r == '*' && j == 0:
			lead = true
		case r == '*' && j+size == len(raw):
			trail = true
		case r == '*':
			return "", false, false, errAtHint(p.src, pos+j, `write \* for a literal star`,
				"wildcard '*' is only allowed at the start or end of a value")
		default:
			b.WriteRune(r)
		}
		j += size
	}
	if b.Len() > MaxValueBytes {
		return "", false, false, errAt(p.src, pos, "value longer than %d bytes", MaxValueBytes)
	}
	return b.String(), lead, trail, nil
}

// comparison splits a leading comparison operator off a bare value.
func comparison(raw string) (op, rest string) {
	for _, o := range []string{">=", "<=", ">", "<", "="} {
		if r, ok := strings.CutPrefix(raw, o); ok {
			return o, r
		}
	}
	return "", raw
}

// textCompare builds a comparison on a text field.
func (p *parser) textCompare(f Field, raw string, pos int, quoted bool) (audit.Expr, error) {
	if op, _ := comparison(raw); op != "" && !quoted {
		return nil, errAtHint(p.src, pos, `quote the value to match it literally: `+f.Name+`:"`+clipText(raw)+`"`,
			"comparison %s is only for number and time fields, and %s is text", op, f.Name)
	}
	c := &audit.CompareExpr{Field: f.Name, Value: audit.QueryValue{Type: audit.FieldText}}
	if raw == "*" {
		c.Op = audit.OpExists
		return c, nil
	}
	text, lead, trail, err := p.decode(raw, pos, false)
	if err != nil {
		return nil, err
	}
	switch {
	case text == "" && (lead || trail):
		return nil, errAt(p.src, pos, "empty pattern for %s", f.Name)
	case text == "":
		return nil, errAtHint(p.src, pos, "use NOT "+f.Name+":* to find events without it", "empty value for %s", f.Name)
	case lead && trail:
		c.Op = audit.OpContains
	case lead:
		c.Op = audit.OpSuffix
	case trail:
		c.Op = audit.OpPrefix
	default:
		c.Op = audit.OpEq
	}
	switch f.Name {
	case "action":
		text = strings.ToLower(text)
		if c.Op == audit.OpEq && !audit.ValidAction(text) {
			return nil, errAtHint(p.src, pos, "actions are lowercase dot-separated segments like auth.login.failure; use auth.login.* for a prefix",
				"invalid action %q", clipText(text))
		}
	case "geo.country":
		text = strings.ToUpper(text)
		if c.Op == audit.OpEq && !isAlpha2(text) {
			return nil, errAtHint(p.src, pos, "use an ISO 3166-1 alpha-2 code like RU", "invalid country %q", clipText(text))
		}
	}
	if c.Op == audit.OpEq && f.Values != nil && !slices.Contains(f.Values, text) {
		return nil, errAt(p.src, pos, "%s must be one of %s, not %q", f.Name, strings.Join(f.Values, ", "), clipText(text))
	}
	c.Value.Text = text
	return c, nil
}

func isAlpha2(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

// numberCompare builds a comparison on a number field: n, =n, >n, >=n, <n,
// <=n or * (exists). Quoted values take no operator.
func (p *parser) numberCompare(f Field, raw string, pos int, quoted bool) (audit.Expr, error) {
	c := &audit.CompareExpr{Field: f.Name, Value: audit.QueryValue{Type: audit.FieldNumber}}
	if raw == "*" {
		c.Op = audit.OpExists
		return c, nil
	}
	op, rest := "", raw
	if !quoted {
		op, rest = comparison(raw)
	}
	text, lead, trail, err := p.decode(rest, pos+len(op), false)
	if err != nil {
		return nil, err
	}
	if lead || trail {
		return nil, errAtHint(p.src, pos, "use comparisons like "+f.Name+":>=100", "wildcards are not supported for number field %s", f.Name)
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return nil, errAt(p.src, pos+len(op), "%s takes an integer, not %q", f.Name, clipText(text))
	}
	if n < f.Min || n > f.Max {
		return nil, errAt(p.src, pos+len(op), "%s must be between %d and %d, not %d", f.Name, f.Min, f.Max, n)
	}
	c.Op = numberOp(op)
	c.Value.Int = n
	return c, nil
}

// numberOp maps a written comparison to its operator.
func numberOp(op string) audit.CompareOp {
	switch op {
	case ">":
		return audit.OpGt
	case ">=":
		return audit.OpGe
	case "<":
		return audit.OpLt
	case "<=":
		return audit.OpLe
	}
	return audit.OpEq
}

// ipCompare builds a comparison on the ip field: an address, a CIDR prefix
// or * (exists).
func (p *parser) ipCompare(f Field, raw string, pos int) (audit.Expr, error) {
	c := &audit.CompareExpr{Field: f.Name, Op: audit.OpIn, Value: audit.QueryValue{Type: audit.FieldIP}}
	if raw == "*" {
		c.Op = audit.OpExists
		return c, nil
	}
	text, lead, trail, err := p.decode(raw, pos, false)
	if err != nil {
		return nil, err
	}
	if lead || trail {
		return nil, errAtHint(p.src, pos, "use CIDR notation like 203.0.113.0/24", "wildcards are not supported for ip")
	}
	if !strings.Contains(text, "/") {
		a, err := netip.ParseAddr(text)
		if err != nil || a.Zone() != "" {
			return nil, errAtHint(p.src, pos, "write an address like 203.0.113.7 or a prefix like 203.0.113.0/24", "invalid IP address %q", clipText(text))
		}
		a = a.Unmap()
		c.Value.Prefix = netip.PrefixFrom(a, a.BitLen())
		return c, nil
	}
	pfx, err := netip.ParsePrefix(text)
	if err != nil {
		return nil, errAtHint(p.src, pos, "write a prefix like 203.0.113.0/24", "invalid CIDR prefix %q", clipText(text))
	}
	if a := pfx.Addr(); a.Is4In6() && pfx.Bits() >= 96 {
		pfx = netip.PrefixFrom(a.Unmap(), pfx.Bits()-96)
	}
	if m := pfx.Masked(); m != pfx {
		return nil, errAtHint(p.src, pos, "did you mean "+m.String()+"?", "CIDR prefix %s has host bits set", pfx)
	}
	c.Value.Prefix = pfx
	return c, nil
}

// timeBound parses a time bound (time:>=-24h) into a placeholder node that
// liftTime later removes from the tree.
func (p *parser) timeBound(raw string, pos, termPos int, quoted bool) (audit.Expr, error) {
	const hint = "write time:>=-24h, time:<now, time:>=2025-01-02 or time:<2025-01-02T15:04:05Z"
	op, rest := comparison(raw)
	if quoted || op == "" || op == "=" {
		return nil, errAtHint(p.src, pos, hint, "time needs a comparison: >, >=, < or <=")
	}
	t, err := parseTimeValue(rest, p.now)
	if err != nil {
		return nil, errAtHint(p.src, pos+len(op), hint, "invalid time %q", clipText(rest))
	}
	c := &audit.CompareExpr{Field: "time", Value: audit.QueryValue{Type: audit.FieldTime}}
	p.times[c] = timeTerm{op: op, t: t, pos: termPos}
	p.timePos = termPos
	return c, nil
}

// maxRelative bounds relative times, far beyond MaxRange but well inside
// time.Duration.
const maxRelative = 100 * 366 * 24 * time.Hour

// Times outside [minTime, maxTime) are rejected: no event can carry one
// (events before 2000 are refused at ingest), and keeping bounds well inside
// the years RFC 3339 can print is what lets every accepted query print back.
var (
	minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// errTimeRange is the cause of a time outside [minTime, maxTime).
var errTimeRange = errors.New("time out of range")

// parseTimeValue parses now, -<n><unit> (s, m, h, d, w), a date
// (2025-01-02, UTC midnight) or an RFC 3339 time, between the years 2000
// and 9000.
func parseTimeValue(s string, now time.Time) (time.Time, error) {
	t, err := parseTimeText(s, now)
	if err == nil && (t.Before(minTime) || !t.Before(maxTime)) {
		return time.Time{}, errTimeRange
	}
	return t, err
}

func parseTimeText(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	if rel, ok := strings.CutPrefix(s, "-"); ok {
		d, err := parseDuration(rel)
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(-d), nil
	}
	if len(s) == len("2006-01-02") {
		return time.Parse(time.DateOnly, s)
	}
	t, err := time.Parse(time.RFC3339, s)
	return t.UTC(), err
}

// errDuration is the cause of a malformed duration; callers put the
// position into the message.
var errDuration = errors.New("invalid duration")

// parseDuration parses <n><unit> with unit s, m, h, d (24h) or w (7d), up to
// maxRelative.
func parseDuration(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, errDuration
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 's':
		unit = time.Second
	case 'm':
		unit = time.Minute
	case 'h':
		unit = time.Hour
	case 'd':
		unit = 24 * time.Hour
	case 'w':
		unit = 7 * 24 * time.Hour
	default:
		return 0, errDuration
	}
	digits := s[:len(s)-1]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, errDuration
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > int64(maxRelative/unit) {
		return 0, errDuration
	}
	return time.Duration(n) * unit, nil
}
