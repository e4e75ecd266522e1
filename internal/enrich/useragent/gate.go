package useragent

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A rule is tried only when its gate passes. The gate is a conjunction of
// clauses, each a set of literals of which the input must contain one:
//
//   - the rule's original literal set (rule.lits), tested against
//     strings.ToLower(input) exactly as the sequential prefilter always did,
//     so the gate never admits or rejects differently from it; and
//   - extra clauses derived from the regex syntax tree, each a necessary
//     condition for the regex to match, tested against the fold-canonical
//     form of the input (foldString). A necessary condition can only skip
//     a regex that would not have matched, so results are unchanged.
//
// All literals of all rules go into one Aho–Corasick automaton; one pass
// over the input finds every literal it contains, and the posting lists of
// those literals mark which clauses of which rules are satisfied.

// maxClauses bounds the clauses of one rule (one bit each in a uint64).
const maxClauses = 16

// maxAltCombos bounds the clauses derived from one alternation.
const maxAltCombos = 16

// maxSet bounds the strings of a finite literal set while deriving
// clauses (cross products of adjacent small sets).
const maxSet = 64

// foldRune maps r to a representative of its simple case-folding orbit:
// the lowercase ASCII letter when the orbit has one (so 'K', 'k' and the
// Kelvin sign all map to 'k', and 'ſ' to 's'), else the smallest rune of
// the orbit. Any string a (?i) literal matches has the literal's fold
// form, and so does any exact occurrence of a case-sensitive literal.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}
	min := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < utf8.RuneSelf {
			return foldRune(f)
		}
		if f < min {
			min = f
		}
	}
	return min
}

// foldString maps every rune of s with foldRune. Invalid bytes become
// U+FFFD, as the regexp engine reads them.
func foldString(s string) string {
	return strings.Map(foldRune, s)
}

// isASCII reports whether s has only ASCII bytes.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// extraClauses derives clauses from expr's syntax tree: sets of
// fold-canonical literals one of which every match of expr contains.
func extraClauses(expr string) [][]string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	cl := clausesOf(re.Simplify())
	// Keep the most selective clauses.
	slices.SortStableFunc(cl, func(a, b []string) int {
		if keyBetter(a, b) {
			return -1
		}
		if keyBetter(b, a) {
			return 1
		}
		return 0
	})
	if len(cl) > maxClauses-1 {
		cl = cl[:maxClauses-1]
	}
	return cl
}

// clausesOf returns clauses every match of re satisfies.
func clausesOf(re *syntax.Regexp) [][]string {
	switch re.Op {
	case syntax.OpCapture, syntax.OpPlus:
		return clausesOf(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return clausesOf(re.Sub[0])
		}
		return nil
	case syntax.OpConcat:
		var out [][]string
		var run []string // exact set of the current run of finite subexpressions
		flush := func() {
			if clause := nonEmpty(run); clause != nil {
				out = append(out, clause)
			}
			run = nil
		}
		subs := flatten(re.Sub, nil)
		for k, s := range subs {
			if set, ok := exactSet(s); ok {
				if run == nil {
					run = set
				} else if p := product(run, set); p != nil {
					run = p
				} else {
					flush()
					run = set
				}
				continue
			}
			if s.Op == syntax.OpAlternate && (run != nil || k+1 < len(re.Sub)) {
				// Distribute the adjacent finite prefix and suffix over
				// the branches: W(?:IRE|ordPress) needs "wire" or
				// "wordpress", not just "ire" or "ordpress".
				if c := distribute(run, s, subs[k+1:]); c != nil {
					out = append(out, c)
				}
			}
			flush()
			out = append(out, clausesOf(s)...)
		}
		flush()
		return out
	case syntax.OpAlternate:
		// A match satisfies every clause of the branch it matches, so for
		// any choice of one clause per branch, the union of the chosen
		// clauses is a clause. Take every choice among the best few
		// clauses of each branch when there are not too many, else the
		// union of each branch's best clause.
		var per [][][]string
		combos := 1
		for _, s := range re.Sub {
			cl := clausesOf(s)
			if len(cl) == 0 {
				return exactClause(re)
			}
			slices.SortStableFunc(cl, func(a, b []string) int {
				if keyBetter(a, b) {
					return -1
				}
				if keyBetter(b, a) {
					return 1
				}
				return 0
			})
			if len(cl) > 3 {
				cl = cl[:3]
			}
			per = append(per, cl)
			combos *= len(cl)
		}
		if combos > maxAltCombos {
			for i := range per {
				per[i] = per[i][:1]
			}
		}
		out := [][]string{nil}
		for _, cl := range per {
			var next [][]string
			for _, acc := range out {
				for _, c := range cl {
					next = append(next, append(slices.Clone(acc), c...))
				}
			}
			out = next
		}
		for i := range out {
			out[i] = dedup(out[i])
		}
		return out
	}
	return exactClause(re)
}

