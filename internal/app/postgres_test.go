package app_test

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/postgres/pgtest"
)

// onPostgres switches a node's configuration to the PostgreSQL store, in a
// fresh schema of the test server dropped when the test ends (the test
// skips without a server, and fails under CI). Every node the test starts
// with it shares that schema, so a restart finds its data.
func onPostgres(t testing.TB) func(*config.Config) {
	t.Helper()
	url, schema := pgtest.Schema(t)
	return func(c *config.Config) {
		c.Storage.Driver = "postgres"
		c.Storage.Postgres.URL = url
		c.Storage.Postgres.Schema = schema
		c.Storage.Postgres.AutoMigrate = true
	}
}

// TestPostgresNode: `vigil migrate` makes the schema, a node serves from
// it, a second node on the same schema is refused while the first runs
// (its stream and detection state are its own), one-shot commands work
// beside it, and a restart finds the data.
func TestPostgresNode(t *testing.T) {
	pg := onPostgres(t)
	manual := func(c *config.Config) { pg(c); c.Storage.Postgres.AutoMigrate = false }
	cfg := config.Default()
	manual(&cfg)
	cfg.Storage.SQLite.Dir = t.TempDir()
	if _, err := app.New(t.Context(), withAddr(cfg), app.Options{Stderr: io.Discard}); err == nil || !strings.Contains(err.Error(), "vigil migrate") {
		t.Fatalf("a node on an unmigrated schema: %v, want a refusal naming vigil migrate", err)
	}
	done, err := app.Migrate(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(done, "PostgreSQL schema "+cfg.Storage.Postgres.Schema) {
		t.Fatalf("migrate said %q", done)
	}

	dir := t.TempDir()
	n := startNode(t, manual, func(c *config.Config) { c.Storage.SQLite.Dir = dir })
	c, key := n.tenantClient(t, "acme")
	at := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	if _, err := c.Send(t.Context(), login("alice", "198.51.100.7", at)); err != nil {
		t.Fatal(err)
	}
	waitForEvents(t, c, client.SearchParams{Actor: "alice"}, 1)

	second := config.Default()
	manual(&second)
	second.Storage.SQLite.Dir = t.TempDir()
	_, err = app.New(t.Context(), withAddr(second), app.Options{Stderr: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "already serves schema") {
		t.Fatalf("a second node on the same schema: %v, want it refused", err)
	}

	one := config.Default()
	manual(&one)
	one.Storage.SQLite.Dir = t.TempDir()
	if err := app.WithStores(t.Context(), one, func(s *app.Stores) error {
		ts, err := s.Tenants.ListTenants(t.Context())
		if err == nil && len(ts) != 1 {
			err = fmt.Errorf("tenants = %+v", ts)
		}
		return err
	}); err != nil {
		t.Fatalf("a one-shot command beside the node: %v", err)
	}

	n.stop(t)
	again := config.Default()
	manual(&again)
	again.Storage.SQLite.Dir = dir
	_, base, _ := runApp(t, withAddr(again))
	c2, err := client.New(base, client.WithAPIKey(key))
	if err != nil {
		t.Fatal(err)
	}
	waitForEvents(t, c2, client.SearchParams{Actor: "alice"}, 1)
}

func withAddr(c config.Config) config.Config {
	c.Server.Addr = "127.0.0.1:0"
	c.Log.Level = "error"
	return c
}
