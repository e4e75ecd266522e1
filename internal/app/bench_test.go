package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/natsstream/natstest"
)

// benchEvent is a realistic ~400-byte login failure.
func benchEvent(buf *bytes.Buffer, i int, at time.Time) {
	fmt.Fprintf(buf, `{"action":"auth.login.failure","time":%q,"reason":"invalid_password","actor":{"id":"user%d@example.com","type":"user"},"context":{"ip":"198.51.%d.%d","user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36","session_id":"sess-%d","request_id":"req-%d"},"metadata":{"app":"web","attempt":%d}}`+"\n",
		at.Format(time.RFC3339Nano), i%50000, (i/256)%256, i%256, i, i, i%5)
}

func benchNode(b *testing.B, edit ...func(*config.Config)) (*node, string) {
	b.Helper()
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Storage.SQLite.Dir = b.TempDir()
	for _, e := range edit {
		e(&cfg)
	}
	// Info, as in production: one access-log line per request, written
	// to a file so each line costs its write.
	cfg.Log.Level = "info"
	// One tenant sends everything here (make bench spreads the load over
	// many): keep its request limiter on, so its cost is measured, but out
	// of the way of the 64 single-event clients.
	cfg.Limits.Tenant.RequestRate, cfg.Limits.Tenant.RequestBurst = 1_000_000, 1_000_000
	ctx, cancel := context.WithCancel(context.Background())
	logFile, err := os.Create(filepath.Join(b.TempDir(), "vigil.log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { logFile.Close() })
	a, err := app.New(ctx, cfg, app.Options{Stderr: logFile})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	n := &node{app: a, url: "http://" + a.Addr(), operator: a.BootstrapKey}
	st := a.Stores()
	if err := st.Tenants.CreateTenant(ctx, audit.Tenant{ID: "bench", RetentionDays: 400, CreatedAt: time.Now()}); err != nil {
		b.Fatal(err)
	}
	_, key, err := audit.MintKey(ctx, st.Keys, "bench", "bench", []audit.Scope{audit.ScopeEventsWrite}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	return n, key
}

func postBody(client *http.Client, url, key string, body []byte, ndjson bool) error {
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	if ndjson {
		req.Header.Set("Content-Type", "application/x-ndjson")
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// BenchmarkIngestHTTPBatch1000 measures durable ingest over HTTP: NDJSON
// batches of 1,000 events from 4 concurrent clients, each request answered
// only after its events are fsynced. It reports acknowledged events/s and,
// separately, the rate at which the pipeline (enrich → detect → index) has
// stored them by the end.
func BenchmarkIngestHTTPBatch1000(b *testing.B) {
	benchIngest(b, 1000, 4)
}

// BenchmarkIngestHTTPBatch1000Postgres is the same load on the PostgreSQL
// store (the local server, over its unix socket): the stream stays on the
// node's disk, so acknowledgement costs the same; the pipeline stores into
// PostgreSQL. Its CPU figures are Vigil's process only: the database
// server's own CPU is not in them.
func BenchmarkIngestHTTPBatch1000Postgres(b *testing.B) {
	benchIngest(b, 1000, 4, onPostgres(b))
}

// BenchmarkIngestHTTPBatch1000PostgresNATS is the same load with the
// ingest stream on NATS JetStream (a server in process, one replica, file
// storage in a temporary directory): acknowledgement waits for JetStream
// instead of the node's own fsync. The NATS server's CPU is in the
// process's figure, the database server's is not.
func BenchmarkIngestHTTPBatch1000PostgresNATS(b *testing.B) {
	benchIngest(b, 1000, 4, onNATS(b))
}

// BenchmarkIngestHTTPBatch1000ThreeReplicas is
// BenchmarkIngestHTTPBatch1000PostgresNATS on a three-server JetStream
// cluster (in process) with three replicas: acknowledgement waits for a
// majority of the servers.
func BenchmarkIngestHTTPBatch1000ThreeReplicas(b *testing.B) {
	benchIngest(b, 1000, 4, onNATSCluster(b))
}

// BenchmarkIngestHTTPBatch1000ThreeNodes is the same load on a cluster: the
// three-server JetStream cluster, PostgreSQL, and three Vigil nodes in this
// process — the active one and two standbys, which forward the requests
// they receive to it, each running its share of the detection units
// (partitioned detection, the default). The clients are spread over the
// three nodes as a load balancer would spread them. Timing starts once
// the units have settled, each node running its share.
func BenchmarkIngestHTTPBatch1000ThreeNodes(b *testing.B) { benchThreeNodes(b, onNATSCluster(b)) }

// BenchmarkIngestHTTPBatch1000ThreeNodesUnpartitioned is
// BenchmarkIngestHTTPBatch1000ThreeNodes with detect.partitioned off: the
// active node runs all of detection and storage.
func BenchmarkIngestHTTPBatch1000ThreeNodesUnpartitioned(b *testing.B) {
	on := onNATSCluster(b)
	benchThreeNodes(b, func(c *config.Config) { on(c); c.Detect.Partitioned = false })
}

func benchThreeNodes(b *testing.B, edit func(*config.Config)) {
	active, key := benchNode(b, edit)
	urls := []string{active.url, benchStandby(b, key, edit), benchStandby(b, key, edit)}
	cfg := config.Default()
	edit(&cfg)
	for deadline := time.Now().Add(2 * time.Minute); cfg.Detect.Partitioned; time.Sleep(100 * time.Millisecond) {
		st, err := app.Cluster(context.Background(), cfg, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		per, held := map[string]int{}, 0
		for _, u := range st.Units {
			if u.Held {
				per[u.Holder]++
				held++
			}
		}
		if len(per) == 3 && held == len(st.Units) && slices.Max(slices.Collect(maps.Values(per))) <= (held+2)/3 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the detection units did not settle on the three nodes: %v", per)
		}
	}
	benchIngestOn(b, active, key, urls, 1000, 4)
}

// onNATSCluster is onNATS with a three-server JetStream cluster and three
// replicas.
func onNATSCluster(b *testing.B) func(*config.Config) {
	nc := natstest.NewCluster(b, 3)
	pg := onPostgres(b)
	n := natsStreams.Add(1)
	return func(c *config.Config) {
		pg(c)
		c.Stream.Driver = "nats"
		c.Stream.NATS.URL, c.Stream.NATS.Replicas = nc.URL(), 3
		c.Stream.NATS.Name = fmt.Sprintf("APPBENCH_%d", n)
		c.Stream.NATS.Subject = fmt.Sprintf("appbench%d.events", n)
	}
}

// benchStandby starts a standby node and returns its URL once it forwards
// requests to the active node.
func benchStandby(b *testing.B, key string, edit func(*config.Config)) string {
	b.Helper()
	cfg := config.Default()
	edit(&cfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cfg.Server.Addr = l.Addr().String()
	l.Close()
	cfg.Storage.SQLite.Dir = b.TempDir()
	cfg.Log.Level = "error"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := app.New(ctx, cfg, app.Options{Stderr: io.Discard})
		done <- err // nil only if it became active, which it must not here
	}()
	b.Cleanup(func() { cancel(); <-done })
	url := "http://" + cfg.Server.Addr
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the standby did not start forwarding within a minute")
		}
		// An events:write key may not search: a 403 comes from the
		// active node, through the standby.
		req, _ := http.NewRequest("GET", url+"/v1/events?limit=1", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusForbidden {
			return url
		}
	}
}

// BenchmarkIngestHTTPSingle64 measures single-event requests from 64
// concurrent clients (concurrent requests share group commits).
func BenchmarkIngestHTTPSingle64(b *testing.B) {
	benchIngest(b, 1, 64)
}

// BenchmarkIngestHTTPSingleSteady measures the CPU a node spends per event
// when single-event requests arrive at a steady 1,000 per second (16
// clients, each paced), far below what it can take: the load of a typical
// SaaS sending each audit event as it happens. It runs with the pipeline's
// default ingest.batch_linger and with none, and reports the process's CPU
// (server, pipeline and the clients) per event, from the first request
// until every event is stored.
func BenchmarkIngestHTTPSingleSteady(b *testing.B) {
	for _, linger := range []time.Duration{0, config.Default().Ingest.BatchLinger} {
		b.Run(fmt.Sprint("linger=", linger), func(b *testing.B) {
			n, key := benchNode(b, func(c *config.Config) { c.Ingest.BatchLinger = linger })
			const clients, rate = 16, 1000
			at := time.Now().Add(-time.Hour)
			bodies := make([][]byte, b.N)
			for i := range bodies {
				var buf bytes.Buffer
				benchEvent(&buf, i, at.Add(time.Duration(i)*time.Millisecond))
				bodies[i] = buf.Bytes()
			}
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
			var next, failed atomic.Int64
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			var wg sync.WaitGroup
			for range clients {
				wg.Go(func() {
					tick := time.NewTicker(time.Second * clients / rate)
					defer tick.Stop()
					for range tick.C {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						if err := postBody(hc, n.url+"/v1/events", key, bodies[i], true); err != nil {
							failed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			waitCommitted(b, n)
			b.StopTimer()
			if f := failed.Load(); f > 0 {
				b.Fatalf("%d requests failed", f)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1000/float64(b.N), "cpu-µs/event")
		})
	}
}

func benchIngest(b *testing.B, batch, clients int, edit ...func(*config.Config)) {
	n, key := benchNode(b, edit...)
	benchIngestOn(b, n, key, []string{n.url}, batch, clients)
}

// benchIngestOn sends the load through urls (client i to urls[i%len]) and
// measures it on n, the node that stores it.
func benchIngestOn(b *testing.B, n *node, key string, urls []string, batch, clients int) {
	at := time.Now().Add(-time.Hour)
	// Pre-encode bodies so the client side costs little.
	const bodies = 64
	var pre [][]byte
	for i := range bodies {
		var buf bytes.Buffer
		for j := range batch {
			benchEvent(&buf, i*batch+j, at)
		}
		pre = append(pre, buf.Bytes())
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	requests := max(1, b.N/batch)
	var next atomic.Int64
	var failed atomic.Int64
	b.SetBytes(int64(len(pre[0]) / batch))
	b.ResetTimer()
	start := time.Now()
	cpu0 := cpuTime()
	var wg sync.WaitGroup
	for c := range clients {
		url := urls[c%len(urls)] + "/v1/events"
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(requests) {
					return
				}
				if err := postBody(hc, url, key, pre[i%bodies], true); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	ack := time.Since(start)
	ackCPU := cpuTime() - cpu0
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d requests failed", f)
	}
	total := requests * batch
	b.ReportMetric(float64(total)/ack.Seconds(), "acked_events/s")
	b.ReportMetric(float64(ackCPU.Nanoseconds())/1000/float64(requests), "ack_cpu-µs/request")
	// Wait for the pipeline to store everything, for the end-to-end rate.
	waitCommitted(b, n)
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "stored_events/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1000/float64(total), "stored_cpu-µs/event")
	if sz, err := n.app.Stores().DiskSize(); err == nil {
		b.ReportMetric(float64(sz)/float64(total), "disk_bytes/event")
	}
}

// waitCommitted waits until n's pipeline has committed every event
// appended to its stream, which it does once they are stored and a
// checkpoint covers them.
func waitCommitted(b *testing.B, n *node) {
	b.Helper()
	st := n.app.Stores().Stream.(audit.StreamStats)
	for {
		last, committed, err := st.Backlog(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if committed >= last {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cpuTime is the process's user+system CPU time: server, pipeline and the
// load-generating clients together (they share the process). Per request
// it is steadier than the wall-clock rates on a shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
