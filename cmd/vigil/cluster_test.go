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
func startClusterNode(t *testing.T, bin, name, pgURL, schema, natsURL string, replicas int, dir string) *clusterNode {
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

// TestClusterKillMatchesSingleNode is the scale-out acceptance on real
// processes: two `vigil serve` nodes on one PostgreSQL schema and a
// three-server JetStream cluster (three replicas). Mid-stream the active
// node is killed with SIGKILL and the NATS server leading the stream is
// stopped; the standby takes over, clients move to it, and the server
// comes back later. Every acknowledged event is stored, none twice, and
// the findings equal those of one uninterrupted node on the same events.
func TestClusterKillMatchesSingleNode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three NATS servers and three vigil processes")
	}
	bin := buildVigil(t)
	base := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	events := attackTraffic("acme", base)

	run := func(name, natsURL string, replicas int, hook func(nodes []*clusterNode) func(int)) ([]string, int) {
		pgURL, schema := pgtest.Schema(t)
		first := startClusterNode(t, bin, name+"-a", pgURL, schema, natsURL, replicas, t.TempDir())
		waitStatus(t, first.url+"/readyz", 200, 60*time.Second)
		op, err := os.ReadFile(filepath.Join(first.dir, app.BootstrapKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		opc, err := client.New(first.url, client.WithAPIKey(strings.TrimSpace(string(op))))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := opc.CreateTenant(t.Context(), client.CreateTenantRequest{ID: "acme"}); err != nil {
			t.Fatal(err)
		}
		ck, err := opc.CreateKey(t.Context(), client.CreateKeyRequest{Tenant: "acme", Name: "test", Scopes: []string{"admin"}})
		if err != nil {
			t.Fatal(err)
		}
		key := string(ck.Secret)
		nodes := []*clusterNode{first}
		urls := []string{first.url}
		if hook != nil {
			dir := t.TempDir()
			copyKeys(t, first.dir, dir)
			second := startClusterNode(t, bin, name+"-b", pgURL, schema, natsURL, replicas, dir)
			waitStatus(t, second.url+"/healthz", 200, 60*time.Second)
			nodes = append(nodes, second)
			urls = append(urls, second.url)
		}
		var h func(int)
		if hook != nil {
			h = hook(nodes)
		}
		sendAll(t, key, urls, events, h)
		// Read from whichever node is active now.
		var c *client.Client
		active := -1
		for i, n := range nodes {
			if st, _, err := get(n.url + "/readyz"); err == nil && st == 200 {
				c, _ = client.New(n.url, client.WithAPIKey(key))
				active = i
			}
		}
		if active != len(nodes)-1 {
			t.Fatalf("%s: node %d is active after the traffic, want node %d", name, active, len(nodes)-1)
		}
		stored := 0
		deadline := time.Now().Add(90 * time.Second)
		for {
			seen := map[string]bool{}
			stored = 0
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
			if stored == len(events) || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		return findingsOf(t, c), stored
	}

	single := natstest.Server(t)
	want, n := run("single", single.URL(), 1, nil)
	if n != len(events) {
		t.Fatalf("the single node stored %d of %d events", n, len(events))
	}
	if len(want) == 0 {
		t.Fatal("the single node raised no finding: the scenario tests nothing")
	}

	cluster := natstest.NewCluster(t, 3)
	var stoppedNATS *natstest.Node
	got, n := run("cluster", cluster.URL(), 3, func(nodes []*clusterNode) func(int) {
		return func(b int) {
			switch b {
			case 4:
				nodes[0].kill() // the active node, mid-stream
			case 6:
				stoppedNATS = cluster.Nodes[0]
				stoppedNATS.Stop() // one of the three NATS servers
			case 12:
				stoppedNATS.Start()
			}
		}
	})
	if n != len(events) {
		t.Fatalf("the cluster stored %d of %d acknowledged events", n, len(events))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("findings differ from the single node's:\nsingle:\n%s\ncluster:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
	t.Logf("%d events, %d findings, equal to the single node's", len(events), len(got))
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
