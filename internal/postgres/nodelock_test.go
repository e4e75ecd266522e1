package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/postgres"
	"github.com/vigilhq/vigil/internal/postgres/pgtest"
)

// openLocked opens a migrated store on a fresh schema and takes its node
// lock, released at the end.
func openLocked(t *testing.T) (s *postgres.Store, l *postgres.NodeLock, url, schema string) {
	t.Helper()
	url, schema = pgtest.Schema(t)
	s, err := postgres.Open(t.Context(), postgres.Options{URL: url, Schema: schema, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	l = acquireLock(t, url, schema)
	return s, l, url, schema
}

func acquireLock(t *testing.T, url, schema string) *postgres.NodeLock {
	t.Helper()
	l, err := postgres.AcquireNodeLock(t.Context(), url, schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Release() })
	return l
}

// killLockBackend terminates the backend of the connection holding the
// schema's node lock (application_name 'vigil node lock', holding the
// schema's advisory key: other tests' locks live on the same server) and
// waits until it is gone, the lock with it.
func killLockBackend(t *testing.T, url, schema string) {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	var pid int32
	if err := conn.QueryRow(ctx, `SELECT a.pid FROM pg_locks k JOIN pg_stat_activity a ON a.pid = k.pid
		WHERE a.application_name = 'vigil node lock' AND k.locktype = 'advisory' AND k.granted AND k.objsubid = 1
			AND ((k.classid::int8 << 32) | k.objid::int8) = hashtextextended('vigil.node.' || $1, 0)`, schema).Scan(&pid); err != nil {
		t.Fatalf("find the node lock's backend: %v", err)
	}
	var gone bool
	if err := conn.QueryRow(ctx, `SELECT pg_terminate_backend($1, 10000)`, pid).Scan(&gone); err != nil || !gone {
		t.Fatalf("terminate backend %d: %v, %v", pid, gone, err)
	}
}

func lockRefused(t *testing.T, url, schema string) {
	t.Helper()
	l, err := postgres.AcquireNodeLock(t.Context(), url, schema)
	if err == nil {
		_ = l.Release()
		t.Fatal("the lock was free, want it held")
	}
	if audit.ErrorCode(err) != audit.EUNAVAILABLE || !strings.Contains(err.Error(), "already serves schema") {
		t.Fatalf("a second lock: %v, want EUNAVAILABLE naming the holder", err)
	}
}

// TestWaitNodeLockTakesOverOnRelease: a standby waits while the active
// node holds the lock, told who holds it, and takes the lock once it is
// released.
func TestWaitNodeLockTakesOverOnRelease(t *testing.T) {
	url, schema := pgtest.Schema(t)
	active := acquireLock(t, url, schema)
	holders := make(chan string, 100)
	type result struct {
		l   *postgres.NodeLock
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := postgres.WaitNodeLock(t.Context(), url, schema, 10*time.Millisecond, func(holder string, err error) {
			if err != nil {
				t.Errorf("a try failed otherwise than by the lock being held: %v", err)
			}
			select {
			case holders <- holder:
			default:
			}
		})
		done <- result{l, err}
	}()
	for range 3 {
		select {
		case h := <-holders:
			// "a node on this host" over a unix socket.
			if h != "a node on this host" && !strings.HasPrefix(h, "the node at ") {
				t.Fatalf("holder = %q, want the lock holder's address", h)
			}
		case r := <-done:
			t.Fatalf("WaitNodeLock returned while the lock was held: %v", r.err)
		case <-time.After(10 * time.Second):
			t.Fatal("waiting not called")
		}
	}
	if err := active.Release(); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("WaitNodeLock did not return after the release")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.l.Release()
	lockRefused(t, url, schema)
	if err := r.l.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestWaitNodeLockEndsWithContext: the wait ends with its context, while
// the lock is held and while the server cannot be reached; inputs no retry
// mends are refused at once.
func TestWaitNodeLockEndsWithContext(t *testing.T) {
	url, schema := pgtest.Schema(t)
	acquireLock(t, url, schema)

	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	l, err := postgres.WaitNodeLock(ctx, url, schema, time.Millisecond, func(holder string, err error) {
		if calls++; calls == 2 {
			cancel()
		}
	})
	if l != nil || !errors.Is(err, context.Canceled) || calls != 2 {
		t.Fatalf("held, then cancelled: %v, %v after %d tries; want context.Canceled after 2", l, err, calls)
	}

	ctx, cancel = context.WithCancel(t.Context())
	var tryErr error
	l, err = postgres.WaitNodeLock(ctx, "host=/nonexistent/socket/dir dbname=x connect_timeout=5", schema, time.Millisecond, func(holder string, err error) {
		if holder != "" || err == nil {
			t.Errorf("waiting(%q, %v), want no holder and the connect error", holder, err)
		}
		tryErr = err
		cancel()
	})
	if l != nil || !errors.Is(err, context.Canceled) || tryErr == nil || !errors.Is(err, tryErr) || audit.ErrorCode(err) != audit.EUNAVAILABLE {
		t.Fatalf("unreachable, then cancelled: %v, %v; want context.Canceled wrapping the last try's EUNAVAILABLE", l, err)
	}

	for name, c := range map[string]struct {
		url, schema string
		every       time.Duration
	}{
		"bad url":    {"postgres://u:secret@[::1", schema, time.Second},
		"bad schema": {url, "Vigil", time.Second},
		"no every":   {url, schema, 0},
	} {
		_, err := postgres.WaitNodeLock(t.Context(), c.url, c.schema, c.every, func(string, error) {
			t.Errorf("%s: waiting called", name)
		})
		if audit.ErrorCode(err) != audit.EINVALID || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: %v, want EINVALID at once, quoting no password", name, err)
		}
	}
}

// TestNodeLockCheckFencedAfterTakeover: the lock's connection dies, a
// standby takes the lock, begins its epoch and stops; the old active
// node's Check must not take the lock back.
func TestNodeLockCheckFencedAfterTakeover(t *testing.T) {
	s, a, url, schema := openLocked(t)
	ctx := t.Context()
	epoch, err := s.BeginEpoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.SetEpoch(epoch)
	if err := a.Check(ctx); err != nil {
		t.Fatal(err)
	}
	killLockBackend(t, url, schema)

	b, err := postgres.AcquireNodeLock(ctx, url, schema)
	if err != nil {
		t.Fatalf("the standby takes the freed lock: %v", err)
	}
	if _, err := s.BeginEpoch(ctx); err != nil {
		t.Fatal(err)
	}
	err = a.Check(ctx)
	if audit.ErrorCode(err) != audit.EUNAVAILABLE || errors.Is(err, postgres.ErrFenced) {
		t.Fatalf("check while the other node holds the lock: %v, want EUNAVAILABLE, not fenced", err)
	}
	if err := b.Release(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		err = a.Check(ctx)
		if !errors.Is(err, postgres.ErrFenced) || audit.ErrorCode(err) != audit.EUNAVAILABLE {
			t.Fatalf("check after another node's epoch: %v, want ErrFenced", err)
		}
	}
	c := acquireLock(t, url, schema) // Check gave the lock back
	if err := c.Release(); err != nil {
		t.Fatal(err)
	}
}

// TestNodeLockCheckRetakes: with nobody in between, Check takes a lock
// whose connection died back, with an epoch set or without.
func TestNodeLockCheckRetakes(t *testing.T) {
	s, a, url, schema := openLocked(t)
	ctx := t.Context()
	killLockBackend(t, url, schema)
	if err := a.Check(ctx); err != nil {
		t.Fatalf("check without an epoch: %v", err)
	}
	lockRefused(t, url, schema)

	epoch, err := s.BeginEpoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.SetEpoch(epoch)
	killLockBackend(t, url, schema)
	if err := a.Check(ctx); err != nil {
		t.Fatalf("check with the current epoch: %v", err)
	}
	lockRefused(t, url, schema)
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	acquireLock(t, url, schema)
}
