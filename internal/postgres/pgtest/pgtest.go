// Package pgtest gives tests a PostgreSQL server to work in: each call of
// Schema makes a fresh, empty schema and drops it when the test ends.
//
// The server is VIGIL_TEST_POSTGRES (a connection URL) or, without it, the
// local one on the unix socket in /var/run/postgresql, database vigil_test
// (scripts/postgres.sh starts it and creates the database). Without a server
// the tests skip, except under CI (CI set), where a missing server fails
// them: CI must not pass by skipping.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the server used without VIGIL_TEST_POSTGRES.
const DefaultURL = "host=/var/run/postgresql dbname=vigil_test"

var (
	once    sync.Once
	url     string
	skipMsg string
)

// URL is the test server's connection string; it skips (or, under CI,
// fails) the test when no server answers.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		url = os.Getenv("VIGIL_TEST_POSTGRES")
		if url == "" {
			url = DefaultURL
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			skipMsg = "no PostgreSQL server for the tests (run scripts/postgres.sh or set VIGIL_TEST_POSTGRES): " + err.Error()
			return
		}
		_ = conn.Close(ctx)
	})
	if skipMsg != "" {
		if os.Getenv("CI") != "" {
			t.Fatal(skipMsg)
		}
		t.Skip(skipMsg)
	}
	return url
}

// Schema makes a fresh schema name on the test server, dropped (with
// everything in it) when the test ends. It returns the server URL and the
// schema's name; the schema itself is created by whoever opens the store.
func Schema(t testing.TB) (string, string) {
	t.Helper()
	u := URL(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Logf("drop schema %s: %v", name, err)
			return
		}
		defer func() { _ = conn.Close(ctx) }()
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", name, err)
		}
	})
	return u, name
}
