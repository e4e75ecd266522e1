package useragent

import (
	"strings"
	"testing"
)

// parseReference is the parser as it was before the Aho–Corasick gates:
// every rule in order, skipped when strings.ToLower(s) contains none of its
// literals. The fast parser must return exactly what it returns.
func (u *uap) parseReference(s string) Result {
	low := strings.ToLower(s)
	seq := func(rules []rule) (m matched) {
		for i := range rules {
			r := &rules[i]
			if !r.mayMatch(low) {
				continue
			}
			if sub := r.re.FindStringSubmatch(s); sub != nil {
				return matched{r, sub}
			}
		}
		return matched{}
	}
	return resultOf([3]matched{seq(u.ua), seq(u.os), seq(u.device)})
}

// mayMatch reports whether low (the lowercased input) contains one of the
// rule's literals, or the rule has none.
func (r *rule) mayMatch(low string) bool {
	if r.lits == nil {
		return true
	}
	for _, l := range r.lits {
		if strings.Contains(low, l) {
			return true
		}
	}
	return false
}

// TestMatchesReference checks that the gated parser returns exactly what
// the sequential parser returns, on the uap-core suites and on random and
// adversarial user agents.
func TestMatchesReference(t *testing.T) {
	u, err := compileUAP(embeddedRegexes)
	if err != nil {
		t.Fatal(err)
	}
	corpus := corpusUAs(t)
	g := newUAGen(7, corpus, gateLiterals(u))
	inputs := append(g.randomUAs(2000), g.adversarialUAs(200)...)
	step := 1
	if testing.Short() || raceEnabled {
		// FuzzMatchesReference keeps comparing on fresh inputs.
		step = 10
		inputs = inputs[:300]
	}
	for i := 0; i < len(corpus); i += step {
		inputs = append(inputs, corpus[i])
	}
	for _, s := range inputs {
		if got, want := u.parse(s), u.parseReference(s); got != want {
			t.Errorf("parse(%q)\n got  %+v\n want %+v", s, got, want)
		}
	}
}

// FuzzMatchesReference checks the gated parser against the sequential
// one on any input, including invalid UTF-8 and case-folding corner cases
// (the Kelvin sign, long s, dotted I).
func FuzzMatchesReference(f *testing.F) {
	for _, s := range []string{
		"curl/8.5.0", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
		"Googlebot/2.1", "\u212aindle/3.0", "ſlurp", "İPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) \xff",
		"SAMSUNG-GT-I9300/1.0 Bada/2.0", "NING/1.0", "xNING/1.0 Yeti/1.0", "a_favicon_b favicon 1", "Mozilla/5.0 WIRE/1.2 jbot",
		"Linux; Android 4.4; SM-T230 Build/KOT49H) AppleWebKit", "Opera/9.80 (J2ME/MIDP; Opera Mini/9.80 (S60; SymbOS; Opera Mobi/23.348; U; en) Presto/2.5.25 Version/10.54",
	} {
		f.Add(s)
	}
	u, err := compileUAP(embeddedRegexes)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 2048 {
			return
		}
		if got, want := u.parse(s), u.parseReference(s); got != want {
			t.Fatalf("parse(%q)\n got  %+v\n want %+v", s, got, want)
		}
	})
}
