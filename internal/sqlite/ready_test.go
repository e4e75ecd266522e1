package sqlite

import (
	"context"
	"database/sql"
	"testing"
	"time"
)

// TestReadyIgnoresBusyReaders: with every reader connection of the
// catalog taken (as concurrent searches take them), Ping waits for a
// connection and fails, while Ready answers: readiness must not depend on
// query load.
func TestReadyIgnoresBusyReaders(t *testing.T) {
	db, err := Open(t.Context(), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var held []*sql.Conn
	for range db.meta.r.Stats().MaxOpenConnections {
		c, err := db.meta.r.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := db.Ping(ctx); err == nil {
		t.Log("Ping answered with every reader busy") // not what this test is about
	}
	ctx2, cancel2 := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel2()
	if err := db.Ready(ctx2); err != nil {
		t.Fatalf("Ready with every reader busy: %v", err)
	}
}
