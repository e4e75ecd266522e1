package useragent

import (
	"regexp"
	"regexp/syntax"
	"unicode/utf8"
)

// Two rewrites run a regex on part of the input without changing what it
// finds:
//
//   - End cut: when every match starts at the beginning of the input (the
//     regex begins with ^) and is at most n runes long, the regex runs on
//     the first n+1 runes. A match ending at or before rune n sees the
//     same runes, the same word boundaries and the same (false) end of
//     text as in the whole input.
//   - Start skip: when every match starting at p contains, within d bytes
//     of p, one of a set of literals (a start clause), no match starts
//     before p0 = min(first occurrence of a literal - its d). The regex
//     then runs on input[p0:], with p0 moved back to just after a
//     non-word byte so that \b and \B at p0 read the same as in the
//     whole input, and with ^ replaced by a never-matching class (tail),
//     since p0 > 0 is not the beginning of the input. A branch that
//     starts with ^ only moves p0 to 0 when its literal occurs within d
//     bytes of the start. Used for ASCII input only, where the
//     automaton's positions are input positions.

// maxRunes returns the most runes a match of re consumes, or -1 when
// unbounded.
func maxRunes(re *syntax.Regexp) int {
	const inf = -1
	add := func(a, b int) int {
		if a < 0 || b < 0 {
			return inf
		}
		return a + b
	}
	switch re.Op {
	case syntax.OpNoMatch, syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return 0
	case syntax.OpLiteral:
		return len(re.Rune)
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return 1
	case syntax.OpCapture, syntax.OpQuest:
		return maxRunes(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus:
		return inf
	case syntax.OpRepeat:
		w := maxRunes(re.Sub[0])
		if re.Max < 0 || w < 0 {
			return inf
		}
		return w * re.Max
	case syntax.OpConcat:
		n := 0
		for _, s := range re.Sub {
			n = add(n, maxRunes(s))
		}
		return n
	case syntax.OpAlternate:
		n := 0
		for _, s := range re.Sub {
			w := maxRunes(s)
			if w < 0 {
				return inf
			}
			n = max(n, w)
		}
		return n
	}
	return inf
}

// maxBytes returns the most input bytes a match of re consumes, or -1.
// A rune is at most utf8.UTFMax bytes.
func maxBytes(re *syntax.Regexp) int {
	if re.Op == syntax.OpLiteral {
		n := 0
		for _, r := range re.Rune {
			n += max(utf8.RuneLen(r), 1)
		}
		return n
	}
	switch re.Op {
	case syntax.OpCapture, syntax.OpQuest:
		return maxBytes(re.Sub[0])
	case syntax.OpRepeat:
		w := maxBytes(re.Sub[0])
		if re.Max < 0 || w < 0 {
			return -1
		}
		return w * re.Max
	case syntax.OpConcat:
		n := 0
		for _, s := range re.Sub {
			w := maxBytes(s)
			if w < 0 {
				return -1
			}
			n += w
		}
		return n
	case syntax.OpAlternate:
		n := 0
		for _, s := range re.Sub {
			w := maxBytes(s)
			if w < 0 {
				return -1
			}
			n = max(n, w)
		}
		return n
	}
	w := maxRunes(re)
	if w < 0 {
		return -1
	}
	return w * utf8.UTFMax
}

// anchoredStart reports whether every match of re starts at the beginning
// of the input.
func anchoredStart(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpBeginText:
		return true
	case syntax.OpCapture:
		return anchoredStart(re.Sub[0])
	case syntax.OpConcat:
		return len(re.Sub) > 0 && anchoredStart(re.Sub[0])
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if !anchoredStart(s) {
				return false
			}
		}
		return len(re.Sub) > 0
	}
	return false
}

// startLit is a literal of a start clause: some literal of the clause
// occurs within dist bytes after the start of every match.
type startLit struct {
	lit  string
	dist int
	// anchored: the match starts at the beginning of the input.
	anchored bool
}

// startClause returns a start clause of re, or nil.
func startClause(re *syntax.Regexp) []startLit {
	switch re.Op {
	case syntax.OpLiteral:
		return []startLit{{foldString(string(re.Rune)), 0, false}}
	case syntax.OpCapture, syntax.OpPlus:
		return startClause(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return startClause(re.Sub[0])
		}
		return nil
	case syntax.OpAlternate:
		var out []startLit
		for _, s := range re.Sub {
			c := startClause(s)
			if c == nil {
				return nil
			}
			out = append(out, c...)
		}
		return out
	case syntax.OpConcat:
		var best []startLit
		w := 0 // most bytes the subexpressions before i consume
		subs := flatten(re.Sub, nil)
		runStart, runW := -1, 0 // first index and offset of the current run of finite subexpressions
		for i, s := range subs {
			cand := startClause(s)
			if _, ok := exactSet(s); ok {
				if runStart < 0 {
					runStart, runW = i, w
				}
			} else {
				if s.Op == syntax.OpAlternate && runStart >= 0 {
					// Distribute the finite run before the alternation
					// over its branches: W(?:IRE|ordPress) starts with
					// "wire" or "wordpress", not just "ire" or "ordpress".
					var dist []startLit
					for _, b := range s.Sub {
						sub := append(append([]*syntax.Regexp(nil), subs[runStart:i]...), b)
						c := startClause(&syntax.Regexp{Op: syntax.OpConcat, Sub: sub})
						if c == nil {
							dist = nil
							break
						}
						dist = append(dist, c...)
					}
					if dist != nil {
						for k := range dist {
							dist[k].dist += runW
						}
						if startBetter(dist, best) {
							best = dist
						}
					}
				}
				runStart = -1
			}
			// Adjacent finite sets make longer literals at the same
			// distance.
			if set, ok := exactSet(s); ok {
				for j := i + 1; j < len(subs); j++ {
					next, ok := exactSet(subs[j])
					if !ok {
						break
					}
					p := product(set, next)
					if p == nil {
						break
					}
					set = p
				}
				if nonEmpty(set) != nil {
					cand = nil
					for _, l := range set {
						cand = append(cand, startLit{l, 0, false})
					}
				}
			}
			if cand != nil {
				for k := range cand {
					cand[k].dist += w
				}
				if startBetter(cand, best) {
					best = cand
				}
			}
			b := maxBytes(s)
			if b < 0 {
				break
			}
			w += b
		}
		if len(subs) > 0 && subs[0].Op == syntax.OpBeginText {
			for k := range best {
				best[k].anchored = true
			}
		}
		return best
	}
	return nil
}

