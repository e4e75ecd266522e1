package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
)

// BenchmarkRiskUnderIngest measures POST /v1/risk as a login path calls
// it: b.N requests offered at a fixed 5,000 per second (open loop; each
// latency runs from the request's scheduled start, so a stall counts for
// every request it delays), while another client ingests batches of 500
// events: none, 5,000 or 10,000 events per second (about the end-to-end
// rate the pipeline sustains on this machine, docs/performance.md), or as
// fast as the server acknowledges them (the sub-benchmarks), and the
// pipeline detects them. It reports the risk latency's p50, p99 and max in
// milliseconds, the risk requests refused, and the ingest rate achieved
// meanwhile. The tenant's request-rate limit is raised for the run (the
// default, 1,000/s per tenant, would refuse most of them).
//
// The floor sub-benchmark is the same load generator against a bare
// net/http server on 127.0.0.1 that reads each request and answers a
// risk-sized JSON body without doing anything: what the harness and the
// machine cost before Vigil does any work, the least any server measured
// this way could show.
func BenchmarkRiskUnderIngest(b *testing.B) {
	b.Run("floor", benchRiskFloor)
	// ingest: -1 none, 0 as fast as acknowledged, else events per second.
	for _, c := range []struct {
		name   string
		ingest int
	}{{"ingest=none", -1}, {"ingest=5000/s", 5000}, {"ingest=10000/s", 10_000}, {"ingest=max", 0}} {
		b.Run(c.name, func(b *testing.B) { benchRisk(b, c.ingest) })
	}
}

// benchRiskFloor offers the risk load to a server that does nothing.
func benchRiskFloor(b *testing.B) {
	answer := []byte(`{"score":12,"level":"low","reasons":[{"code":"known_device","weight":0}],"actor":{"id":"user1@example.com"},"profile":"known"}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	b.Cleanup(srv.Close)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	measureRisk(b, hc, srv.URL, "floor-key", nil)
}

func benchRisk(b *testing.B, ingestRate int) {
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Storage.SQLite.Dir = b.TempDir()
	cfg.Log.Level = "error"
	cfg.Limits.Tenant.RequestRate, cfg.Limits.Tenant.RequestBurst = 100_000, 100_000
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	url := "http://" + a.Addr()
	st := a.Stores()
	if err := st.Tenants.CreateTenant(ctx, audit.Tenant{ID: "bench", RetentionDays: 400, CreatedAt: time.Now()}); err != nil {
		b.Fatal(err)
	}
	_, key, err := audit.MintKey(ctx, st.Keys, "bench", "bench", []audit.Scope{audit.ScopeEventsWrite}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	batch := func(from int, at time.Time) []byte {
		var buf bytes.Buffer
		for i := from; i < from+500; i++ {
			benchEvent(&buf, i, at)
		}
		return buf.Bytes()
	}
	// History first, so the scored actors have profiles.
	for i := 0; i < 20_000; i += 500 {
		if err := postBody(hc, url+"/v1/events", key, batch(i, time.Now().Add(-time.Hour)), true); err != nil {
			b.Fatal(err)
		}
	}

	// Let detection take the history in before measuring.
	if ss, ok := st.Stream.(audit.StreamStats); ok {
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if last, committed, err := ss.Backlog(ctx); err == nil && committed >= last {
				break
			}
		}
	}

	var ingested atomic.Int64
	stop := make(chan struct{})
	var ingestDone sync.WaitGroup
	ingestDone.Go(func() {
		if ingestRate < 0 {
			return
		}
		began := time.Now()
		for i := 20_000; ; i += 500 {
			select {
			case <-stop:
				return
			default:
			}
			if ingestRate > 0 { // paced: batch i starts at its scheduled time
				if d := time.Until(began.Add(time.Duration(i-20_000) * time.Second / time.Duration(ingestRate))); d > 0 {
					select {
					case <-stop:
						return
					case <-time.After(d):
					}
				}
			}
			if postBody(hc, url+"/v1/events", key, batch(i, time.Now()), true) == nil {
				ingested.Add(500)
			}
		}
	})

	ingestStart, ingestBase := time.Now(), ingested.Load()
	measureRisk(b, hc, url, key, func() {
		achieved := float64(ingested.Load()-ingestBase) / time.Since(ingestStart).Seconds()
		b.ReportMetric(achieved, "ingest-events/s")
	})
	close(stop)
	ingestDone.Wait()
}

// measureRisk offers b.N risk requests at 5,000 per second, open loop,
// and reports their latency; during is called when the last has answered,
// before the reports.
func measureRisk(b *testing.B, hc *http.Client, url, key string, during func()) {
	const rate = 5000
	lat := make([]time.Duration, b.N)
	var refused atomic.Int64
	jobs := make(chan int, 1024)
	var workers sync.WaitGroup
	start := time.Now()
	for range 64 {
		workers.Go(func() {
			for i := range jobs {
				at := start.Add(time.Duration(i) * time.Second / rate)
				body := fmt.Sprintf(`{"actor":{"id":"user%d@example.com"},"context":{"ip":"198.51.%d.%d","auth_method":"password","session_id":"s%d","user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"}}`,
					i%20_000, (i/256)%256, i%256, i)
				req, _ := http.NewRequest("POST", url+"/v1/risk", bytes.NewBufferString(body))
				req.Header.Set("Authorization", "Bearer "+key)
				resp, err := hc.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != http.StatusOK {
					refused.Add(1)
				}
				lat[i] = time.Since(at)
			}
		})
	}
	b.ResetTimer()
	for i := range b.N {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / rate)); d > 0 {
			time.Sleep(d)
		}
		jobs <- i
	}
	close(jobs)
	workers.Wait()
	b.StopTimer()
	if during != nil {
		during()
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(float64(refused.Load()), "refused")
}
