package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/ingest"
	"github.com/vigilhq/vigil/internal/natsstream"
	"github.com/vigilhq/vigil/internal/natsstream/natstest"
)

var natsStreams atomic.Int64

// onNATS puts a node on the PostgreSQL store with its ingest stream on a
// real NATS JetStream server started for the test, in a stream of its own.
func onNATS(t testing.TB) func(*config.Config) {
	t.Helper()
	pg := onPostgres(t)
	srv := natstest.Server(t)
	n := natsStreams.Add(1)
	return func(c *config.Config) {
		pg(c)
		c.Stream.Driver = "nats"
		c.Stream.NATS.URL = srv.URL()
		c.Stream.NATS.Name = fmt.Sprintf("APPTEST_%d", n)
		c.Stream.NATS.Subject = fmt.Sprintf("apptest%d.events", n)
	}
}

// TestEndToEndIngestAndSearchNATS is TestEndToEndIngestAndSearch with the
// ingest stream on NATS JetStream and the store on PostgreSQL.
func TestEndToEndIngestAndSearchNATS(t *testing.T) { testEndToEndIngestAndSearch(t, onNATS(t)) }

// TestNATSStreamOutlivesTheNode: events accepted into the JetStream stream
// while no node processes it (here by a second ingest service, as another
// node's ingest API would) are stored by the next node to serve, even one
// on a new machine (an empty storage.sqlite.dir), each once, duplicates
// included.
func TestNATSStreamOutlivesTheNode(t *testing.T) {
	nats := onNATS(t)
	firstDir := t.TempDir()
	n := startNode(t, nats, func(c *config.Config) { c.Storage.SQLite.Dir = firstDir })
	c, key := n.tenantClient(t, "acme")
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	if _, err := c.Send(t.Context(), login("alice", "198.51.100.7", at)); err != nil {
		t.Fatal(err)
	}
	waitForEvents(t, c, client.SearchParams{Actor: "alice"}, 1)
	n.stop(t)

	// Another node's ingest path appends to the stream while none serves.
	cfg := config.Default()
	nats(&cfg)
	nc := cfg.Stream.NATS
	stream, err := natsstream.Open(t.Context(), natsstream.Options{URL: nc.URL, Name: nc.Name, Subject: nc.Subject, Partitions: nc.Partitions})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := ingest.New(ingest.Options{Stream: stream, TenantExists: func(context.Context, string) (bool, error) { return true, nil }})
	if err != nil {
		t.Fatal(err)
	}
	var body []string
	for i := range 40 {
		body = append(body, fmt.Sprintf(`{"id":"stuff-%d","action":"auth.login.failure","reason":"invalid_password","time":%q,
			"actor":{"id":"user%d@example.com"},"context":{"ip":"203.0.113.77","user_agent":"python-requests/2.31"}}`,
			i, at.Add(time.Duration(i)*time.Second).Format(time.RFC3339), i))
	}
	items, err := ingest.Decode([]byte("["+strings.Join(body, ",")+"]"), ingest.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	p := audit.Principal{KeyID: "k", Tenant: "acme", Scopes: []audit.Scope{audit.ScopeEventsWrite}}
	res, err := svc.Ingest(t.Context(), p, items)
	if err != nil || res.Accepted != 40 {
		t.Fatalf("ingest into the stream: %+v, %v", res, err)
	}
	// A client retry of half of them is answered as duplicates.
	items, _ = ingest.Decode([]byte("["+strings.Join(body[:20], ",")+"]"), ingest.FormatJSON)
	if res, err = svc.Ingest(t.Context(), p, items); err != nil || res.Duplicates != 20 {
		t.Fatalf("retry: %+v, %v; want 20 duplicates", res, err)
	}
	_ = stream.Close()

	next := config.Default()
	nats(&next)
	next.Storage.SQLite.Dir = t.TempDir() // a new machine, with the cluster's keys
	copyNodeKeys(t, firstDir, next.Storage.SQLite.Dir)
	_, base, _ := runApp(t, withAddr(next))
	c2, err := client.New(base, client.WithAPIKey(key))
	if err != nil {
		t.Fatal(err)
	}
	got := waitForEvents(t, c2, client.SearchParams{Action: "auth.login.failure"}, 40)
	seen := map[string]bool{}
	for _, e := range got {
		if seen[e.ID] {
			t.Fatalf("event %s stored twice", e.ID)
		}
		seen[e.ID] = true
	}
	waitForEvents(t, c2, client.SearchParams{Actor: "alice"}, 1)
}

// TestActiveStandbyFailover: two nodes on one schema and one NATS stream.
// The second waits as a standby (alive, not ready, refusing requests with
// who is active) until the first loses its node lock — here its lock
// connection is killed while the node does not look, as a network
// partition or a long pause would — then takes over from the last
// checkpoint. The first, still running, reads the new node's events from
// the stream; its checkpoint is fenced and it stops. Every event, accepted
// by either node, is stored once, and `vigil cluster status` names the new
// active node.
func TestActiveStandbyFailover(t *testing.T) {
	nats := onNATS(t)
	aDir := t.TempDir()
	a := startNode(t, nats, func(c *config.Config) {
		// A long readiness interval: this node does not check its lock
		// during the test, as a paused process would not; it finds out
		// at its next checkpoint.
		c.Server.NodeName, c.Server.ReadyInterval, c.Storage.SQLite.Dir = "node-a", time.Hour, aDir
		// The active node runs all of detection (partitioned detection has
		// its own test): its pipeline is what finds out it was replaced.
		c.Detect.Partitioned = false
	})
	ca, key := a.tenantClient(t, "acme")
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	var first []client.Event
	for i := range 20 {
		e := login(fmt.Sprintf("user%d", i), "198.51.100.7", at.Add(time.Duration(i)*time.Second))
		e.ID = fmt.Sprintf("a-%d", i)
		first = append(first, e)
	}
	if _, err := ca.Send(t.Context(), first...); err != nil {
		t.Fatal(err)
	}
	waitForEvents(t, ca, client.SearchParams{Action: "auth.login.success"}, 20)

	// The standby: app.New returns only once it is active.
	bcfg := config.Default()
	nats(&bcfg)
	bcfg.Storage.SQLite.Dir = t.TempDir()
	copyNodeKeys(t, aDir, bcfg.Storage.SQLite.Dir)
	bcfg.Server.Addr = freeAddr(t)
	bcfg.Server.NodeName = "node-b"
	bcfg.Detect.Partitioned = false
	bcfg.Log.Level = "error"
	type started struct {
		app *app.App
		err error
	}
	bNew := make(chan started, 1)
	bctx, bcancel := context.WithCancel(context.Background())
	defer bcancel()
	go func() {
		b, err := app.New(bctx, bcfg, app.Options{Stderr: io.Discard})
		bNew <- started{b, err}
	}()
	bURL := "http://" + bcfg.Server.Addr
	waitFor(t, "the standby to listen", func() bool {
		resp, err := http.Get(bURL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if status, body := raw(t, "GET", bURL+"/readyz", "", ""); status != http.StatusServiceUnavailable || string(body) != "{\"ready\":false,\"role\":\"standby\"}\n" {
		t.Fatalf("standby /readyz = %d %s, want 503 saying standby", status, body)
	}
	// The standby forwards requests to the active node once its heartbeat
	// names it; one already forwarded is not passed on again.
	waitFor(t, "the standby to forward to the active node", func() bool {
		status, _ := raw(t, "POST", bURL+"/v1/events", key, `{"id":"via-standby","action":"auth.password.changed","actor":{"id":"u1"},"time":"`+at.Format(time.RFC3339)+`"}`)
		return status == http.StatusAccepted
	})
	if got := waitForEvents(t, ca, client.SearchParams{Actor: "u1"}, 1); got[0].ID != "via-standby" {
		t.Fatalf("the event sent to the standby: %+v", got)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", bURL+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Vigil-Forwarded-By", "node-c")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "node node-a") {
			t.Fatalf("a forwarded request on the standby = %d %s, want 503 naming node-a", resp.StatusCode, b)
		}
	}
	select {
	case s := <-bNew:
		t.Fatalf("the standby became active while the first node runs: %v", s.err)
	default:
	}
	waitFor(t, "both nodes' heartbeats", func() bool {
		st, err := app.Cluster(t.Context(), bcfg, time.Now())
		return err == nil && st.Active == "node-a" && len(st.Nodes) == 2
	})

	// The first node loses its lock.
	killNodeLock(t, bcfg.Storage.Postgres)
	var b started
	select {
	case b = <-bNew:
	case <-time.After(60 * time.Second):
		t.Fatal("the standby did not take over within 60s")
	}
	if b.err != nil {
		t.Fatal(b.err)
	}
	bDone := make(chan error, 1)
	go func() { bDone <- b.app.Run(bctx) }()
	defer func() {
		bcancel()
		if err := <-bDone; err != nil {
			t.Errorf("node b: %v", err)
		}
	}()
	waitFor(t, "the new active node ready, saying so", func() bool {
		status, body := raw(t, "GET", bURL+"/readyz", "", "")
		return status == http.StatusOK && strings.Contains(string(body), `"role":"active"`) && strings.Contains(string(body), `"lag_events":`)
	})
	cb, err := client.New(bURL, client.WithAPIKey(key))
	if err != nil {
		t.Fatal(err)
	}
	var second []client.Event
	for i := range 20 {
		e := login(fmt.Sprintf("user%d", i), "198.51.100.8", at.Add(time.Minute+time.Duration(i)*time.Second))
		e.ID = fmt.Sprintf("b-%d", i)
		second = append(second, e)
	}
	// A client retry of the first batch answers duplicates on the new node.
	if res, err := cb.Send(t.Context(), append(second, first[:5]...)...); err != nil || res.Accepted != 20 || res.Duplicates != 5 {
		t.Fatalf("send to the new active node: %+v, %v; want 20 accepted, 5 duplicates", res, err)
	}
	// The first node, still running, reads these events from the stream
	// too; its checkpoint is refused, and it stops.
	waitFor(t, "the first node to stop", func() bool {
		select {
		case err := <-a.done():
			if !errors.Is(err, audit.ErrFenced) {
				t.Errorf("the first node stopped with %v, want ErrFenced", err)
			}
			return true
		default:
			return false
		}
	})
	all := waitForEvents(t, cb, client.SearchParams{Action: "auth.login.success"}, 40)
	seen := map[string]bool{}
	for _, e := range all {
		if seen[e.ID] {
			t.Fatalf("event %s stored twice", e.ID)
		}
		seen[e.ID] = true
	}
	waitFor(t, "cluster status to name the new active node", func() bool {
		st, err := app.Cluster(t.Context(), bcfg, time.Now())
		return err == nil && st.Active == "node-b" && st.Stream != nil
	})
}

// freeAddr is a free 127.0.0.1 address for a node that must be reached
// before app.New returns (a standby).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// killNodeLock ends the connection that holds the schema's node lock, as a
// network partition would.
func killNodeLock(t *testing.T, pc config.Postgres) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), pc.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 1
		AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)`, "vigil.node."+pc.Schema).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("terminated %d lock holders, want 1", n)
	}
}

// copyNodeKeys copies the keys every node of a schema must share (the
// webhook key and the integrity signing keys) from one data directory to
// another, as docs/cluster.md tells operators to.
func copyNodeKeys(t *testing.T, from, to string) {
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

// TestNodeKeysMustMatch: a node whose webhook key differs from the one the
// schema's nodes use refuses to become active, naming the file.
func TestNodeKeysMustMatch(t *testing.T) {
	nats := onNATS(t)
	n := startNode(t, nats)
	n.stop(t)
	cfg := config.Default()
	nats(&cfg)
	cfg.Storage.SQLite.Dir = t.TempDir() // fresh keys
	_, err := app.New(t.Context(), withAddr(cfg), app.Options{Stderr: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "webhook-key") || !strings.Contains(err.Error(), "differs") {
		t.Fatalf("a node with other keys: %v, want a refusal naming the webhook key", err)
	}
}