// flatten appends subs to out with nested concatenations (also inside
// captures, which do not change the text matched) spliced in.
func flatten(subs []*syntax.Regexp, out []*syntax.Regexp) []*syntax.Regexp {
	for _, s := range subs {
		for s.Op == syntax.OpCapture && s.Sub[0].Op == syntax.OpConcat {
			s = s.Sub[0]
		}
		if s.Op == syntax.OpConcat {
			out = flatten(s.Sub, out)
			continue
		}
		out = append(out, s)
	}
	return out
}

// distribute returns one clause for prefix·alt·rest: the union over the
// branches b of alt of the best clause of prefix·b·suffix, where prefix is
// a finite set and suffix the finite subexpressions at the start of rest.
// It returns nil when some branch yields no clause.
func distribute(prefix []string, alt *syntax.Regexp, rest []*syntax.Regexp) []string {
	var pre, suf []*syntax.Regexp
	if prefix != nil {
		pre = []*syntax.Regexp{setNode(prefix)}
	}
	for _, s := range rest {
		if _, ok := exactSet(s); !ok {
			break
		}
		suf = append(suf, s)
	}
	var union []string
	for _, b := range alt.Sub {
		subs := append(append(append([]*syntax.Regexp(nil), pre...), b), suf...)
		best := bestClause(clausesOf(&syntax.Regexp{Op: syntax.OpConcat, Sub: subs}))
		if best == nil {
			return nil
		}
		union = append(union, best...)
	}
	return dedup(union)
}

// setNode returns a regexp matching exactly the strings of set.
func setNode(set []string) *syntax.Regexp {
	alt := &syntax.Regexp{Op: syntax.OpAlternate}
	for _, s := range set {
		if s == "" {
			alt.Sub = append(alt.Sub, &syntax.Regexp{Op: syntax.OpEmptyMatch})
			continue
		}
		alt.Sub = append(alt.Sub, &syntax.Regexp{Op: syntax.OpLiteral, Rune: []rune(s)})
	}
	if len(alt.Sub) == 1 {
		return alt.Sub[0]
	}
	return alt
}

// exactClause returns re's exact set as a clause when it is finite and
// has no empty string.
func exactClause(re *syntax.Regexp) [][]string {
	if set, ok := exactSet(re); ok {
		if c := nonEmpty(set); c != nil {
			return [][]string{c}
		}
	}
	return nil
}

// bestClause picks the clause keyBetter ranks first.
func bestClause(cl [][]string) []string {
	var best []string
	for _, c := range cl {
		if best == nil || keyBetter(c, best) {
			best = c
		}
	}
	return best
}

// nonEmpty returns set when none of its strings is empty, else nil (a
// clause with the empty string is always true).
func nonEmpty(set []string) []string {
	if len(set) == 0 {
		return nil
	}
	for _, s := range set {
		if s == "" {
			return nil
		}
	}
	return set
}

