package useragent

import (
	"compress/gzip"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// corpusUAs returns the user agents of the uap-core test suites, in file
// order, duplicates included.
func corpusUAs(tb testing.TB) []string {
	tb.Helper()
	var out []string
	for _, name := range []string{"test_ua.yaml", "test_os.yaml", "test_device.yaml.gz"} {
		f, err := os.Open("testdata/" + name)
		if err != nil {
			tb.Fatal(err)
		}
		var r io.Reader = f
		if strings.HasSuffix(name, ".gz") {
			if r, err = gzip.NewReader(f); err != nil {
				tb.Fatal(err)
			}
		}
		var doc struct {
			Cases []struct {
				UA string `yaml:"user_agent_string"`
			} `yaml:"test_cases"`
		}
		if err := yaml.NewDecoder(r).Decode(&doc); err != nil {
			tb.Fatal(err)
		}
		f.Close()
		for _, c := range doc.Cases {
			out = append(out, c.UA)
		}
	}
	return out
}

// gateLiterals returns every distinct gate literal of the embedded rules,
// sorted.
func gateLiterals(u *uap) []string {
	seen := map[string]bool{}
	for _, rs := range [][]rule{u.ua, u.os, u.device} {
		for _, r := range rs {
			for _, l := range r.lits {
				seen[l] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for l := range seen {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

// uaGen makes deterministic synthetic user agents of the kinds a botnet
// rotates through, and adversarial ones built to reach as many regexes as
// possible.
type uaGen struct {
	rnd    *rand.Rand
	tokens []string // space-separated tokens of real user agents
	lits   []string // gate literals
}

func newUAGen(seed uint64, corpus []string, lits []string) *uaGen {
	g := &uaGen{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), lits: lits}
	for _, s := range corpus {
		g.tokens = append(g.tokens, strings.Fields(s)...)
	}
	return g
}

func (g *uaGen) num(n int) string { return strconv.Itoa(g.rnd.IntN(n)) }

// browser returns a plausible browser UA with random versions and platform,
// like a credential-stuffing tool rotating user agents.
func (g *uaGen) browser() string {
	plats := []string{
		"Windows NT 10.0; Win64; x64", "Windows NT 6.1; WOW64", "Macintosh; Intel Mac OS X 10_15_" + g.num(8),
		"X11; Linux x86_64", "X11; Ubuntu; Linux x86_64", "Linux; Android " + g.num(15) + "; SM-G" + g.num(999) + "F",
		"iPhone; CPU iPhone OS " + g.num(18) + "_" + g.num(6) + " like Mac OS X", "iPad; CPU OS 16_" + g.num(6) + " like Mac OS X",
	}
	p := plats[g.rnd.IntN(len(plats))]
	v := g.num(130) + ".0." + g.num(7000) + "." + g.num(200)
	switch g.rnd.IntN(5) {
	case 0:
		return "Mozilla/5.0 (" + p + "; rv:" + g.num(130) + ".0) Gecko/20100101 Firefox/" + g.num(130) + ".0"
	case 1:
		return "Mozilla/5.0 (" + p + ") AppleWebKit/605.1.15 (KHTML, like Gecko) Version/" + g.num(18) + "." + g.num(5) + " Mobile/15E148 Safari/604.1"
	case 2:
		return "Mozilla/5.0 (" + p + ") AppleWebKit/537.36 (KHTML, like Gecko) Chrome/" + v + " Safari/537.36 Edg/" + v
	default:
		return "Mozilla/5.0 (" + p + ") AppleWebKit/537.36 (KHTML, like Gecko) Chrome/" + v + " Mobile Safari/537.36"
	}
}

// soup joins random tokens of real user agents.
func (g *uaGen) soup() string {
	n := 1 + g.rnd.IntN(14)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = g.tokens[g.rnd.IntN(len(g.tokens))]
	}
	return strings.Join(parts, " ")
}

// noise returns random bytes: printable ASCII, or any byte (invalid UTF-8
// included), or random runes.
func (g *uaGen) noise() string {
	n := 1 + g.rnd.IntN(300)
	var b strings.Builder
	mode := g.rnd.IntN(3)
	for range n {
		switch mode {
		case 0:
			b.WriteByte(byte(32 + g.rnd.IntN(95)))
		case 1:
			b.WriteByte(byte(g.rnd.IntN(256)))
		default:
			b.WriteRune(rune(g.rnd.IntN(0x3000)))
		}
	}
	return b.String()
}

// litSoup joins random gate literals with separators and version numbers,
// up to about max bytes: strings that pass many gates at once.
func (g *uaGen) litSoup(max int) string {
	seps := []string{" ", "/", "; ", "(", ")", "/" + g.num(100) + "." + g.num(100) + " ", "_", "-", ""}
	var b strings.Builder
	for b.Len() < max {
		l := g.lits[g.rnd.IntN(len(g.lits))]
		if g.rnd.IntN(2) == 0 {
			l = strings.ToUpper(l[:1]) + l[1:]
		}
		b.WriteString(l)
		b.WriteString(seps[g.rnd.IntN(len(seps))])
	}
	return b.String()
}

// randomUAs returns n synthetic user agents: browsers, token soup and noise.
func (g *uaGen) randomUAs(n int) []string {
	out := make([]string, n)
	for i := range out {
		switch g.rnd.IntN(4) {
		case 0, 1:
			out[i] = g.browser()
		case 2:
			out[i] = g.soup()
		default:
			out[i] = g.noise()
		}
	}
	return out
}

// adversarialUAs returns n user agents built to be slow: long strings of
// gate literals, repetitions that keep many regex threads alive, and
// near-misses of the pathological bot alternations.
func (g *uaGen) adversarialUAs(n int) []string {
	fixed := []string{
		strings.Repeat("a", MaxLength),
		strings.Repeat("bot", MaxLength/3),
		strings.Repeat("Mozilla/5.0 (", MaxLength/13),
		strings.Repeat("/1.", MaxLength/3),
		strings.Repeat(" ", MaxLength-1) + "x",
		strings.Repeat("Ab", MaxLength/2),
		strings.Repeat("Nutch-", MaxLength/6),
		strings.Repeat("spider", MaxLength/6),
		strings.Repeat("Android ", MaxLength/8),
		strings.Repeat("Chrome/1.2.3 ", MaxLength/13),
		strings.Repeat("(Linux; U; ", MaxLength/11),
		strings.Repeat("9", MaxLength),
		strings.Repeat("é", MaxLength/2),
		strings.Repeat("\xff", MaxLength),
		strings.Join(g.lits, " "),
		strings.Join(g.lits, "/"),
		strings.Join(g.lits, ""),
	}
	out := append([]string(nil), fixed...)
	for len(out) < n {
		switch g.rnd.IntN(3) {
		case 0:
			out = append(out, g.litSoup(MaxLength))
		case 1:
			out = append(out, g.litSoup(100+g.rnd.IntN(400)))
		default:
			// Long soup of real tokens.
			var b strings.Builder
			for b.Len() < MaxLength {
				b.WriteString(g.tokens[g.rnd.IntN(len(g.tokens))])
				b.WriteByte(' ')
			}
			out = append(out, b.String())
		}
	}
	return out
}

// corpusForTest returns the uap-core cases plus 20,000 random and 2,000
// adversarial user agents, all deterministic.
func corpusForTest(tb testing.TB) []string {
	u, err := compileUAP(embeddedRegexes)
	if err != nil {
		tb.Fatal(err)
	}
	corpus := corpusUAs(tb)
	g := newUAGen(1, corpus, gateLiterals(u))
	out := append([]string(nil), corpus...)
	out = append(out, g.randomUAs(20000)...)
	out = append(out, g.adversarialUAs(2000)...)
	return out
}