// startBetter prefers longer shortest literals, then shorter distances.
func startBetter(a, b []startLit) bool {
	if b == nil {
		return true
	}
	ma, mb, da, db := -1, -1, 0, 0
	for _, l := range a {
		if ma < 0 || len(l.lit) < ma {
			ma = len(l.lit)
		}
		da = max(da, l.dist)
	}
	for _, l := range b {
		if mb < 0 || len(l.lit) < mb {
			mb = len(l.lit)
		}
		db = max(db, l.dist)
	}
	if ma != mb {
		return ma > mb
	}
	return da < db
}

// hasOp reports whether re contains an op.
func hasOp(re *syntax.Regexp, op syntax.Op) bool {
	if re.Op == op {
		return true
	}
	for _, s := range re.Sub {
		if hasOp(s, op) {
			return true
		}
	}
	return false
}

// noBeginText returns a copy of re with ^ (begin of text) replaced by a
// class that matches nothing.
func noBeginText(re *syntax.Regexp) *syntax.Regexp {
	c := *re
	if c.Op == syntax.OpBeginText {
		return &syntax.Regexp{Op: syntax.OpNoMatch}
	}
	c.Sub = nil
	for _, s := range re.Sub {
		c.Sub = append(c.Sub, noBeginText(s))
	}
	return &c
}

// window is how a rule's regex may run on part of the input.
type window struct {
	// cutRunes > 0: the regex is anchored at the start and its matches
	// are at most cutRunes-1 runes long.
	cutRunes int
	// start lists the start clause as (literal id, distance); tail is the
	// regex to run on input[p0:] when p0 > 0 (nil: the regex itself, which
	// has no ^).
	start []startPos
	tail  *regexp.Regexp
}

type startPos struct {
	lit       int32
	len, dist int
	anchored  bool
}

// windowOf derives the window of expr; id numbers literals for the
// automaton.
func windowOf(expr string, id func(string) int32) window {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return window{}
	}
	if anchoredStart(re) {
		if n := maxRunes(re); n >= 0 {
			return window{cutRunes: n + 1}
		}
		return window{}
	}
	if hasOp(re, syntax.OpBeginLine) {
		return window{}
	}
	sc := startClause(re)
	if sc == nil {
		return window{}
	}
	w := window{}
	if hasOp(re, syntax.OpBeginText) {
		tail, err := regexp.Compile(noBeginText(re).String())
		if err != nil || tail.NumSubexp() != re.MaxCap() {
			return window{}
		}
		w.tail = tail
	}
	for _, l := range sc {
		if l.lit == "" {
			return window{}
		}
		w.start = append(w.start, startPos{id(l.lit), len(l.lit), l.dist, l.anchored})
	}
	return w
}

// isWordByte reports whether b is an ASCII word character (\w).
func isWordByte(b byte) bool {
	return b == '_' || '0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
}

// find runs r's regex on s, or on the part of s the window allows.
func (r *rule) find(s string, sc *gateScratch) []string {
	w := &r.win
	if w.cutRunes > 0 {
		if w.cutRunes < len(s) {
			cut := 0
			for n := 0; n < w.cutRunes && cut < len(s); n++ {
				_, size := utf8.DecodeRuneInString(s[cut:])
				cut += size
			}
			s = s[:cut]
		}
		return r.re.FindStringSubmatch(s)
	}
	if w.start != nil && sc.ascii {
		p0 := len(s)
		for _, l := range w.start {
			if sc.seenNew[l.lit/64]&(1<<(l.lit%64)) == 0 {
				continue
			}
			at := int(sc.firstEnd[l.lit]) - l.len
			if !l.anchored {
				p0 = min(p0, at-l.dist)
			} else if at <= l.dist {
				// A match that starts at 0 has the literal within dist.
				p0 = 0
			}
		}
		p0 = max(p0, 0)
		for p0 > 0 && isWordByte(s[p0-1]) {
			p0--
		}
		if p0 > 0 {
			if w.tail == nil {
				return r.re.FindStringSubmatch(s[p0:])
			}
			return w.tail.FindStringSubmatch(s[p0:])
		}
	}
	return r.re.FindStringSubmatch(s)
}
