package useragent

import (
	"fmt"
	"math/bits"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// rule is one compiled entry of regexes.yaml.
type rule struct {
	re *regexp.Regexp
	// expr is the regex as compiled, with any (?i) flag.
	expr string
	// win says on which part of the input the regex may run.
	win window
	// lits are lowercase strings one of which every match contains (nil
	// when none could be derived); testing them first skips most regexes.
	lits []string
	// Replacements, in the order of the section's fields ("" = none).
	repl [5]string
	hasR [5]bool
}

// uapFile is the shape of regexes.yaml.
type uapFile struct {
	UA []struct {
		Regex  string  `yaml:"regex"`
		Family *string `yaml:"family_replacement"`
		V1     *string `yaml:"v1_replacement"`
		V2     *string `yaml:"v2_replacement"`
		V3     *string `yaml:"v3_replacement"`
	} `yaml:"user_agent_parsers"`
	OS []struct {
		Regex string  `yaml:"regex"`
		OS    *string `yaml:"os_replacement"`
		V1    *string `yaml:"os_v1_replacement"`
		V2    *string `yaml:"os_v2_replacement"`
		V3    *string `yaml:"os_v3_replacement"`
		V4    *string `yaml:"os_v4_replacement"`
	} `yaml:"os_parsers"`
	Device []struct {
		Regex  string  `yaml:"regex"`
		Flag   string  `yaml:"regex_flag"`
		Device *string `yaml:"device_replacement"`
		Brand  *string `yaml:"brand_replacement"`
		Model  *string `yaml:"model_replacement"`
	} `yaml:"device_parsers"`
}

// uap holds the three compiled parser lists and their gates.
type uap struct {
	ua, os, device []rule
	gates          *gates
	scratch        sync.Pool // *gateScratch
}

// compileUAP parses and compiles regexes.yaml. An entry whose regex Go's
// RE2 engine cannot compile fails the whole file, naming the entry.
func compileUAP(data []byte) (*uap, error) {
	var f uapFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("regexes.yaml: %w", err)
	}
	if len(f.UA) == 0 {
		return nil, fmt.Errorf("regexes.yaml: user_agent_parsers is empty")
	}
	u := &uap{}
	mk := func(section string, i int, expr, flag string, repl ...*string) (rule, error) {
		if flag == "i" {
			expr = "(?i)" + expr
		} else if flag != "" {
			return rule{}, fmt.Errorf("regexes.yaml: %s[%d].regex_flag %q is not supported", section, i, flag)
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return rule{}, fmt.Errorf("regexes.yaml: %s[%d].regex: %w", section, i, err)
		}
		r := rule{re: re, expr: expr, lits: requiredLiterals(expr)}
		for j, p := range repl {
			if p != nil {
				r.repl[j], r.hasR[j] = *p, true
			}
		}
		return r, nil
	}
	for i, e := range f.UA {
		r, err := mk("user_agent_parsers", i, e.Regex, "", e.Family, e.V1, e.V2, e.V3)
		if err != nil {
			return nil, err
		}
		u.ua = append(u.ua, r)
	}
	for i, e := range f.OS {
		r, err := mk("os_parsers", i, e.Regex, "", e.OS, e.V1, e.V2, e.V3, e.V4)
		if err != nil {
			return nil, err
		}
		u.os = append(u.os, r)
	}
	for i, e := range f.Device {
		r, err := mk("device_parsers", i, e.Regex, e.Flag, e.Device, e.Brand, e.Model)
		if err != nil {
			return nil, err
		}
		u.device = append(u.device, r)
	}
	var all []*rule
	var exprs []string
	for _, rs := range [][]rule{u.ua, u.os, u.device} {
		for i := range rs {
			all = append(all, &rs[i])
			exprs = append(exprs, rs[i].expr)
		}
	}
	u.gates = buildGates(all, exprs)
	return u, nil
}

// maxLits bounds the literal set of one rule; a larger set is no filter.
const maxLits = 256

// requiredLiterals returns lowercase strings at least one of which every
// match of expr contains (after lowercasing the input), or nil when no such
// set could be derived. Lowercasing keeps the test a necessary condition
// for case-sensitive and case-insensitive regexes alike.
func requiredLiterals(expr string) []string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	lits, ok := literalsOf(re.Simplify())
	if !ok {
		return nil
	}
	return lits
}

func literalsOf(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		return []string{strings.ToLower(string(re.Rune))}, true
	case syntax.OpCapture, syntax.OpPlus:
		return literalsOf(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return literalsOf(re.Sub[0])
		}
	case syntax.OpAlternate:
		var out []string
		for _, s := range re.Sub {
			l, ok := literalsOf(s)
			if !ok {
				return nil, false
			}
			out = append(out, l...)
		}
		if len(out) > maxLits {
			return nil, false
		}
		return out, true
	case syntax.OpConcat:
		var best []string
		for _, s := range re.Sub {
			if l, ok := literalsOf(s); ok && better(l, best) {
				best = l
			}
		}
		return best, best != nil
	}
	return nil, false
}