// exactSet returns the finite set of fold-canonical strings re matches,
// when it is small; zero-width assertions count as the empty string (they
// only restrict where the strings occur).
func exactSet(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		return []string{foldString(string(re.Rune))}, true
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return []string{""}, true
	case syntax.OpCharClass:
		n := 0
		for i := 0; i+1 < len(re.Rune); i += 2 {
			n += int(re.Rune[i+1]-re.Rune[i]) + 1
		}
		if n > 4*maxSet {
			return nil, false
		}
		var set []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			if re.Rune[i+1]-re.Rune[i] >= maxSet {
				return nil, false
			}
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				set = append(set, string(foldRune(r)))
				if len(set) > 4*maxSet {
					return nil, false
				}
			}
		}
		set = dedup(set)
		return set, len(set) <= maxSet
	case syntax.OpCapture:
		return exactSet(re.Sub[0])
	case syntax.OpQuest:
		set, ok := exactSet(re.Sub[0])
		if !ok {
			return nil, false
		}
		return dedup(append(set, "")), true
	case syntax.OpRepeat:
		if re.Max != re.Min || re.Min > 4 {
			return nil, false
		}
		set, ok := exactSet(re.Sub[0])
		if !ok {
			return nil, false
		}
		out := []string{""}
		for range re.Min {
			if out = product(out, set); out == nil {
				return nil, false
			}
		}
		return out, true
	case syntax.OpConcat:
		out := []string{""}
		for _, s := range re.Sub {
			set, ok := exactSet(s)
			if !ok {
				return nil, false
			}
			if out = product(out, set); out == nil {
				return nil, false
			}
		}
		return out, true
	case syntax.OpAlternate:
		var out []string
		for _, s := range re.Sub {
			set, ok := exactSet(s)
			if !ok {
				return nil, false
			}
			out = append(out, set...)
		}
		out = dedup(out)
		return out, len(out) <= maxSet
	}
	return nil, false
}

// product returns every a+b, or nil when there would be more than maxSet.
func product(a, b []string) []string {
	if len(a)*len(b) > maxSet {
		return nil
	}
	out := make([]string, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			out = append(out, x+y)
		}
	}
	return dedup(out)
}

func dedup(set []string) []string {
	slices.Sort(set)
	return slices.Compact(set)
}

// clause is one clause of a gate: literal ids, matched against the
// lowercased input (old) or its fold form (new).
type clause struct {
	lits []int32
	old  bool
}

// typicalUAs are common browser user agents. They only steer which clause
// of a rule is its key (the one whose literals are indexed): a clause that
// typical traffic satisfies is a poor key. Correctness does not depend on
// them.
var typicalUAs = [...]string{
	"mozilla/5.0 (windows nt 10.0; win64; x64) applewebkit/537.36 (khtml, like gecko) chrome/126.0.0.0 safari/537.36 edg/126.0.0.0",
	"mozilla/5.0 (macintosh; intel mac os x 10_15_7) applewebkit/605.1.15 (khtml, like gecko) version/17.5 safari/605.1.15",
	"mozilla/5.0 (iphone; cpu iphone os 17_5 like mac os x) applewebkit/605.1.15 (khtml, like gecko) version/17.5 mobile/15e148 safari/604.1",
	"mozilla/5.0 (linux; android 14; sm-s918b build/up1a.231005.007) applewebkit/537.36 (khtml, like gecko) chrome/126.0.0.0 mobile safari/537.36",
	"mozilla/5.0 (x11; linux x86_64; rv:127.0) gecko/20100101 firefox/127.0",
	"mozilla/5.0 (ipad; cpu os 16_6 like mac os x) applewebkit/605.1.15 (khtml, like gecko) crios/126.0.6478.54 mobile/15e148 safari/604.1",
}

// gates holds the literals of every rule's gate and the automaton that
// finds them. Each rule has a key clause whose literals are indexed: a
// rule becomes a candidate when one of them occurs. Its other clauses are
// then checked against the set of literals found.
type gates struct {
	ac *acMatcher
	// keyOld and keyNew list, per literal, the rules whose key clause it
	// is in, as an old-namespace or new-namespace literal.
	keyOld, keyNew [][]int32
	// rest holds each rule's non-key clauses.
	rest [][]clause
	// always lists the rules without clauses.
	always []int32
	nrules int
}

// buildGates derives the gates of rules, numbered in order.
func buildGates(rules []*rule, exprs []string) *gates {
	g := &gates{nrules: len(rules), rest: make([][]clause, len(rules))}
	ids := map[string]int32{}
	var pats []string
	id := func(l string) int32 {
		if i, ok := ids[l]; ok {
			return i
		}
		i := int32(len(pats))
		ids[l] = i
		pats = append(pats, l)
		g.keyOld = append(g.keyOld, nil)
		g.keyNew = append(g.keyNew, nil)
		return i
	}
	for ri, r := range rules {
		var cls []clause
		var strs [][]string
		if r.lits != nil {
			strs = append(strs, dedup(slices.Clone(r.lits)))
			cls = append(cls, clause{old: true})
		}
		for _, c := range extraClauses(exprs[ri]) {
			strs = append(strs, c)
			cls = append(cls, clause{})
		}
		if len(cls) == 0 {
			g.always = append(g.always, int32(ri))
			continue
		}
		key := 0
		for k := range strs {
			if keyBetter(strs[k], strs[key]) {
				key = k
			}
		}
		for k, c := range strs {
			for _, l := range c {
				i := id(l)
				cls[k].lits = append(cls[k].lits, i)
				if k == key {
					if cls[k].old {
						g.keyOld[i] = append(g.keyOld[i], int32(ri))
					} else {
						g.keyNew[i] = append(g.keyNew[i], int32(ri))
					}
				}
			}
		}
		g.rest[ri] = append(cls[:key:key], cls[key+1:]...)
	}
	for ri, r := range rules {
		r.win = windowOf(exprs[ri], id)
	}
	g.ac = newACMatcher(pats)
	return g
}

