package main_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/natsstream"
	"github.com/vigilhq/vigil/internal/natsstream/natstest"
	"github.com/vigilhq/vigil/internal/postgres/pgtest"
)

// clusterNode is one `vigil serve` process of a test cluster.
type clusterNode struct {
	cmd  *exec.Cmd
	url  string
	dir  string
	logs *os.File
}

func freeLoopback(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startClusterNode runs `vigil serve` on PostgreSQL schema and the NATS
// stream; it does not wait (a standby answers only /healthz).
func startClusterNode(t *testing.T, bin, name, pgURL, schema, natsURL string, replicas int, dir string, env ...string) *clusterNode {
	t.Helper()
	addr := freeLoopback(t)
	logs, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--addr", addr)
	cmd.Env = append(os.Environ(), "VIGIL_LOG_FORMAT=json", "VIGIL_LOG_LEVEL=info",
		"VIGIL_STORAGE_DRIVER=postgres", "VIGIL_STORAGE_POSTGRES_URL="+pgURL, "VIGIL_STORAGE_POSTGRES_SCHEMA="+schema,
		"VIGIL_STORAGE_POSTGRES_AUTO_MIGRATE=true", "VIGIL_STORAGE_SQLITE_DIR="+dir,
		"VIGIL_STREAM_DRIVER=nats", "VIGIL_STREAM_NATS_URL="+natsURL, fmt.Sprintf("VIGIL_STREAM_NATS_REPLICAS=%d", replicas),
		"VIGIL_STREAM_NATS_NAME=VIGIL_"+strings.ToUpper(schema), "VIGIL_STREAM_NATS_SUBJECT="+schema+".events",
		"VIGIL_SERVER_NODE_NAME="+name, "VIGIL_STREAM_NATS_MAX_BYTES=64MiB")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &clusterNode{cmd: cmd, url: "http://" + addr, dir: dir, logs: logs}
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("%s log (tail):\n%s", name, tail(string(b), 3000))
		}
	})
	return n
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (n *clusterNode) kill() {
	if n.cmd.ProcessState == nil {
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
		_ = n.cmd.Wait()
	}
}

// waitStatus polls path until it answers want.
func waitStatus(t *testing.T, url string, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if st, _, err := get(url); err == nil && st == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %d within %s", url, want, within)
}

