// Package natstest runs real NATS servers with JetStream inside a test
// process, on 127.0.0.1: one server, or a cluster of them that a test can
// stop and restart one at a time. Their storage lives in the test's
// temporary directory, and every server is shut down when the test ends.
package natstest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Node is one NATS server.
type Node struct {
	t    testing.TB
	opts server.Options
	srv  *server.Server
}

// URL is the node's client URL.
func (n *Node) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port) }

// Running reports whether the node is up.
func (n *Node) Running() bool { return n.srv != nil }

// Stop shuts the server down, as a crash of its process would for its
// clients (its files stay; a restart recovers them).
func (n *Node) Stop() {
	n.t.Helper()
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}

// Start starts the server again on the same ports and storage.
func (n *Node) Start() {
	n.t.Helper()
	if n.srv != nil {
		return
	}
	opts := n.opts // the server keeps a pointer and fills in defaults
	srv, err := server.NewServer(&opts)
	if err != nil {
		n.t.Fatalf("natstest: new server %s: %v", n.opts.ServerName, err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		n.t.Fatalf("natstest: server %s did not come up", n.opts.ServerName)
	}
	n.srv = srv
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: pick a port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func newNode(t testing.TB, name, dir string) *Node {
	return &Node{t: t, opts: server.Options{
		ServerName:         name,
		Host:               "127.0.0.1",
		Port:               freePort(t),
		JetStream:          true,
		StoreDir:           dir,
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  1 << 40, // an accounting limit: each stream reserves its max_bytes
		NoLog:              true,
		NoSigs:             true,
	}}
}

// Server starts one JetStream server.
func Server(t testing.TB) *Node {
	t.Helper()
	n := newNode(t, "vigil-test", t.TempDir())
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

// Cluster is a JetStream cluster of servers routed to each other.
type Cluster struct {
	Nodes []*Node
}

// NewCluster starts a cluster of size servers and waits until it has
// elected a JetStream meta leader.
func NewCluster(t testing.TB, size int) *Cluster {
	t.Helper()
	c := &Cluster{}
	routePorts := make([]int, size)
	for i := range routePorts {
		routePorts[i] = freePort(t)
	}
	var routes []*url.URL
	for _, p := range routePorts {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	for i := range size {
		n := newNode(t, fmt.Sprintf("vigil-test-%d", i+1), t.TempDir())
		n.opts.Cluster = server.ClusterOpts{Name: "vigil-test", Host: "127.0.0.1", Port: routePorts[i]}
		n.opts.Routes = routes
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		n.Start()
		t.Cleanup(n.Stop)
	}
	c.WaitLeader(t)
	return c
}

// URL lists every node's client URL, comma-separated, as NATS clients take
// them.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// WaitLeader waits until a running node is the JetStream meta leader.
func (c *Cluster) WaitLeader(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range c.Nodes {
			if n.srv != nil && n.srv.JetStreamIsLeader() {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("natstest: the cluster elected no JetStream meta leader within 60s")
}