// keyBetter reports whether clause a is a better key than b: fewer
// typical user agents satisfy it, then its shortest literal is longer,
// then it has fewer literals.
func keyBetter(a, b []string) bool {
	ta, tb := typicalHits(a), typicalHits(b)
	if ta != tb {
		return ta < tb
	}
	if ma, mb := minLen(a), minLen(b); ma != mb {
		return ma > mb
	}
	return len(a) < len(b)
}

func typicalHits(c []string) int {
	n := 0
	for _, ua := range typicalUAs {
		for _, l := range c {
			if strings.Contains(ua, l) {
				n++
				break
			}
		}
	}
	return n
}

// gateScratch is the per-parse state of gate evaluation.
type gateScratch struct {
	seenOld []uint64 // literals found, per namespace
	seenNew []uint64
	// firstEnd is where the first occurrence of each literal found ends
	// (ASCII input only; valid where seenNew is set).
	firstEnd []int32
	ascii    bool
	cand     []uint64 // rules whose key clause is satisfied
}

func (g *gates) newScratch() *gateScratch {
	w := (g.ac.patterns + 63) / 64
	return &gateScratch{
		seenOld: make([]uint64, w), seenNew: make([]uint64, w), firstEnd: make([]int32, g.ac.patterns),
		cand: make([]uint64, (g.nrules+63)/64),
	}
}

// eval finds the literals s contains and sets sc.cand to the rules whose
// key clause they satisfy; pass then checks a candidate's other clauses.
func (g *gates) eval(sc *gateScratch, s string) {
	clear(sc.seenOld)
	clear(sc.seenNew)
	clear(sc.cand)
	for _, r := range g.always {
		sc.cand[r/64] |= 1 << (r % 64)
	}
	sc.ascii = isASCII(s)
	if sc.ascii {
		// strings.ToLower(s) == foldString(s) == s with ASCII
		// uppercase lowered, which is how the automaton reads s: one
		// pass for both.
		g.ac.scan(s, func(pat int32, end int) {
			w, b := pat/64, uint64(1)<<(pat%64)
			if sc.seenOld[w]&b != 0 {
				return
			}
			sc.seenOld[w] |= b
			sc.seenNew[w] |= b
			sc.firstEnd[pat] = int32(end)
			for _, r := range g.keyOld[pat] {
				sc.cand[r/64] |= 1 << (r % 64)
			}
			for _, r := range g.keyNew[pat] {
				sc.cand[r/64] |= 1 << (r % 64)
			}
		})
		return
	}
	g.ac.scan(strings.ToLower(s), func(pat int32, _ int) {
		w, b := pat/64, uint64(1)<<(pat%64)
		if sc.seenOld[w]&b == 0 {
			sc.seenOld[w] |= b
			for _, r := range g.keyOld[pat] {
				sc.cand[r/64] |= 1 << (r % 64)
			}
		}
	})
	g.ac.scan(foldString(s), func(pat int32, _ int) {
		w, b := pat/64, uint64(1)<<(pat%64)
		if sc.seenNew[w]&b == 0 {
			sc.seenNew[w] |= b
			for _, r := range g.keyNew[pat] {
				sc.cand[r/64] |= 1 << (r % 64)
			}
		}
	})
}

// pass reports whether candidate rule r satisfies its non-key clauses.
func (g *gates) pass(sc *gateScratch, r int) bool {
	for _, c := range g.rest[r] {
		seen := sc.seenNew
		if c.old {
			seen = sc.seenOld
		}
		ok := false
		for _, l := range c.lits {
			if seen[l/64]&(1<<(l%64)) != 0 {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
