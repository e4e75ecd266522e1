package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/postgres/pgtest"
)

// TestUnitLocksEndTheirGhost: when the node has lost its unit locks'
// connection on its side while the server still holds it (a partition the
// server has not noticed yet), Check reports the units lost and ends that
// backend, so that they can be taken again at once rather than once the
// server notices.
func TestUnitLocksEndTheirGhost(t *testing.T) {
	url, schema := pgtest.Schema(t)
	ctx := t.Context()
	s, err := Open(ctx, Options{URL: url, Schema: schema, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := OpenUnitLocks(ctx, url, schema, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenUnitLocks(ctx, url, schema, "node-b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, u := range []string{"p0", "p1"} {
		if _, ok, err := a.TryTake(ctx, u); err != nil || !ok {
			t.Fatalf("TryTake(%s) = %v, %v", u, ok, err)
		}
	}
	ghost := a.conn
	defer ghost.Close(context.Background())
	dead, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	_ = dead.Close(ctx)
	a.mu.Lock()
	a.conn = dead // this side lost it; the server still has the ghost
	a.mu.Unlock()

	err = a.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), "p0, p1") {
		t.Fatalf("Check with a ghost connection: %v, want the units lost named", err)
	}
	if err := ghost.Ping(ctx); err == nil {
		t.Fatal("the ghost connection still answers")
	}
	if a.conn == nil || a.conn == ghost || a.conn == dead {
		t.Fatal("Check did not reconnect")
	}
	for _, u := range []string{"p0", "p1"} {
		if _, ok, err := b.TryTake(ctx, u); err != nil || !ok {
			t.Fatalf("the other node's TryTake(%s) = %v, %v; want it free once the ghost ended", u, ok, err)
		}
	}
}
