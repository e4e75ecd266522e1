package app_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
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
	n := startNode(t, nats)
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
	next.Storage.SQLite.Dir = t.TempDir() // a new machine
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
