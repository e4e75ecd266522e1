package iprep_test

import (
	"context"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/enrich/iprep"
)

func randomIPs(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	x := uint32(2463534242)
	for i := range out {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], x)
		out[i] = netip.AddrFrom4(a)
	}
	return out
}

// BenchmarkNetwork measures the network enricher with the Tor, X4B
// datacenter and VPN lists (about 68,000 ranges), plus the real ASN CSV
// (about 515,000 ranges) when VIGIL_GEODATA_DIR is set.
func BenchmarkNetwork(b *testing.B) {
	var asn []string
	if dir := os.Getenv("VIGIL_GEODATA_DIR"); dir != "" {
		asn = []string{filepath.Join(dir, "asn-ipv4.csv"), filepath.Join(dir, "asn-ipv6.csv")}
	} else {
		asn = []string{"testdata/GeoLite2-ASN-Test.mmdb"}
	}
	lists := []iprep.List{
		{Name: "tor-exits", Kind: iprep.KindTor, Paths: []string{"testdata/tor-exits.csv"}},
		{Name: "x4b-datacenter", Kind: iprep.KindDatacenter, Paths: []string{"testdata/x4b-datacenter-ipv4.txt", "testdata/x4b-datacenter-ipv6.txt"}},
		{Name: "x4b-vpn", Kind: iprep.KindVPN, Paths: []string{"testdata/x4b-vpn-ipv4.txt", "testdata/x4b-vpn-ipv6.txt"}},
	}
	ips := randomIPs(1 << 16)
	for _, bc := range []struct {
		name  string
		cache int
		ips   []netip.Addr
	}{{"cached", 0, ips[:1000]}, {"uncached", -1, ips}} {
		b.Run(bc.name, func(b *testing.B) {
			n, err := iprep.New(iprep.Options{ASN: asn, Lists: lists, ReloadInterval: -1, CacheSize: bc.cache})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			for _, st := range n.Status() {
				if !st.Loaded {
					b.Fatalf("%s not loaded: %s", st.Path, st.LastError)
				}
			}
			e := &audit.Event{}
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				e.Context.IP = bc.ips[i%len(bc.ips)]
				i++
				_ = n.Enrich(ctx, e)
			}
		})
	}
}
