package iprep

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// u128 is an IPv6 address (IPv4 as ::ffff:a.b.c.d) as a number, so that
// ranges of both families live in one sorted table.
type u128 struct{ hi, lo uint64 }

func key(a netip.Addr) u128 {
	b := a.As16()
	return u128{
		hi: uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 | uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7]),
		lo: uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 | uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15]),
	}
}

func (a u128) cmp(b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

func (a u128) next() (u128, bool) {
	if a.lo != ^uint64(0) {
		return u128{a.hi, a.lo + 1}, true
	}
	if a.hi != ^uint64(0) {
		return u128{a.hi + 1, 0}, true
	}
	return a, false // the last address has no successor
}

// rng is an inclusive address range.
type rng struct{ lo, hi u128 }

// prefixRange returns the first and last address of p as a range.
func prefixRange(p netip.Prefix) rng {
	p = p.Masked()
	lo := key(p.Addr())
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	hi := lo
	switch {
	case bits <= 64:
		hi.lo = ^uint64(0)
		if bits < 64 {
			hi.hi |= ^uint64(0) >> bits
		}
	default:
		hi.lo |= ^uint64(0) >> (bits - 64)
		if bits == 128 {
			hi.lo = lo.lo
		}
	}
	return rng{lo, hi}
}

// parseEntry reads one list entry: an address, a CIDR, a range "a-b" or an
// autonomous system "AS64500". Exactly one of the results is set.
func parseEntry(s string) (r rng, asn uint32, err error) {
	if n, ok := strings.CutPrefix(strings.ToUpper(s), "AS"); ok && n != "" && n[0] >= '0' && n[0] <= '9' {
		v, err := strconv.ParseUint(n, 10, 32)
		if err != nil || v == 0 {
			return rng{}, 0, fmt.Errorf("%q is not a valid AS number", s)
		}
		return rng{}, uint32(v), nil
	}
	if a, b, ok := strings.Cut(s, "-"); ok {
		lo, err1 := netip.ParseAddr(strings.TrimSpace(a))
		hi, err2 := netip.ParseAddr(strings.TrimSpace(b))
		if err1 == nil && err2 == nil {
			lo, hi = lo.Unmap().WithZone(""), hi.Unmap().WithZone("")
			if lo.Is4() != hi.Is4() || hi.Less(lo) {
				return rng{}, 0, fmt.Errorf("range %q runs backwards or mixes IPv4 and IPv6", s)
			}
			return rng{key(lo), key(hi)}, 0, nil
		}
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return rng{}, 0, fmt.Errorf("%q is not a valid CIDR", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return prefixRange(p), 0, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return rng{}, 0, fmt.Errorf("%q is not an IP address, CIDR, range or AS number", s)
	}
	k := key(a.Unmap().WithZone(""))
	return rng{k, k}, 0, nil
}

// listFile is one parsed list file.
type listFile struct {
	list   int // index into Options.Lists
	ranges []rng
	asns   []uint32
}

// maxListLine bounds one line of a list file.
const maxListLine = 4096

// parseList reads a list file: one entry per line; '#' starts a comment
// anywhere, lines starting with ';' or "//" are comments, blank lines are
// skipped. A line with commas is read as CSV and its first field that is an
// address, CIDR or range is the entry (so the Tor exit snapshot's
// "fingerprint, ipaddr, port" rows work as they are); a CSV first line
// without one is a header. Any other line that does not parse fails the
// file, naming the line.
func parseList(data string) (ranges []rng, asns []uint32, err error) {
	line := 0
	for raw := range strings.Lines(data) {
		line++
		if len(raw) > maxListLine {
			return nil, nil, fmt.Errorf("line %d: longer than %d bytes", line, maxListLine)
		}
		s, _, _ := strings.Cut(raw, "#")
		s = strings.TrimSpace(s)
		if s == "" || s[0] == ';' || strings.HasPrefix(s, "//") {
			continue
		}
		if strings.Contains(s, ",") {
			found := false
			for f := range strings.SplitSeq(s, ",") {
				r, asn, err := parseEntry(strings.TrimSpace(f))
				if err == nil && asn == 0 {
					ranges, found = append(ranges, r), true
					break
				}
			}
			if !found && line != 1 {
				return nil, nil, fmt.Errorf("line %d: no IP address, CIDR or range in %q", line, clip(s))
			}
			continue
		}
		entry := s
		if i := strings.IndexAny(s, " \t"); i > 0 && !strings.Contains(s, "-") {
			entry = s[:i] // trailing words are a note
		}
		r, asn, err := parseEntry(entry)
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", line, err)
		}
		if asn != 0 {
			asns = append(asns, asn)
		} else {
			ranges = append(ranges, r)
		}
	}
	if len(ranges) == 0 && len(asns) == 0 {
		return nil, nil, errors.New("no entries")
	}
	return ranges, asns, nil
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// table maps disjoint address segments to a bit set of lists. starts is
// sorted; segment i covers [starts[i], starts[i+1]) and belongs to the lists
// in masks[i] (0: none). Lookup is one binary search however many lists
// and ranges there are.
type table struct {
	starts []u128
	masks  []uint64
}

// buildTable merges the ranges of up to 64 lists (bit i = list i).
func buildTable(byList map[int][]rng) table {
	type event struct {
		at  u128
		bit uint64
		on  bool
	}
	var evs []event
	for list, rs := range byList {
		bit := uint64(1) << list
		for _, r := range mergeRanges(rs) {
			evs = append(evs, event{r.lo, bit, true})
			if end, ok := r.hi.next(); ok {
				evs = append(evs, event{end, bit, false})
			}
		}
	}
	slices.SortFunc(evs, func(a, b event) int { return a.at.cmp(b.at) })
	var t table
	var mask uint64
	for i := 0; i < len(evs); {
		at := evs[i].at
		for ; i < len(evs) && evs[i].at == at; i++ {
			if evs[i].on {
				mask |= evs[i].bit
			} else {
				mask &^= evs[i].bit
			}
		}
		if n := len(t.masks); n > 0 && t.masks[n-1] == mask {
			continue
		}
		t.starts = append(t.starts, at)
		t.masks = append(t.masks, mask)
	}
	return t
}

// mergeRanges sorts ranges and joins overlapping and adjacent ones, so that
// one list's ranges are disjoint.
func mergeRanges(rs []rng) []rng {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b rng) int { return a.lo.cmp(b.lo) })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if nx, ok := last.hi.next(); !ok || r.lo.cmp(nx) <= 0 {
				if r.hi.cmp(last.hi) > 0 {
					last.hi = r.hi
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

func (t *table) lookup(k u128) uint64 {
	// The last segment starting at or before k.
	i, found := slices.BinarySearchFunc(t.starts, k, u128.cmp)
	if !found {
		i--
	}
	if i < 0 {
		return 0
	}
	return t.masks[i]
}
