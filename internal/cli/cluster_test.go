package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/natsstream/natstest"
	"github.com/vigilhq/vigil/internal/postgres/pgtest"
)

// TestClusterStatus runs `vigil cluster status` against a schema with one
// active node on PostgreSQL and NATS, then against one with none.
func TestClusterStatus(t *testing.T) {
	url, schema := pgtest.Schema(t)
	srv := natstest.Server(t)
	env := map[string]string{
		"VIGIL_STORAGE_DRIVER":          "postgres",
		"VIGIL_STORAGE_POSTGRES_URL":    url,
		"VIGIL_STORAGE_POSTGRES_SCHEMA": schema,
		"VIGIL_STREAM_DRIVER":           "nats",
		"VIGIL_STREAM_NATS_URL":         srv.URL(),
		"VIGIL_STREAM_NATS_NAME":        "CLI_STATUS",
		"VIGIL_STREAM_NATS_SUBJECT":     "clistatus.events",
	}
	if r := run(t, env, "", "migrate"); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}
	// Before any node: nothing active, exit 1, and the stream is not there.
	r := run(t, env, "", "cluster", "status")
	if r.code != 1 || !strings.Contains(r.stdout, "none has recorded a heartbeat") || !strings.Contains(r.stderr, "no active node") {
		t.Fatalf("cluster status with no node: %+v", r)
	}

	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Server.NodeName = "node-one"
	cfg.Storage.SQLite.Dir = t.TempDir()
	cfg.Log.Level = "error"
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.Options{Stderr: io.Discard})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	deadline := time.Now().Add(30 * time.Second)
	for {
		r = run(t, env, "", "cluster", "status")
		if r.code == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	row := regexp.MustCompile(`(?m)^\s+node-one\s+http://127\.0\.0\.1:\d+\s+active\s+\d+\s+\d+\s+\d+s ago`)
	if r.code != 0 || !row.MatchString(r.stdout) || !strings.Contains(r.stdout, "Ingest stream CLI_STATUS on NATS JetStream: 1 replica(s)") {
		t.Fatalf("cluster status with an active node: %+v", r)
	}
	r = run(t, env, "", "cluster", "status", "--json")
	var st app.ClusterStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
		t.Fatalf("cluster status --json: %v %+v", err, r)
	}
	if st.Active != "node-one" || len(st.Nodes) != 1 || st.Stream == nil || st.Stream.Name != "CLI_STATUS" {
		t.Fatalf("cluster status --json = %+v", st)
	}

	// The embedded store has no cluster.
	r = run(t, map[string]string{"VIGIL_STORAGE_SQLITE_DIR": t.TempDir()}, "", "cluster", "status")
	if r.code != 1 || !strings.Contains(r.stderr, "needs storage.driver postgres") {
		t.Fatalf("cluster status on the embedded store: %+v", r)
	}
}
