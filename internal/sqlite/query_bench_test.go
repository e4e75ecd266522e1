package sqlite_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/query"
)

// BenchmarkQuery measures the query runner on the search benchmarks' data
// set (VIGIL_BENCH_EVENTS events, 1M by default, 10 tenants over 10 days;
// built once under $TMPDIR/vigil-bench and reused) and reports p50/p99 per
// query shape. Each iteration picks a random tenant (and actor or IP) of
// the generator's distribution; "now" is the end of the data.
func BenchmarkQuery(b *testing.B) {
	db, _ := searchDB(b)
	qr := query.NewRunner(db.Events(), query.Options{})
	end := benchStart.Add(benchDays * 24 * time.Hour)
	g := newGen(77)
	ts := func(t time.Time) string { return t.Format(time.RFC3339) }
	shapes := []struct {
		name string
		src  func(e audit.Event) string
	}{
		// A filtered search: one source's failures in the last day, newest 100.
		{"FilteredSearchIP24h", func(e audit.Event) string {
			return fmt.Sprintf("time:>=%s action:auth.login.failure ip:%s | head 100", ts(end.Add(-24*time.Hour)), e.Context.IP)
		}},
		// An actor's whole timeline (10 days), newest 100.
		{"FilteredSearchActor", func(e audit.Event) string {
			return fmt.Sprintf("time:>=%s actor.id:%s | head 100", ts(end.Add(-30*24*time.Hour)), e.Actor.ID)
		}},
		// A body-field filter: failures from one country in the last hour.
		{"FilteredSearchCountry1h", func(e audit.Event) string {
			return fmt.Sprintf("time:>=%s action:auth.login.failure geo.country:%s | head 100", ts(end.Add(-time.Hour)), e.Enrichment.Geo.Country)
		}},
		{"TopIPsByDistinctFailedAccounts24h", func(audit.Event) string {
			return fmt.Sprintf("time:>=%s action:auth.login.failure | stats dc(actor.id) as accounts by ip | sort -accounts | head 20", ts(end.Add(-24*time.Hour)))
		}},
		{"HourlyFailureHistogram30d", func(audit.Event) string {
			return fmt.Sprintf("time:>=%s action:auth.login.failure | stats count() by bin(time, 1h)", ts(end.Add(-30*24*time.Hour)))
		}},
	}
	for _, sh := range shapes {
		b.Run(sh.name, func(b *testing.B) {
			var lat []time.Duration
			var scanned int64
			for b.Loop() {
				e := g.event(end)
				q, err := query.Parse(sh.src(e), end)
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				res, err := qr.RunQuery(context.Background(), audit.QueryScope{Tenant: e.Tenant}, q)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				scanned += res.Stats.Scanned
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(scanned)/float64(len(lat)), "rows-scanned/op")
		})
	}
}
