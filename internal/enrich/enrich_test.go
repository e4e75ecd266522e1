package enrich_test

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/enrich"
	"github.com/vigilhq/vigil/internal/enrich/geoip"
	"github.com/vigilhq/vigil/internal/enrich/iprep"
	"github.com/vigilhq/vigil/internal/enrich/useragent"
)

// fakeEnricher is a function-field enricher for pipeline tests.
type fakeEnricher struct {
	name string
	fn   func(e *audit.Event) error
}

func (f fakeEnricher) Name() string                                   { return f.name }
func (f fakeEnricher) Enrich(_ context.Context, e *audit.Event) error { return f.fn(e) }

func TestFailuresNeverFailTheEvent(t *testing.T) {
	reg := prometheus.NewRegistry()
	ran := 0
	p, err := enrich.New(enrich.Options{Registerer: reg, Enrichers: []audit.Enricher{
		fakeEnricher{"broken", func(*audit.Event) error { return errors.New("db gone") }},
		fakeEnricher{"panics", func(*audit.Event) error { panic("bug") }},
		fakeEnricher{"works", func(e *audit.Event) error {
			ran++
			e.Enrichment.UserAgent = &audit.UserAgent{Class: "empty"}
			return nil
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	e := &audit.Event{}
	if err := p.Enrich(context.Background(), e); err != nil {
		t.Fatalf("Enrich = %v", err)
	}
	if ran != 1 || e.Enrichment.UserAgent == nil {
		t.Error("the working enricher did not run after the failing ones")
	}
	want := `
# HELP vigil_enrich_errors_total Enricher failures (errors and panics); the events went on without that enrichment.
# TYPE vigil_enrich_errors_total counter
vigil_enrich_errors_total{enricher="broken"} 1
vigil_enrich_errors_total{enricher="panics"} 1
vigil_enrich_errors_total{enricher="works"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "vigil_enrich_errors_total"); err != nil {
		t.Error(err)
	}
}

// TestSlowEnrichmentSkipsNothing: an event whose first enricher is slow
// (a loaded machine) still gets every enricher, so its enrichment, and the
// detection on it, is the same as on an idle machine; the slowness is
// counted.
func TestSlowEnrichmentSkipsNothing(t *testing.T) {
	now := time.Unix(0, 0)
	clock := func() time.Time { return now }
	reg := prometheus.NewRegistry()
	p, err := enrich.New(enrich.Options{Budget: time.Millisecond, Now: clock, Registerer: reg, Enrichers: []audit.Enricher{
		fakeEnricher{"slow", func(*audit.Event) error { now = now.Add(5 * time.Millisecond); return nil }},
		fakeEnricher{"next", func(e *audit.Event) error {
			e.Enrichment.UserAgent = &audit.UserAgent{Class: audit.UAClassScripted}
			return nil
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ev := &audit.Event{}
	p.EnrichBatch(context.Background(), []*audit.Event{ev})
	if ev.Enrichment.UserAgent == nil || ev.Enrichment.UserAgent.Class != audit.UAClassScripted {
		t.Error("an enricher was skipped because an earlier one was slow")
	}
	if got := testutil.ToFloat64(mustCounter(t, reg, "vigil_enrich_slow_total")); got != 1 {
		t.Errorf("slow = %v, want 1", got)
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x", Help: "x"}, func() float64 {
				sum := 0.0
				for _, m := range mf.GetMetric() {
					sum += m.GetCounter().GetValue()
				}
				return sum
			})
		}
	}
	t.Fatalf("metric %s not found", name)
	return nil
}

func TestNewRejectsBadOptions(t *testing.T) {
	if _, err := enrich.New(enrich.Options{Enrichers: []audit.Enricher{nil}}); err == nil {
		t.Error("nil enricher accepted")
	}
	f := fakeEnricher{"a", func(*audit.Event) error { return nil }}
	if _, err := enrich.New(enrich.Options{Enrichers: []audit.Enricher{f, f}}); err == nil {
		t.Error("duplicate names accepted")
	}
}

// realPipeline builds the three adapters on the committed test data.
func realPipeline(t testing.TB, cache int) *enrich.Pipeline {
	t.Helper()
	g, err := geoip.New(geoip.Options{Paths: []string{"geoip/testdata/GeoIP2-City-Test.mmdb"}, ReloadInterval: -1, CacheSize: cache})
	if err != nil {
		t.Fatal(err)
	}
	td := func(n string) string { return filepath.Join("iprep/testdata", n) }
	n, err := iprep.New(iprep.Options{ASN: []string{td("GeoLite2-ASN-Test.mmdb")}, ReloadInterval: -1, CacheSize: cache, Lists: []iprep.List{
		{Name: "tor-exits", Kind: iprep.KindTor, Paths: []string{td("tor-exits.csv")}},
		{Name: "x4b-datacenter", Kind: iprep.KindDatacenter, Paths: []string{td("x4b-datacenter-ipv4.txt"), td("x4b-datacenter-ipv6.txt")}},
		{Name: "x4b-vpn", Kind: iprep.KindVPN, Paths: []string{td("x4b-vpn-ipv4.txt"), td("x4b-vpn-ipv6.txt")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	u, err := useragent.New(useragent.Options{CacheSize: cache})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close(); n.Close() })
	p, err := enrich.New(enrich.Options{Enrichers: []audit.Enricher{n, g, u}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLookupAndStatus(t *testing.T) {
	p := realPipeline(t, 0)
	got := p.Lookup(context.Background(), netip.MustParseAddr("81.2.69.142"), "curl/8.5.0")
	if got.Geo == nil || got.Geo.Country != "GB" || got.Geo.City != "London" {
		t.Errorf("geo = %+v", got.Geo)
	}
	if got.Network == nil || got.Network.Scope != "public" {
		t.Errorf("network = %+v", got.Network)
	}
	if got.UserAgent == nil || got.UserAgent.Class != "scripted" {
		t.Errorf("user agent = %+v", got.UserAgent)
	}
	st := p.Status()
	if len(st) != 8 { // 1 city db, 1 asn db, 5 list files, 1 regexes
		t.Fatalf("Status has %d entries: %+v", len(st), st)
	}
	for _, s := range st {
		if !s.Loaded || s.Size == 0 || s.Kind == "" {
			t.Errorf("status %+v", s)
		}
	}
}

// BenchmarkPipeline is the per-event enrichment cost with all three
// enrichers: "cached" repeats a working set of IPs and user agents,
// "uncached" runs with every cache disabled.
func BenchmarkPipeline(b *testing.B) {
	ips := []string{"81.2.69.142", "216.160.83.56", "204.8.96.141", "1.12.0.1", "89.160.20.112", "175.16.199.1"}
	uas := []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
		"curl/8.5.0", "python-requests/2.31.0", "Go-http-client/1.1",
	}
	for _, bc := range []struct {
		name  string
		cache int
		ua    bool
	}{{"cached", 0, true}, {"uncached-ip-only", -1, false}, {"uncached", -1, true}} {
		b.Run(bc.name, func(b *testing.B) {
			p := realPipeline(b, bc.cache)
			events := make([]audit.Event, 30)
			for i := range events {
				events[i].Context.IP = netip.MustParseAddr(ips[i%len(ips)])
				if bc.ua {
					events[i].Context.UserAgent = uas[i%len(uas)]
				}
			}
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				e := &events[i%len(events)]
				e.Enrichment = audit.Enrichment{}
				_ = p.Enrich(ctx, e)
				i++
			}
		})
	}
}
