package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/postgres/pgtest"
)

// TestNodeLockEndsItsGhost: when the node has lost its lock connection on
// its side while the server still holds it (a partition the server has
// not noticed yet), Check ends that backend and takes the lock back,
// rather than waiting behind its own ghost.
func TestNodeLockEndsItsGhost(t *testing.T) {
	url, schema := pgtest.Schema(t)
	ctx := t.Context()
	l, err := AcquireNodeLock(ctx, url, schema)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	ghost := l.conn
	defer ghost.Close(context.Background())
	dead, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	_ = dead.Close(ctx)
	l.mu.Lock()
	l.conn = dead // this side lost it; the server still has the ghost
	l.mu.Unlock()
	if err := l.Check(ctx); err != nil {
		t.Fatalf("Check with a ghost lock connection: %v", err)
	}
	if err := ghost.Ping(ctx); err == nil {
		t.Fatal("the ghost connection still answers")
	}
	if l.conn == ghost || l.conn == dead {
		t.Fatal("Check kept the old connection")
	}
}
