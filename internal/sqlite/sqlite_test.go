package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/query"
	"github.com/vigilhq/vigil/internal/sqlite"
	"github.com/vigilhq/vigil/internal/storetest"
)

func openDB(t *testing.T, opts sqlite.Options) *sqlite.DB {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	db, err := sqlite.Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func backend(db *sqlite.DB) storetest.Backend {
	return storetest.Backend{Stream: db.Stream(), Events: db.Events(), Tenants: db, Keys: db, Findings: db, Incidents: db, State: db, Rules: db, Actions: db, Integrity: db, Viewers: db, Searches: db, Alerts: db, SIEM: db,
		Query: query.NewRunner(db.Events(), query.Options{})}
}

func TestConformance(t *testing.T) { runConformance(t, nil, nil) }

// runConformance runs the storage suite on a store that first is set up
// by first and, once reopened, by reopened (each may be nil).
func runConformance(t *testing.T, first, reopened func(*sqlite.EventStore)) {
	open := func(t *testing.T, dir string, set func(*sqlite.EventStore)) *sqlite.DB {
		db := openDB(t, sqlite.Options{Dir: dir})
		if set != nil {
			set(db.Events())
		}
		return db
	}
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		dir := t.TempDir()
		db := open(t, dir, first)
		b := backend(db)
		b.Reopen = func(t *testing.T) storetest.Backend {
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			return backend(open(t, dir, reopened))
		}
		return b
	})
}

// TestConformanceSealed runs the whole suite with every partition sealed
// after each insert, so every read, search, query, erasure and purge meets
// compressed blocks (and the rows stored since a seal, inline).
func TestConformanceSealed(t *testing.T) {
	runConformance(t, sqlite.SealOnInsert, sqlite.SealOnInsert)
}

// TestConformanceLegacyLayout runs the whole suite on partitions with the
// indexes of earlier versions, without time buckets (layout.go): a data
// directory upgraded to this version keeps them, and every search, query,
// erasure and purge must still read them. A reopened store (of this
// version) keeps a partition's layout.
func TestConformanceLegacyLayout(t *testing.T) {
	runConformance(t, sqlite.LegacyLayout, nil)
}

