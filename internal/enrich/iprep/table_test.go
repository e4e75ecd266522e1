package iprep

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

func TestPrefixRange(t *testing.T) {
	for _, tt := range []struct{ p, lo, hi string }{
		{"10.0.0.0/8", "10.0.0.0", "10.255.255.255"},
		{"10.1.2.3/32", "10.1.2.3", "10.1.2.3"},
		{"0.0.0.0/0", "0.0.0.0", "255.255.255.255"},
		{"2001:db8::/32", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"2001:db8::/64", "2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"},
		{"2001:db8::/65", "2001:db8::", "2001:db8::7fff:ffff:ffff:ffff"},
		{"::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"2001:db8::1/128", "2001:db8::1", "2001:db8::1"},
	} {
		r := prefixRange(netip.MustParsePrefix(tt.p))
		if r.lo != key(netip.MustParseAddr(tt.lo)) || r.hi != key(netip.MustParseAddr(tt.hi)) {
			t.Errorf("prefixRange(%s) wrong", tt.p)
		}
	}
}

// TestTableMatchesNaive compares the merged table with a linear scan over
// random overlapping ranges of several lists.
func TestTableMatchesNaive(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	byList := map[int][]rng{}
	addr := func(v uint32) u128 {
		return key(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}))
	}
	type raw struct {
		list   int
		lo, hi uint32
	}
	var all []raw
	for range 2000 {
		l := rnd.IntN(5)
		lo := rnd.Uint32N(1 << 16)
		hi := lo + rnd.Uint32N(64)
		all = append(all, raw{l, lo, hi})
		byList[l] = append(byList[l], rng{addr(lo), addr(hi)})
	}
	tb := buildTable(byList)
	for v := uint32(0); v < 1<<16+100; v++ {
		var want uint64
		for _, r := range all {
			if v >= r.lo && v <= r.hi {
				want |= 1 << r.list
			}
		}
		if got := tb.lookup(addr(v)); got != want {
			t.Fatalf("lookup(%d) = %b, want %b", v, got, want)
		}
	}
}

// FuzzParseList feeds arbitrary list files to the parser: it must either
// fail naming a line or return entries that each contain themselves.
func FuzzParseList(f *testing.F) {
	for _, s := range []string{
		"203.0.113.0/24 # demo\n198.51.100.10-198.51.100.20\n",
		"fingerprint, ipaddr, port\nABCDEF, 204.8.96.141, 444\n",
		"AS64500 # Example\n2001:db8::/32\n::ffff:1.2.3.4/120\n",
		"1.2.3.4 - 1.2.3.1\n", "not-an-ip\n", "AS0\n", "; c\n// c\n\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 1<<16 {
			return
		}
		ranges, asns, err := parseList(s)
		if err != nil {
			if msg := err.Error(); msg != "no entries" && !strings.HasPrefix(msg, "line ") {
				t.Fatalf("error %q does not name a line", msg)
			}
			return
		}
		if len(ranges)+len(asns) == 0 {
			t.Fatal("success without entries")
		}
		for _, r := range ranges {
			if r.hi.cmp(r.lo) < 0 {
				t.Fatalf("range runs backwards: %+v", r)
			}
			tb := buildTable(map[int][]rng{0: {r}})
			if tb.lookup(r.lo) != 1 || tb.lookup(r.hi) != 1 {
				t.Fatalf("range %+v does not contain its ends", r)
			}
		}
		for _, a := range asns {
			if a == 0 {
				t.Fatal("AS0 accepted")
			}
		}
	})
}

func FuzzParseASNCSV(f *testing.F) {
	f.Add("1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n2001::,2001::ffff,6939,HE\n")
	f.Add("1.0.0.9,1.0.0.1,1,a\n")
	f.Add("x,y\n")
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 1<<16 {
			return
		}
		tb, err := parseASNCSV([]byte(s))
		if err != nil {
			return
		}
		for i := range tb.starts {
			if tb.ends[i].cmp(tb.starts[i]) < 0 || (i > 0 && tb.starts[i].cmp(tb.ends[i-1]) <= 0) {
				t.Fatalf("table not sorted and disjoint at %d", i)
			}
		}
	})
}
