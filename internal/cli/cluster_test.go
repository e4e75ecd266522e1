package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/natsstream"
	"github.com/vigilhq/vigil/internal/natsstream/natstest"
	"github.com/vigilhq/vigil/internal/postgres"
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
	// Detection is partitioned (the default): the node runs every unit.
	units := regexp.MustCompile(`(?m)^Detection units \(partitioned detection\):\n  node-one: installation \(epoch \d+\), p0 \(epoch \d+\), .*p9 \(epoch \d+\)$`)
	for deadline := time.Now().Add(30 * time.Second); !units.MatchString(r.stdout) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		r = run(t, env, "", "cluster", "status")
	}
	if !units.MatchString(r.stdout) || strings.Contains(r.stdout, "not running anywhere") {
		t.Fatalf("cluster status does not list node-one's 17 units: %+v", r)
	}

	// The embedded store has no cluster.
	r = run(t, map[string]string{"VIGIL_STORAGE_SQLITE_DIR": t.TempDir()}, "", "cluster", "status")
	if r.code != 1 || !strings.Contains(r.stderr, "needs storage.driver postgres") {
		t.Fatalf("cluster status on the embedded store: %+v", r)
	}
}

// TestProfilesRebuildPartitioned: with detection partitioned over a
// cluster, `vigil profiles rebuild` rebuilds each tenant's profiles in the
// state of its partition's detection unit, where that unit's engine reads
// them, and nowhere else.
func TestProfilesRebuildPartitioned(t *testing.T) {
	url, schema := pgtest.Schema(t)
	srv := natstest.Server(t)
	env := map[string]string{
		"VIGIL_STORAGE_DRIVER": "postgres", "VIGIL_STORAGE_POSTGRES_URL": url, "VIGIL_STORAGE_POSTGRES_SCHEMA": schema,
		"VIGIL_STORAGE_POSTGRES_AUTO_MIGRATE": "true", "VIGIL_STORAGE_SQLITE_DIR": t.TempDir(),
		"VIGIL_STREAM_DRIVER": "nats", "VIGIL_STREAM_NATS_URL": srv.URL(),
		"VIGIL_STREAM_NATS_NAME": "CLI_REBUILD", "VIGIL_STREAM_NATS_SUBJECT": "clirebuild.events",
	}
	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.Addr, cfg.Log.Level = "127.0.0.1:0", "error"
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.Options{Stderr: io.Discard})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	c, err := client.New("http://"+a.Addr(), client.WithAPIKey(a.BootstrapKey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTenant(t.Context(), client.CreateTenantRequest{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	if _, err := c.Send(t.Context(), client.Event{Tenant: "acme", ID: "l1", Action: "auth.login.success", Time: at,
		Actor:   client.Actor{ID: "alice"},
		Context: client.Context{IP: "198.51.100.7", UserAgent: "Mozilla/5.0 Chrome/122", AuthMethod: "password", SessionID: "s1"}}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		n := 0
		for _, err := range c.Events(t.Context(), client.SearchParams{Actor: "alice"}) {
			if err == nil {
				n++
			}
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the login was not stored")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	r := run(t, env, "", "profiles", "rebuild")
	if r.code != 0 || !regexp.MustCompile(`^rebuilt profiles from \d+ events in 1 tenants\n$`).MatchString(r.stdout) {
		t.Fatalf("profiles rebuild: code %d, %q", r.code, r.stdout)
	}
	pg, err := postgres.Open(t.Context(), postgres.Options{URL: url, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	mine := fmt.Sprintf("detect.p%d", natsstream.Partition("acme", 16))
	for p := range 16 {
		ns := fmt.Sprintf("detect.p%d", p)
		_, err := pg.GetState(t.Context(), ns, "p/acme|alice")
		if ns == mine && err != nil {
			t.Errorf("alice's profile is not in %s, acme's unit: %v", ns, err)
		}
		if ns != mine && audit.ErrorCode(err) != audit.ENOTFOUND {
			t.Errorf("alice's profile in %s, not acme's unit: %v", ns, err)
		}
	}
}
