package iprep_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/enrich/iprep"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const operatorList = `# office and demo networks
203.0.113.0/24      # demo attacker range (TEST-NET-3)
198.51.100.10-198.51.100.20
; a semicolon comment
// a slash comment
2001:db8:1::/48
AS1221 # Telstra, by AS number
10.9.8.7
`

const asnCSV = `1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc."
203.0.113.0,203.0.113.255,64500,Example Hosting
2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,64501,Example v6
`

func newNet(t *testing.T, asn []string, extra ...iprep.List) *iprep.Enricher {
	t.Helper()
	td := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, filepath.Join("testdata", n))
		}
		return out
	}
	lists := append([]iprep.List{
		{Name: "tor-exits", Kind: iprep.KindTor, Paths: td("tor-exits.csv")},
		{Name: "x4b-datacenter", Kind: iprep.KindDatacenter, Paths: td("x4b-datacenter-ipv4.txt", "x4b-datacenter-ipv6.txt")},
		{Name: "x4b-vpn", Kind: iprep.KindVPN, Paths: td("x4b-vpn-ipv4.txt", "x4b-vpn-ipv6.txt", "x4b-vpn-asn.txt")},
	}, extra...)
	n, err := iprep.New(iprep.Options{ASN: asn, Lists: lists, ReloadInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func TestNetwork(t *testing.T) {
	dir := t.TempDir()
	op := writeFile(t, dir, "operator.txt", operatorList)
	csv := writeFile(t, dir, "asn.csv", asnCSV)
	n := newNet(t, []string{csv, "testdata/GeoLite2-ASN-Test.mmdb"}, iprep.List{Name: "operator", Paths: []string{op}})

	tests := []struct {
		ip   string
		want audit.Network
	}{
		{"204.8.96.141", audit.Network{Scope: "public", Tor: true, Lists: []string{"tor-exits"}}},
		{"2620:7:6003::141", audit.Network{Scope: "public", Tor: true, Lists: []string{"tor-exits"}}},
		{"1.12.0.1", audit.Network{Scope: "public", Datacenter: true, Lists: []string{"x4b-datacenter"}}},
		{"2001:310::1", audit.Network{Scope: "public", Datacenter: true, Lists: []string{"x4b-datacenter"}}},
		{"2.26.157.9", audit.Network{Scope: "public", Datacenter: true, VPN: true, Lists: []string{"x4b-datacenter", "x4b-vpn"}}},
		{"1.0.0.1", audit.Network{Scope: "public", ASN: 13335, ASOrg: "Cloudflare, Inc."}}, // CSV answers before the mmdb
		{"1.128.0.1", audit.Network{Scope: "public", ASN: 1221, ASOrg: "Telstra Pty Ltd", Lists: []string{"operator"}}},
		{"12.81.92.1", audit.Network{Scope: "public", ASN: 7018, ASOrg: "AT&T Services"}},
		{"203.0.113.7", audit.Network{Scope: "reserved", ASN: 64500, ASOrg: "Example Hosting", Lists: []string{"operator"}}},
		{"198.51.100.10", audit.Network{Scope: "reserved", Lists: []string{"operator"}}},
		{"198.51.100.20", audit.Network{Scope: "reserved", Lists: []string{"operator"}}},
		{"198.51.100.21", audit.Network{Scope: "reserved"}},
		{"2001:db8:1::5", audit.Network{Scope: "reserved", ASN: 64501, ASOrg: "Example v6", Lists: []string{"operator"}}},
		{"10.9.8.7", audit.Network{Scope: "private", Lists: []string{"operator"}}},
		{"::ffff:10.9.8.7", audit.Network{Scope: "private", Lists: []string{"operator"}}},
		{"192.168.1.1", audit.Network{Scope: "private"}},
		{"100.64.1.1", audit.Network{Scope: "private"}},
		{"fd00::1", audit.Network{Scope: "private"}},
		{"127.0.0.1", audit.Network{Scope: "loopback"}},
		{"::1", audit.Network{Scope: "loopback"}},
		{"169.254.1.1", audit.Network{Scope: "link_local"}},
		{"fe80::1", audit.Network{Scope: "link_local"}},
		{"0.0.0.0", audit.Network{Scope: "reserved"}},
		{"255.255.255.255", audit.Network{Scope: "reserved"}},
		{"224.0.0.251", audit.Network{Scope: "link_local"}},
		{"239.1.1.1", audit.Network{Scope: "reserved"}},
		{"81.2.69.142", audit.Network{Scope: "public"}},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			for range 2 { // cold, then cached
				e := &audit.Event{Context: audit.Context{IP: netip.MustParseAddr(tt.ip)}}
				if err := n.Enrich(context.Background(), e); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(&tt.want, e.Enrichment.Network); diff != "" {
					t.Fatalf("(-want +got):\n%s", diff)
				}
			}
		})
	}
	e := &audit.Event{}
	_ = n.Enrich(context.Background(), e)
	if e.Enrichment.Network != nil {
		t.Errorf("an event without IP got %+v", e.Enrichment.Network)
	}
}

// TestEveryListMemberTagged checks every entry of the Tor snapshot.
func TestEveryListMemberTagged(t *testing.T) {
	n := newNet(t, nil)
	data, err := os.ReadFile("testdata/tor-exits.csv")
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if i == 0 {
			continue
		}
		f := strings.Split(line, ", ")
		v, _ := n.Lookup(netip.MustParseAddr(f[1]))
		if !v.Tor {
			t.Fatalf("Tor exit %s not tagged: %+v", f[1], v)
		}
		count++
	}
	if count < 5000 {
		t.Fatalf("only %d exits checked", count)
	}
	for _, st := range n.Status() {
		if !st.Loaded || st.LastError != "" || st.Entries == 0 {
			t.Errorf("status %+v", st)
		}
	}
}

func TestListReloadAndErrors(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "block.txt", "203.0.113.7\n")
	n, err := iprep.New(iprep.Options{Lists: []iprep.List{{Name: "block", Paths: []string{p}}}, ReloadInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	has := func(ip string) bool {
		v, _ := n.Lookup(netip.MustParseAddr(ip))
		return len(v.Lists) == 1
	}
	if !has("203.0.113.7") || has("203.0.113.8") {
		t.Fatal("initial list wrong")
	}
	writeFile(t, dir, "block.txt", "203.0.113.8\nnot-an-ip\n")
	n.Reload()
	if !has("203.0.113.7") || has("203.0.113.8") {
		t.Error("a broken list replaced the good one")
	}
	st := n.Status()
	if len(st) != 1 || !strings.Contains(st[0].LastError, `line 2: "not-an-ip"`) {
		t.Errorf("status does not name the bad line: %+v", st)
	}
	writeFile(t, dir, "block.txt", "203.0.113.8 # fixed\n")
	if !n.Reload() || has("203.0.113.7") || !has("203.0.113.8") {
		t.Error("the fixed list did not go into service")
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    iprep.Options
		want string
	}{
		{"bad name", iprep.Options{Lists: []iprep.List{{Name: "Bad Name", Paths: []string{"x"}}}}, "list name"},
		{"bad kind", iprep.Options{Lists: []iprep.List{{Name: "a", Kind: "evil", Paths: []string{"x"}}}}, "kind"},
		{"no paths", iprep.Options{Lists: []iprep.List{{Name: "a"}}}, "no paths"},
		{"duplicate", iprep.Options{Lists: []iprep.List{{Name: "a", Paths: []string{"x"}}, {Name: "a", Paths: []string{"y"}}}}, "two lists"},
		{"shared file", iprep.Options{Lists: []iprep.List{{Name: "a", Paths: []string{"x"}}, {Name: "b", Paths: []string{"x"}}}}, "twice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := iprep.New(tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestASNCSVErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ content, want string }{
		{"1.0.0.0,1.0.0.255\n", "line 1: want first,last,asn"},
		{"x,1.0.0.255,1,a\n", "field first"},
		{"1.0.0.0,y,1,a\n", "field last"},
		{"1.0.0.9,1.0.0.1,1,a\n", "field last"},
		{"1.0.0.0,1.0.0.255,AS1,a\n", "field asn"},
		{"", "no rows"},
	} {
		p := writeFile(t, dir, "asn.csv", tt.content)
		n, err := iprep.New(iprep.Options{ASN: []string{p}, ReloadInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		if st := n.Status(); !strings.Contains(st[0].LastError, tt.want) {
			t.Errorf("%q: status error %q, want %q", tt.content, st[0].LastError, tt.want)
		}
		n.Close()
	}
}
