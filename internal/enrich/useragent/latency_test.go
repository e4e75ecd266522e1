package useragent

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkParseLatency parses sets of distinct user agents with the cache
// off, as a botnet rotating user agents would make Vigil do, and reports
// the per-parse latency distribution (p50, p99, max) besides ns/op.
// Every iteration parses one string; the set cycles.
//
//	go test -run XXX -bench ParseLatency -benchtime 200000x ./internal/enrich/useragent/
func BenchmarkParseLatency(b *testing.B) {
	u, err := compileUAP(embeddedRegexes)
	if err != nil {
		b.Fatal(err)
	}
	corpus := corpusUAs(b)
	g := newUAGen(2, corpus, gateLiterals(u))
	sets := []struct {
		name string
		uas  []string
	}{
		{"corpus", corpus},
		{"random", g.randomUAs(5000)},
		{"browsers", func() []string {
			out := make([]string, 5000)
			for i := range out {
				out[i] = g.browser()
			}
			return out
		}()},
		{"adversarial", g.adversarialUAs(1000)},
	}
	for _, set := range sets {
		b.Run(set.name, func(b *testing.B) {
			e, err := New(Options{CacheSize: -1})
			if err != nil {
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			i := 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				s := set.uas[i%len(set.uas)]
				i++
				t0 := time.Now()
				e.Parse(s)
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
				b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
				b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
			}
		})
	}
}
