package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/postgres"
	"github.com/vigilhq/vigil/internal/postgres/pgtest"
)

// openAt opens a store on a fresh schema whose clock reads now, and a
// direct connection to inspect the schema.
func openEventsAt(t *testing.T, now time.Time) (*postgres.Store, *pgx.Conn) {
	t.Helper()
	url, schema := pgtest.Schema(t)
	s, err := postgres.Open(t.Context(), postgres.Options{URL: url, Schema: schema, Migrate: true,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := conn.Exec(t.Context(), "SET search_path = "+schema); err != nil {
		t.Fatal(err)
	}
	return s, conn
}

// partitionNames lists the schema's events partitions, ascending.
func eventPartitionNames(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func newLoginEvent(tenant, id string, at time.Time) audit.Event {
	return audit.Event{ID: id, Tenant: tenant, Time: at, Action: "auth.login.success", Actor: audit.Actor{ID: "alice"}}
}

func TestEventPartitionsAheadAndOnDemand(t *testing.T) {
	now := time.Date(2026, 7, 1, 23, 30, 0, 0, time.UTC)
	s, conn := openEventsAt(t, now)
	if got := fmt.Sprint(eventPartitionNames(t, conn)); got != "[events_20260701 events_20260702]" {
		t.Fatalf("partitions at open: %s, want today and tomorrow", got)
	}
	ctx := t.Context()
	old := time.Date(2025, 1, 5, 0, 0, 0, 1, time.UTC)
	if err := s.InsertEvents(ctx, []audit.Event{newLoginEvent("a", "1", old), newLoginEvent("a", "2", old.Add(-2))}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(eventPartitionNames(t, conn)); got != "[events_20250104 events_20250105 events_20260701 events_20260702]" {
		t.Fatalf("partitions after inserting into two old days: %s", got)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM events_20250104`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("events_20250104 holds %d rows (%v), want 1", n, err)
	}
	page, err := s.SearchEvents(ctx, audit.EventFilter{Tenant: "a"})
	if err != nil || len(page.Events) != 2 || page.Events[0].ID != "1" {
		t.Fatalf("search across the new partitions: %+v, %v", page, err)
	}
}

func TestEventDuplicateIDAcrossDays(t *testing.T) {
	s, conn := openEventsAt(t, time.Now())
	ctx := t.Context()
	day1 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	day2 := day1.Add(48 * time.Hour)
	first := newLoginEvent("a", "dup", day1)
	again := newLoginEvent("a", "dup", day2)
	again.Action = "auth.logout"
	// Within one batch and across batches, the first (tenant, id) wins.
	if err := s.InsertEvents(ctx, []audit.Event{first, again}); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertEvents(ctx, []audit.Event{again, newLoginEvent("b", "dup", day2)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetEvent(ctx, "a", "dup")
	if err != nil || !got.Time.Equal(day1) || got.Action != first.Action {
		t.Fatalf("get: %+v, %v; want the first insert, unchanged", got, err)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM events WHERE tenant = 'a'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("tenant a has %d stored rows (%v), want 1", n, err)
	}
	if _, err := s.GetEvent(ctx, "b", "dup"); err != nil {
		t.Fatalf("same id in another tenant: %v", err)
	}
}

func TestEventPurgeDropsEmptiedPartition(t *testing.T) {
	s, conn := openEventsAt(t, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC))
	ctx := t.Context()
	d1 := time.Date(2026, 2, 1, 5, 0, 0, 0, time.UTC)
	d2 := d1.Add(24 * time.Hour)
	if err := s.InsertEvents(ctx, []audit.Event{newLoginEvent("a", "1", d1), newLoginEvent("b", "2", d1), newLoginEvent("a", "3", d2)}); err != nil {
		t.Fatal(err)
	}
	cut := d2.Add(time.Hour)
	if n, err := s.CountBefore(ctx, "a", cut); err != nil || n != 2 {
		t.Fatalf("count before: %d, %v", n, err)
	}
	if n, err := s.Purge(ctx, "a", cut); err != nil || n != 2 {
		t.Fatalf("purge a: %d, %v", n, err)
	}
	// events_20260201 still holds b's event; events_20260202 is not
	// wholly before the cut.
	if got := fmt.Sprint(eventPartitionNames(t, conn)); got != "[events_20260201 events_20260202 events_20260701 events_20260702]" {
		t.Fatalf("after purging a: %s", got)
	}
	if n, err := s.Purge(ctx, "b", cut); err != nil || n != 1 {
		t.Fatalf("purge b: %d, %v", n, err)
	}
	if got := fmt.Sprint(eventPartitionNames(t, conn)); got != "[events_20260202 events_20260701 events_20260702]" {
		t.Fatalf("after purging b: %s, want the emptied old day dropped", got)
	}
	var ids int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM event_ids`).Scan(&ids); err != nil || ids != 0 {
		t.Fatalf("event_ids keeps %d rows (%v), want 0", ids, err)
	}
	// The day can be written again: its partition is made anew.
	if err := s.InsertEvents(ctx, []audit.Event{newLoginEvent("a", "1", d1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetEvent(ctx, "a", "1"); err != nil {
		t.Fatalf("re-inserted after purge: %v", err)
	}
}

func TestGetEventManyPartitions(t *testing.T) {
	s, _ := openEventsAt(t, time.Now())
	ctx := t.Context()
	start := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	var evs []audit.Event
	for i := range 120 {
		evs = append(evs, newLoginEvent("a", fmt.Sprintf("e%03d", i), start.Add(time.Duration(i)*24*time.Hour)))
	}
	if err := s.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if s.Partitions() < 120 {
		t.Fatalf("%d partitions, want at least 120", s.Partitions())
	}
	for _, i := range []int{0, 57, 119} {
		got, err := s.GetEvent(ctx, "a", evs[i].ID)
		if err != nil || !got.Time.Equal(evs[i].Time) {
			t.Fatalf("get %s: %+v, %v", evs[i].ID, got, err)
		}
	}
	if _, err := s.GetEvent(ctx, "a", "nope"); audit.ErrorCode(err) != audit.ENOTFOUND {
		t.Fatalf("unknown id: %v", err)
	}
	// A search with a small page visits only the newest partitions.
	page, err := s.SearchEvents(ctx, audit.EventFilter{Tenant: "a", Limit: 2})
	if err != nil || len(page.Events) != 2 || page.Events[0].ID != "e119" || page.Next == "" {
		t.Fatalf("newest page: %+v, %v", page, err)
	}
}

func TestEventNULInClientStrings(t *testing.T) {
	s, _ := openEventsAt(t, time.Now())
	ctx := t.Context()
	e := newLoginEvent("a", "nul", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	e.Actor.ID = "al\x00ice"
	e.Metadata = map[string]any{"k": "v\x00w"}
	if err := s.InsertEvents(ctx, []audit.Event{e}); err != nil {
		t.Fatalf("an event with NUL characters: %v", err)
	}
	page, err := s.SearchEvents(ctx, audit.EventFilter{Tenant: "a", ActorID: "al\x00ice"})
	if err != nil || len(page.Events) != 1 || page.Events[0].Metadata["k"] != "v\x00w" {
		t.Fatalf("search by an actor id with NUL: %+v, %v", page, err)
	}
}

func TestEventConcurrentPartitionCreators(t *testing.T) {
	url, schema := pgtest.Schema(t)
	opts := postgres.Options{URL: url, Schema: schema, Migrate: true}
	s1, err := postgres.Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := postgres.Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	at := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	errs := make(chan error, 8)
	for i := range 8 {
		s := s1
		if i%2 == 1 {
			s = s2
		}
		go func() {
			var evs []audit.Event
			for d := range 5 {
				evs = append(evs, newLoginEvent("a", fmt.Sprintf("w%d-%d", i, d), at.Add(time.Duration(d)*24*time.Hour)))
			}
			errs <- s.InsertEvents(t.Context(), evs)
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent insert creating the same partitions: %v", err)
		}
	}
	// Each store sees what the other created.
	for _, s := range []*postgres.Store{s1, s2} {
		page, err := s.SearchEvents(t.Context(), audit.EventFilter{Tenant: "a", Limit: 100})
		if err != nil || len(page.Events) != 40 {
			t.Fatalf("search: %d events, %v", len(page.Events), err)
		}
	}
}

func TestEventLargeBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("large batch")
	}
	s, _ := openEventsAt(t, time.Now())
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	evs := make([]audit.Event, 20000)
	for i := range evs {
		evs[i] = newLoginEvent("a", fmt.Sprintf("b%05d", i), at.Add(time.Duration(i)*time.Second))
	}
	start := time.Now()
	if err := s.InsertEvents(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	t.Logf("20000 events in %v", time.Since(start))
	start = time.Now()
	if err := s.InsertEvents(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	t.Logf("20000 repeated events in %v", time.Since(start))
	if n, err := s.CountBefore(t.Context(), "a", at.Add(48*time.Hour)); err != nil || n != 20000 {
		t.Fatalf("count: %d, %v", n, err)
	}
}

func TestReplaceEventsRewritesColumns(t *testing.T) {
	s, _ := openEventsAt(t, time.Now())
	ctx := t.Context()
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	e := newLoginEvent("a", "r1", at)
	e.Metadata = map[string]any{"email": "alice@example.com"}
	if err := s.InsertEvents(ctx, []audit.Event{e}); err != nil {
		t.Fatal(err)
	}
	erased := e
	erased.Actor.ID = "erased-1"
	erased.Metadata = nil
	missing := newLoginEvent("a", "nope", at)
	n, err := s.ReplaceEvents(ctx, []audit.Event{erased, missing, newLoginEvent("a", "r1", at.Add(time.Hour))})
	if err != nil || n != 1 {
		t.Fatalf("replace: %d, %v; want 1 (others not stored)", n, err)
	}
	got, err := s.GetEvent(ctx, "a", "r1")
	if err != nil || got.Actor.ID != "erased-1" || got.Metadata != nil {
		t.Fatalf("after replace: %+v, %v", got, err)
	}
	for actor, want := range map[string]int{"alice": 0, "erased-1": 1} {
		page, err := s.SearchEvents(ctx, audit.EventFilter{Tenant: "a", ActorID: actor})
		if err != nil || len(page.Events) != want {
			t.Fatalf("search actor %s: %d events, %v; want %d", actor, len(page.Events), err, want)
		}
	}
	if _, err := s.ReplaceEvents(ctx, []audit.Event{{ID: "x"}}); audit.ErrorCode(err) != audit.EINVALID {
		t.Fatalf("replace without tenant: %v", err)
	}
}
