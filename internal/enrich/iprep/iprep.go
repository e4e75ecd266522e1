// Package iprep sets audit.Network: the address scope (public, private,
// loopback, link-local, reserved), the autonomous system, and membership in
// named IP lists (Tor exits, datacenter/hosting, VPN/proxy, operator lists).
//
// ASN data comes from GeoLite2-ASN .mmdb files or from the ASN range CSV of
// the npm package @ip-location-db/asn. List files hold one IP, CIDR, range
// ("a-b") or AS number ("AS64500") per line with '#' comments, or CSV rows
// such as the Tor exit snapshot's. All lists are merged into one sorted
// table of disjoint segments, so a lookup is a single binary search —
// O(log n) over hundreds of thousands of ranges — whatever the number of
// lists. Files are reloaded when they change; lookups read an immutable
// snapshot through an atomic pointer and never wait for a load.
package iprep

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/enrich/lru"
	"github.com/vigilhq/vigil/internal/enrich/watch"
)

// DefaultCacheSize is the number of IPs whose answers are cached when
// Options.CacheSize is 0.
const DefaultCacheSize = 1 << 16

// MaxLists is the most lists one enricher can hold.
const MaxLists = 64

// List kinds: a match sets the Network flag of the same name.
const (
	KindTor        = "tor"
	KindDatacenter = "datacenter"
	KindVPN        = "vpn"
	KindOther      = ""
)

var listName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// List is one named IP list.
type List struct {
	// Name is reported in Network.Lists and searched by the store:
	// lowercase letters, digits, '_', '.', '-', at most 63 bytes
	// ("tor-exits", "x4b-datacenter", "office-blocklist").
	Name string
	// Kind sets a Network flag on a match: KindTor, KindDatacenter, KindVPN,
	// or KindOther for a list that only names itself.
	Kind string
	// Paths are the list's files (e.g. an IPv4 and an IPv6 file).
	Paths []string
}

// Options configures the network enricher.
type Options struct {
	// Name is the enricher's name in metrics, logs and Status; "network"
	// when empty.
	Name string
	// ASN are the ASN sources, asked in order: .mmdb files in the
	// GeoLite2-ASN schema, or ASN range CSV files ("first,last,asn,org").
	ASN []string
	// Lists are the IP lists, at most MaxLists.
	Lists []List
	// ReloadInterval is how often the files are checked for changes: one
	// minute when 0, never when negative.
	ReloadInterval time.Duration
	// CacheSize bounds the per-IP answer cache: DefaultCacheSize when 0; a
	// negative value disables the cache.
	CacheSize int
	// Logger receives load and reload lines; nil discards.
	Logger *slog.Logger
	// Registerer receives file-load metrics; nil means none.
	Registerer prometheus.Registerer
}

// snapshot is what lookups see; it is never modified once stored.
type snapshot struct {
	asn     []asnSource
	table   table
	byASN   map[uint32]uint64 // AS number → list bits
	names   []string          // list names by bit, sorted by name
	tor     uint64            // bits of lists of each kind
	dc, vpn uint64
	cache   *lru.Cache[netip.Addr, *audit.Network]
}

// Enricher is the network enricher. Create it with New; Close stops reloads.
type Enricher struct {
	name      string
	lists     []List // sorted by name; the index is the list's bit
	cacheSize int
	seed      maphash.Seed
	cur       atomic.Pointer[snapshot]

	mu       sync.Mutex // guards the latest loaded parts while rebuilding
	asnParts []asnSource
	files    []listFile
	asnSet   *watch.Set[asnSource]
	listSet  *watch.Set[listFile]
}