// better reports whether literal set a filters better than b: sets whose
// shortest literal has at least three bytes first, then fewer literals,
// then longer shortest literals.
func better(a, b []string) bool {
	if b == nil {
		return true
	}
	ma, mb := minLen(a), minLen(b)
	if (ma >= 3) != (mb >= 3) {
		return ma >= 3
	}
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return ma > mb
}

func minLen(l []string) int {
	m := -1
	for _, s := range l {
		if m < 0 || len(s) < m {
			m = len(s)
		}
	}
	return m
}

// match runs the candidate rules among rules, which are numbered from
// base in cand, in order and returns the first match's submatches.
func match(g *gates, sc *gateScratch, rules []rule, base int, s string) (*rule, []string) {
	cand := sc.cand
	for i := 0; i < len(rules); {
		k := base + i
		w := cand[k/64] >> (k % 64)
		if w == 0 {
			i += 64 - k%64
			continue
		}
		i += bits.TrailingZeros64(w)
		if i >= len(rules) {
			break
		}
		r := &rules[i]
		if g.pass(sc, base+i) {
			if m := r.find(s, sc); m != nil {
				return r, m
			}
		}
		i++
	}
	return nil, nil
}

// group returns submatch i (1-based), "" when absent.
func group(m []string, i int) string {
	if i < len(m) {
		return m[i]
	}
	return ""
}

// expand substitutes $1…$9 in a replacement with submatches.
func expand(repl string, m []string) string {
	if !strings.Contains(repl, "$") {
		return repl
	}
	var b strings.Builder
	for i := 0; i < len(repl); i++ {
		c := repl[i]
		if c == '$' && i+1 < len(repl) && repl[i+1] >= '1' && repl[i+1] <= '9' {
			b.WriteString(group(m, int(repl[i+1]-'0')))
			i++
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// field is the value of field j (0-based) of a user-agent or OS rule:
// its replacement with $N substituted, else submatch j+1.
func (r *rule) field(j int, m []string) string {
	if r.hasR[j] {
		return strings.TrimSpace(expand(r.repl[j], m))
	}
	return strings.TrimSpace(group(m, j+1))
}

// Result is the full uap-core parse of a user-agent string, as the
// ua-parser test suites state it. Family fields are "Other" when no rule
// matched.
type Result struct {
	Family, Major, Minor, Patch                       string
	OSFamily, OSMajor, OSMinor, OSPatch, OSPatchMinor string
	DeviceFamily, DeviceBrand, DeviceModel            string
}

func (u *uap) parse(s string) Result {
	sc, _ := u.scratch.Get().(*gateScratch)
	if sc == nil {
		sc = u.gates.newScratch()
	}
	defer u.scratch.Put(sc)
	u.gates.eval(sc, s)
	var m [3]matched
	m[0].r, m[0].m = match(u.gates, sc, u.ua, 0, s)
	m[1].r, m[1].m = match(u.gates, sc, u.os, len(u.ua), s)
	m[2].r, m[2].m = match(u.gates, sc, u.device, len(u.ua)+len(u.os), s)
	return resultOf(m)
}

// matched is the rule that matched in one section and its submatches;
// r is nil when none did.
type matched struct {
	r *rule
	m []string
}

// resultOf assembles the result from the matches of the user-agent, OS
// and device sections.
func resultOf(ms [3]matched) Result {
	res := Result{Family: "Other", OSFamily: "Other", DeviceFamily: "Other"}
	if r, m := ms[0].r, ms[0].m; r != nil {
		if f := r.field(0, m); f != "" {
			res.Family = f
		}
		res.Major, res.Minor, res.Patch = r.field(1, m), r.field(2, m), r.field(3, m)
	}
	if r, m := ms[1].r, ms[1].m; r != nil {
		if f := r.field(0, m); f != "" {
			res.OSFamily = f
		}
		res.OSMajor, res.OSMinor, res.OSPatch, res.OSPatchMinor = r.field(1, m), r.field(2, m), r.field(3, m), r.field(4, m)
	}
	if r, m := ms[2].r, ms[2].m; r != nil {
		// Device: every replacement may use any $N; family and model
		// default to the first submatch, brand to nothing.
		fam := strings.TrimSpace(group(m, 1))
		if r.hasR[0] {
			fam = strings.TrimSpace(expand(r.repl[0], m))
		}
		if fam != "" {
			res.DeviceFamily = fam
		}
		if r.hasR[1] {
			res.DeviceBrand = strings.TrimSpace(expand(r.repl[1], m))
		}
		res.DeviceModel = strings.TrimSpace(group(m, 1))
		if r.hasR[2] {
			res.DeviceModel = strings.TrimSpace(expand(r.repl[2], m))
		}
	}
	return res
}