func get(url string) (int, []byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// attackTraffic is a small account-takeover scenario: accounts logging in
// normally, a credential-stuffing IP trying many accounts (a few work),
// and a brute force against one account that ends in a success, spread
// over half an hour an hour ago.
func attackTraffic(tenant string, base time.Time) []client.Event {
	var out []client.Event
	at := func(i int) time.Time { return base.Add(time.Duration(i) * 3 * time.Second) }
	i := 0
	for u := range 30 {
		for k := range 3 {
			out = append(out, client.Event{ID: fmt.Sprintf("ok-%d-%d", u, k), Action: "auth.login.success", Time: at(i),
				Actor: client.Actor{ID: fmt.Sprintf("user%d@example.com", u)},
				Context: client.Context{IP: fmt.Sprintf("198.51.100.%d", 10+u), UserAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
					AuthMethod: "password", SessionID: fmt.Sprintf("s-%d-%d", u, k)}})
			i++
		}
	}
	for a := range 120 {
		e := client.Event{ID: fmt.Sprintf("cs-%d", a), Action: "auth.login.failure", Reason: "invalid_password", Time: at(i),
			Actor:   client.Actor{ID: fmt.Sprintf("victim%d@example.com", a)},
			Context: client.Context{IP: "203.0.113.50", UserAgent: "python-requests/2.31.0"}}
		if a%40 == 39 {
			e.Action, e.Reason = "auth.login.success", ""
			e.Context.AuthMethod, e.Context.SessionID = "password", fmt.Sprintf("cs-s-%d", a)
		}
		out = append(out, e)
		i++
	}
	for k := range 25 {
		out = append(out, client.Event{ID: fmt.Sprintf("bf-%d", k), Action: "auth.login.failure", Reason: "invalid_password", Time: at(i),
			Actor: client.Actor{ID: "user3@example.com"}, Context: client.Context{IP: "192.0.2.77", UserAgent: "curl/8.5.0"}})
		i++
	}
	out = append(out, client.Event{ID: "bf-win", Action: "auth.login.success", Time: at(i), Actor: client.Actor{ID: "user3@example.com"},
		Context: client.Context{IP: "192.0.2.77", UserAgent: "curl/8.5.0", AuthMethod: "password", SessionID: "bf-s"}})
	for j := range out {
		out[j].Tenant = tenant
	}
	return out
}

// findingsOf lists a tenant's findings in a comparable form, waiting until
// two reads a few seconds apart agree (detection has settled).
func findingsOf(t *testing.T, c *client.Client) []string {
	t.Helper()
	read := func() []string {
		var out []string
		for f, err := range c.Findings(t.Context(), client.FindingParams{}) {
			if err != nil {
				return nil
			}
			ev := slices.Clone(f.Evidence)
			slices.Sort(ev)
			out = append(out, fmt.Sprintf("%s %s %s sev=%s score=%d count=%d evidence=%v", f.ID, f.RuleID, f.GroupKey, f.Severity, f.Score, f.Count, ev))
		}
		slices.Sort(out)
		return out
	}
	deadline := time.Now().Add(90 * time.Second)
	prev := read()
	for {
		time.Sleep(3 * time.Second)
		cur := read()
		if len(cur) > 0 && slices.Equal(prev, cur) {
			return cur
		}
		if time.Now().After(deadline) {
			t.Fatalf("findings did not settle: %d then %d", len(prev), len(cur))
		}
		prev = cur
	}
}

// sendAll sends events in batches of 25 through the first node of urls
// that takes them, moving on to the next when one fails (a dead node, a
// standby), as a client behind a load balancer would see it; before each
// batch, hook may act (kill a node, a NATS server).
func sendAll(t *testing.T, key string, urls []string, events []client.Event, hook func(batch int)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	clients := make([]*client.Client, len(urls))
	for i, u := range urls {
		c, err := client.New(u, client.WithAPIKey(key), client.WithRetry(2, 100*time.Millisecond, time.Second))
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	at := 0
	for b := 0; b*25 < len(events); b++ {
		if hook != nil {
			hook(b)
		}
		batch := events[b*25 : min(len(events), (b+1)*25)]
		for {
			if _, err := clients[at].Send(ctx, batch...); err == nil {
				break
			} else if ctx.Err() != nil {
				t.Fatalf("batch %d: %v", b, err)
			}
			at = (at + 1) % len(clients)
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// clusterTenants are the tenants of the cluster test: their events fall
// in four different partitions of the stream's sixteen.
var clusterTenants = []string{"acme", "globex", "initech", "umbrella"}

// TestClusterKillMatchesSingleNode is the scale-out acceptance on real
// processes: three `vigil serve` nodes on one PostgreSQL schema and a
// three-server JetStream cluster (three replicas), detection partitioned
// over the nodes. Four tenants send an account-takeover scenario each.
// Mid-stream the active node, which also runs its share of the detection
// units, is killed with SIGKILL and one NATS server is stopped; the other
// nodes take its units over from their checkpoints, clients move to them,
// and the server comes back later. Every acknowledged event is stored,
// none twice, and every tenant's findings equal those of one uninterrupted
// node running all of detection (detect.partitioned off) on the same
// events.
func TestClusterKillMatchesSingleNode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three NATS servers and four vigil processes")
	}
	bin := buildVigil(t)
	base := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	// The tenants' scenarios interleaved, as one client stream.
	var events []client.Event
	per := [][]client.Event{}
	for _, tn := range clusterTenants {
		per = append(per, attackTraffic(tn, base))
	}
	for i := 0; len(events) < len(per)*len(per[0]); i++ {
		for _, evs := range per {
			if i < len(evs) {
				events = append(events, evs[i])
			}
		}
	}

	type result struct {
		findings map[string][]string
		stored   int
		status   *app.ClusterStatus
	}
	run := func(name, natsURL string, replicas, nodes int, env []string, hook func(cfg config.Config, nodes []*clusterNode) func(int)) result {
		pgURL, schema := pgtest.Schema(t)
		first := startClusterNode(t, bin, name+"-1", pgURL, schema, natsURL, replicas, t.TempDir(), env...)
		waitStatus(t, first.url+"/readyz", 200, 60*time.Second)
		op, err := os.ReadFile(filepath.Join(first.dir, app.BootstrapKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		opKey := strings.TrimSpace(string(op))
		opc, err := client.New(first.url, client.WithAPIKey(opKey))
		if err != nil {
			t.Fatal(err)
		}
		keys := map[string]string{}
		for _, tn := range clusterTenants {
			if _, err := opc.CreateTenant(t.Context(), client.CreateTenantRequest{ID: tn}); err != nil {
				t.Fatal(err)
			}
			ck, err := opc.CreateKey(t.Context(), client.CreateKeyRequest{Tenant: tn, Name: "test", Scopes: []string{"admin"}})
			if err != nil {
				t.Fatal(err)
			}
			keys[tn] = string(ck.Secret)
		}
		all := []*clusterNode{first}
		urls := []string{first.url}
		for i := 2; i <= nodes; i++ {
			dir := t.TempDir()
			copyKeys(t, first.dir, dir)
			n := startClusterNode(t, bin, fmt.Sprintf("%s-%d", name, i), pgURL, schema, natsURL, replicas, dir, env...)
			waitStatus(t, n.url+"/healthz", 200, 60*time.Second)
			all = append(all, n)
			urls = append(urls, n.url)
		}
		cfg := clusterConfig(pgURL, schema, natsURL)
		if nodes > 1 {
			// Before the traffic, every node runs a share of the units.
			waitCluster(t, cfg, "the detection units spread over the nodes", func(st *app.ClusterStatus) bool {
				return len(unitsByNode(st)) == nodes
			})
		}
		var h func(int)
		if hook != nil {
			h = hook(cfg, all)
		}
		sendAll(t, opKey, urls, events, h)
		// Read through whichever node is active now.
		var active *clusterNode
		for _, n := range all {
			if st, _, err := get(n.url + "/readyz"); err == nil && st == 200 {
				active = n
			}
		}
		if active == nil {
			t.Fatalf("%s: no node is active after the traffic", name)
		}
		res := result{findings: map[string][]string{}}
		for _, tn := range clusterTenants {
			c, err := client.New(active.url, client.WithAPIKey(keys[tn]))
			if err != nil {
				t.Fatal(err)
			}
			res.stored += storedOnce(t, name, c, len(per[0]))
			res.findings[tn] = findingsOf(t, c)
		}
		if nodes > 1 {
			st, err := app.Cluster(t.Context(), cfg, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			res.status = st
		}
		return res
	}

	single := natstest.Server(t)
	want := run("single", single.URL(), 1, 1, []string{"VIGIL_DETECT_PARTITIONED=false"}, nil)
	if want.stored != len(events) {
		t.Fatalf("the single node stored %d of %d events", want.stored, len(events))
	}
	for _, tn := range clusterTenants {
		if len(want.findings[tn]) == 0 {
			t.Fatalf("the single node raised no finding for %s: the scenario tests nothing", tn)
		}
	}

	cluster := natstest.NewCluster(t, 3)
	var stoppedNATS *natstest.Node
	killed := map[string]bool{}
	tenantUnits := map[string]bool{}
	for _, tn := range clusterTenants {
		tenantUnits[fmt.Sprintf("p%d", natsstream.Partition(tn, 16))] = true
	}
	got := run("cluster", cluster.URL(), 3, 3, nil, func(cfg config.Config, nodes []*clusterNode) func(int) {
		byName := map[string]*clusterNode{}
		for i, n := range nodes {
			byName[fmt.Sprintf("cluster-%d", i+1)] = n
		}
		status := func() *app.ClusterStatus {
			st, err := app.Cluster(t.Context(), cfg, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
		return func(b int) {
			switch b {
			case 8:
				// The node running most of the tenants' units, mid-stream.
				victim, most := "", -1
				for node, units := range unitsByNode(status()) {
					n := 0
					for _, u := range units {
						if tenantUnits[u] {
							n++
						}
					}
					if n > most || (n == most && node < victim) {
						victim, most = node, n
					}
				}
				t.Logf("killing %s, which runs %d of the tenants' units", victim, most)
				if most < 1 {
					t.Fatalf("no node runs a tenant's unit: %v", unitsByNode(status()))
				}
				byName[victim].kill()
				killed[victim] = true
			case 12:
				stoppedNATS = cluster.Nodes[0]
				stoppedNATS.Stop() // one of the three NATS servers
			case 16:
				// Then the active node, if it still runs: one node is left,
				// with every unit.
				if active := status().Active; active != "" && !killed[active] {
					t.Logf("killing the active node %s", active)
					byName[active].kill()
					killed[active] = true
				}
			case 20:
				stoppedNATS.Start()
			}
		}
	})
	if got.stored != len(events) {
		t.Fatalf("the cluster stored %d of %d acknowledged events", got.stored, len(events))
	}
	for _, tn := range clusterTenants {
		if !slices.Equal(got.findings[tn], want.findings[tn]) {
			t.Errorf("%s: findings differ from the single node's:\nsingle:\n%s\ncluster:\n%s", tn,
				strings.Join(want.findings[tn], "\n"), strings.Join(got.findings[tn], "\n"))
		}
	}
	// The killed nodes' units run on the survivors now.
	by := unitsByNode(got.status)
	n := 0
	for node, units := range by {
		if killed[node] {
			t.Errorf("killed node %s still runs units %v", node, units)
		}
		n += len(units)
	}
	if n != 17 {
		t.Errorf("%d units run after the kills, want all 17: %v", n, by)
	}
	t.Logf("%d events of %d tenants, findings equal to the single node's; units now: %v", len(events), len(clusterTenants), by)
}

// clusterConfig is the configuration `vigil cluster status` needs.
func clusterConfig(pgURL, schema, natsURL string) config.Config {
	cfg := config.Default()
	cfg.Storage.Driver, cfg.Storage.Postgres.URL, cfg.Storage.Postgres.Schema = "postgres", pgURL, schema
	cfg.Stream.Driver, cfg.Stream.NATS.URL = "nats", natsURL
	cfg.Stream.NATS.Name, cfg.Stream.NATS.Subject = "VIGIL_"+strings.ToUpper(schema), schema+".events"
	return cfg
}

// waitCluster polls the cluster's status until ok says so.
func waitCluster(t *testing.T, cfg config.Config, what string, ok func(*app.ClusterStatus) bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, err := app.Cluster(t.Context(), cfg, time.Now())
		if err == nil && ok(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 90s for %s: %+v, %v", what, st, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// unitsByNode lists the detection units each node runs.
func unitsByNode(st *app.ClusterStatus) map[string][]string {
	out := map[string][]string{}
	for _, u := range st.Units {
		if u.Held {
			out[u.Holder] = append(out[u.Holder], u.Name)
		}
	}
	return out
}

// storedOnce waits until the tenant's n events are stored and fails on
// one stored twice; it returns how many are.
func storedOnce(t *testing.T, name string, c *client.Client, n int) int {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		seen := map[string]bool{}
		stored := 0
		for e, err := range c.Events(t.Context(), client.SearchParams{Limit: 500}) {
			if err != nil {
				break
			}
			if strings.HasPrefix(e.Action, "vigil.") {
				continue
			}
			if seen[e.ID] {
				t.Fatalf("%s: event %s stored twice", name, e.ID)
			}
			seen[e.ID] = true
			stored++
		}
		if stored == n || time.Now().After(deadline) {
			return stored
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// copyKeys copies the keys the nodes of a schema share (docs/cluster.md).
func copyKeys(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(from, app.WebhookKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(to, app.WebhookKeyFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(to, app.IntegrityDir), os.DirFS(filepath.Join(from, app.IntegrityDir))); err != nil {
		t.Fatal(err)
	}
}