// New loads the ASN sources and lists and starts watching them. It fails
// only for unusable options (bad list names or kinds, too many lists, a file
// in two lists); files that cannot be loaded are reported by Status.
func New(o Options) (*Enricher, error) {
	n := &Enricher{name: o.Name, cacheSize: o.CacheSize, seed: maphash.MakeSeed()}
	if n.name == "" {
		n.name = "network"
	}
	if n.cacheSize == 0 {
		n.cacheSize = DefaultCacheSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if len(o.Lists) > MaxLists {
		return nil, fmt.Errorf("iprep: %d lists configured; at most %d are supported", len(o.Lists), MaxLists)
	}
	n.lists = slices.Clone(o.Lists)
	slices.SortFunc(n.lists, func(a, b List) int { return cmpString(a.Name, b.Name) })
	owner := map[string]int{}
	var listPaths []string
	for i, l := range n.lists {
		if !listName.MatchString(l.Name) {
			return nil, fmt.Errorf("iprep: list name %q must be 1-63 lowercase letters, digits, '_', '.' or '-'", l.Name)
		}
		if i > 0 && n.lists[i-1].Name == l.Name {
			return nil, fmt.Errorf("iprep: two lists are named %q", l.Name)
		}
		switch l.Kind {
		case KindTor, KindDatacenter, KindVPN, KindOther:
		default:
			return nil, fmt.Errorf("iprep: list %q: kind %q must be tor, datacenter, vpn or empty", l.Name, l.Kind)
		}
		if len(l.Paths) == 0 {
			return nil, fmt.Errorf("iprep: list %q has no paths", l.Name)
		}
		for _, p := range l.Paths {
			if _, dup := owner[p]; dup {
				return nil, fmt.Errorf("iprep: file %s is configured twice", p)
			}
			owner[p] = i
			listPaths = append(listPaths, p)
		}
	}
	loadList := func(path string) (listFile, watch.Meta, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return listFile{}, watch.Meta{}, err
		}
		ranges, asns, err := parseList(string(data))
		if err != nil {
			return listFile{}, watch.Meta{}, err
		}
		return listFile{list: owner[path], ranges: ranges, asns: asns}, watch.Meta{Kind: "ip-list", Entries: len(ranges) + len(asns)}, nil
	}
	log := o.Logger.With("component", "enrich")
	var err error
	n.asnSet, err = watch.New(watch.Options[asnSource]{
		Source: n.name + "-asn", Paths: o.ASN, Load: loadASN, Interval: o.ReloadInterval, Logger: log, Registerer: o.Registerer,
		OnSwap: func(v []asnSource) { n.mu.Lock(); n.asnParts = v; n.rebuild(); n.mu.Unlock() },
	})
	if err != nil {
		return nil, fmt.Errorf("iprep: %w", err)
	}
	n.listSet, err = watch.New(watch.Options[listFile]{
		Source: n.name + "-lists", Paths: listPaths, Load: loadList, Interval: o.ReloadInterval, Logger: log, Registerer: o.Registerer,
		OnSwap: func(v []listFile) { n.mu.Lock(); n.files = v; n.rebuild(); n.mu.Unlock() },
	})
	if err != nil {
		n.asnSet.Close()
		return nil, fmt.Errorf("iprep: %w", err)
	}
	return n, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// rebuild makes a new snapshot from the latest loaded parts; n.mu is held.
func (n *Enricher) rebuild() {
	s := &snapshot{asn: n.asnParts, byASN: map[uint32]uint64{}}
	for i, l := range n.lists {
		s.names = append(s.names, l.Name)
		bit := uint64(1) << i
		switch l.Kind {
		case KindTor:
			s.tor |= bit
		case KindDatacenter:
			s.dc |= bit
		case KindVPN:
			s.vpn |= bit
		}
	}
	byList := map[int][]rng{}
	for _, f := range n.files {
		byList[f.list] = append(byList[f.list], f.ranges...)
		for _, a := range f.asns {
			s.byASN[a] |= uint64(1) << f.list
		}
	}
	s.table = buildTable(byList)
	if n.cacheSize > 0 {
		s.cache = lru.New[netip.Addr, *audit.Network](n.cacheSize, n.hash)
	}
	n.cur.Store(s)
}

func (n *Enricher) hash(a netip.Addr) uint64 {
	b := a.As16()
	return maphash.Bytes(n.seed, b[:])
}

// Name implements audit.Enricher.
func (n *Enricher) Name() string { return n.name }

// Enrich sets e.Enrichment.Network when the event has an IP. It never
// returns an error.
func (n *Enricher) Enrich(_ context.Context, e *audit.Event) error {
	if net, ok := n.Lookup(e.Context.IP); ok {
		e.Enrichment.Network = &net
	}
	return nil
}

// Lookup returns what is known of ip's network, and false for an invalid
// ip. The returned Lists slice is the caller's own.
func (n *Enricher) Lookup(ip netip.Addr) (audit.Network, bool) {
	if !ip.IsValid() {
		return audit.Network{}, false
	}
	ip = ip.Unmap().WithZone("")
	s := n.cur.Load()
	if s.cache != nil {
		if v, ok := s.cache.Get(ip); ok {
			out := *v
			out.Lists = slices.Clone(v.Lists)
			return out, true
		}
	}
	v := s.lookup(ip)
	if s.cache != nil {
		c := v
		s.cache.Add(ip, &c)
		v.Lists = slices.Clone(v.Lists)
	}
	return v, true
}

func (s *snapshot) lookup(ip netip.Addr) audit.Network {
	v := audit.Network{Scope: Scope(ip)}
	for _, src := range s.asn {
		if asn, org, ok := src.lookup(ip); ok {
			v.ASN, v.ASOrg = asn, org
			break
		}
	}
	mask := s.table.lookup(key(ip))
	if v.ASN != 0 {
		mask |= s.byASN[v.ASN]
	}
	if mask == 0 {
		return v
	}
	v.Tor, v.Datacenter, v.VPN = mask&s.tor != 0, mask&s.dc != 0, mask&s.vpn != 0
	for i, name := range s.names { // names are sorted, so Lists is too
		if mask&(uint64(1)<<i) != 0 {
			v.Lists = append(v.Lists, name)
		}
	}
	return v
}

// Status describes every configured ASN source and list file.
func (n *Enricher) Status() []watch.Status {
	return append(n.asnSet.Status(), n.listSet.Status()...)
}

// Reload checks all files for changes now and reports whether anything new
// went into service.
func (n *Enricher) Reload() bool {
	a := n.asnSet.Poll()
	b := n.listSet.Poll()
	return a || b
}

// Close stops watching the files. Lookups keep working on what is loaded.
func (n *Enricher) Close() error {
	return errors.Join(n.asnSet.Close(), n.listSet.Close())
}

// Special-purpose ranges beyond what net/netip classifies (IANA IPv4 and
// IPv6 special-purpose address registries).
var (
	privateExtra = []netip.Prefix{
		netip.MustParsePrefix("100.64.0.0/10"), // shared address space (carrier-grade NAT)
	}
	reserved = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("192.0.0.0/24"),
		netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
		netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
		netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
		netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
		netip.MustParsePrefix("240.0.0.0/4"),     // future use and broadcast
		netip.MustParsePrefix("::/128"),
		netip.MustParsePrefix("100::/64"),      // discard-only
		netip.MustParsePrefix("2001:db8::/32"), // documentation
		netip.MustParsePrefix("3fff::/20"),     // documentation
	}
)

// Scope classifies an address as one of the audit.Scope* constants.
// Documentation, benchmarking, multicast and other special-purpose ranges
// are "reserved".
func Scope(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		return audit.ScopeLoopback
	case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return audit.ScopeLinkLocal
	case ip.IsPrivate():
		return audit.ScopePrivate
	case ip.IsUnspecified() || ip.IsMulticast():
		return audit.ScopeReserved
	}
	for _, p := range privateExtra {
		if p.Contains(ip) {
			return audit.ScopePrivate
		}
	}
	for _, p := range reserved {
		if p.Contains(ip) {
			return audit.ScopeReserved
		}
	}
	return audit.ScopePublic
}