func TestBackpressure(t *testing.T) {
	db := openDB(t, sqlite.Options{MaxBacklog: 3})
	ctx := t.Context()
	s := db.Stream()
	ev := func(id string) *audit.Event {
		return &audit.Event{Tenant: "a", ID: id, Time: time.Unix(1e9, 0).UTC(), Action: "custom.thing"}
	}
	if _, err := s.Append(ctx, []*audit.Event{ev("1"), ev("2"), ev("3")}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Append(ctx, []*audit.Event{ev("4")})
	if audit.ErrorCode(err) != audit.EUNAVAILABLE {
		t.Fatalf("append over the backlog cap = %v, want EUNAVAILABLE", err)
	}
	if err := s.Commit(ctx, "pipeline", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, []*audit.Event{ev("4")}); err != nil {
		t.Fatalf("append after the consumer caught up: %v", err)
	}
	if err := s.Commit(ctx, "pipeline", 99); audit.ErrorCode(err) != audit.EINVALID {
		t.Fatalf("commit beyond the end = %v, want EINVALID", err)
	}
}

func TestStreamPurgeForgetsKeys(t *testing.T) {
	now := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	db := openDB(t, sqlite.Options{Now: func() time.Time { return now }})
	ctx := t.Context()
	e := &audit.Event{Tenant: "a", ID: "x", Time: now, Action: "custom.thing"}
	if _, err := db.Stream().Append(ctx, []*audit.Event{e}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Purge(ctx, "a", now); err != nil { // same day: kept
		t.Fatal(err)
	}
	res, _ := db.Stream().Append(ctx, []*audit.Event{e})
	if !res[0].Duplicate {
		t.Fatal("key forgotten before its day expired")
	}
	if _, err := db.Purge(ctx, "a", now.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	res, _ = db.Stream().Append(ctx, []*audit.Event{e})
	if res[0].Duplicate {
		t.Fatal("key kept after retention")
	}
}

func TestOpenValidates(t *testing.T) {
	_, err := sqlite.Open(t.Context(), sqlite.Options{})
	if audit.ErrorCode(err) != audit.EINVALID {
		t.Fatalf("Open without Dir = %v", err)
	}
	_, err = sqlite.Open(t.Context(), sqlite.Options{Dir: t.TempDir(), PartitionPeriod: 90 * time.Minute})
	if audit.ErrorCode(err) != audit.EINVALID {
		t.Fatalf("Open with a 90m period = %v", err)
	}
	dir := t.TempDir()
	db := openDB(t, sqlite.Options{Dir: dir})
	if err := db.Events().InsertEvents(t.Context(), []audit.Event{{Tenant: "a", ID: "1", Time: time.Now(), Action: "x.y"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate twice: %v", err)
	}
	db.Close()
	_, err = sqlite.Open(t.Context(), sqlite.Options{Dir: dir, PartitionPeriod: time.Hour})
	if audit.ErrorCode(err) != audit.EINVALID {
		t.Fatalf("reopening with another period = %v, want EINVALID", err)
	}
}

func TestCancelledContextStaysContextError(t *testing.T) {
	db := openDB(t, sqlite.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := db.GetTenant(ctx, "a")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("GetTenant with a cancelled context = %v", err)
	}
	_, err = db.Events().SearchEvents(ctx, audit.EventFilter{Tenant: "a"})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("search with a cancelled context = %v", err)
	}
}

func TestDistinctActorsByIP(t *testing.T) {
	// A day per file: one partition (pure SQL) or two (attached); an hour
	// per file: more partitions than can be attached (merged in Go).
	for _, period := range []time.Duration{24 * time.Hour, time.Hour} {
		t.Run(period.String(), func(t *testing.T) { testDistinctActorsByIP(t, period) })
	}
}

func testDistinctActorsByIP(t *testing.T, period time.Duration) {
	db := openDB(t, sqlite.Options{PartitionPeriod: period})
	ctx := t.Context()
	day := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	var evs []audit.Event
	add := func(id, tenant, action, actor, ip string, at time.Time) {
		evs = append(evs, audit.Event{ID: id, Tenant: tenant, Action: action, Time: at,
			Actor: audit.Actor{ID: actor}, Context: audit.Context{IP: netip.MustParseAddr(ip)}})
	}
	// 10.0.0.1: alice, bob (twice), carol — across two day partitions.
	add("1", "a", audit.ActionLoginFailure, "alice", "10.0.0.1", day.Add(23*time.Hour))
	add("2", "a", audit.ActionLoginFailure, "bob", "10.0.0.1", day.Add(23*time.Hour))
	add("3", "a", audit.ActionLoginFailure, "bob", "10.0.0.1", day.Add(25*time.Hour))
	add("4", "a", audit.ActionLoginFailure, "carol", "10.0.0.1", day.Add(26*time.Hour))
	add("5", "a", audit.ActionLoginFailure, "alice", "2001:db8::1", day.Add(25*time.Hour))
	add("6", "a", audit.ActionLoginSuccess, "dave", "10.0.0.1", day.Add(25*time.Hour)) // other action
	add("7", "b", audit.ActionLoginFailure, "erin", "10.0.0.1", day.Add(25*time.Hour)) // other tenant
	add("8", "a", audit.ActionLoginFailure, "frank", "10.0.0.1", day.Add(-time.Hour))  // before the window
	for h := range 12 {                                                                // other tenant's events in many partitions
		add(fmt.Sprint("z", h), "z", audit.ActionLoginFailure, "zed", "10.0.0.1", day.Add(time.Duration(h)*time.Hour))
	}
	if err := db.Events().InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	check := func(since, until time.Time, want string) {
		t.Helper()
		got, err := db.Events().DistinctActorsByIP(ctx, "a", audit.ActionLoginFailure, since, until, 10)
		if err != nil {
			t.Fatal(err)
		}
		if s := fmt.Sprint(got); s != want {
			t.Fatalf("[%s, %s): %s, want %s", since, until, s, want)
		}
	}
	check(day, day.Add(48*time.Hour), "[{10.0.0.1 3} {2001:db8::1 1}]")                   // two partitions
	check(day.Add(24*time.Hour), day.Add(48*time.Hour), "[{10.0.0.1 2} {2001:db8::1 1}]") // one partition
	check(day.Add(40*time.Hour), day.Add(48*time.Hour), "[]")
	if _, err := db.Events().DistinctActorsByIP(ctx, "", audit.ActionLoginFailure, day, day, 1); audit.ErrorCode(err) != audit.EINVALID {
		t.Fatalf("no tenant: %v", err)
	}
}
