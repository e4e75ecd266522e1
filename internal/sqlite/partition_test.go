package sqlite_test

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/query"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// partitionFiles counts the descriptors this process holds on event
// partition files (the database, its WAL and shared-memory files).
func partitionFiles(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err == nil && strings.HasPrefix(target, dir+"/events/") {
			n++
		}
	}
	return n
}

// fdsPerPartition is the most descriptors one open partition holds: a
// writer and four reader connections, each with the database and its WAL,
// plus the shared-memory file.
const fdsPerPartition = 5*2 + 1

// TestPartitionsBounded is issue 9's descriptor exhaustion: events on many
// distinct days must not keep a file per day open, reading them all back
// must not either, and reopening the directory must not open them at all.
func TestPartitionsBounded(t *testing.T) {
	const days, maxOpen = 300, 8
	dir := t.TempDir()
	ctx := t.Context()
	db := openDB(t, sqlite.Options{Dir: dir, MaxOpenPartitions: maxOpen})
	first := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	evs := make([]audit.Event, 0, days)
	for d := range days {
		evs = append(evs, audit.Event{Tenant: "a", ID: fmt.Sprintf("e%03d", d), Action: audit.ActionLoginFailure,
			Time: first.Add(time.Duration(d) * 24 * time.Hour), Actor: audit.Actor{ID: "alice"}})
	}
	// One call, as one request's batch would arrive.
	if err := db.Events().InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	ev := db.Events()
	check := func(stage string) {
		t.Helper()
		if n := ev.OpenPartitions(); n > maxOpen {
			t.Fatalf("%s: %d partitions open, bound %d", stage, n, maxOpen)
		}
		if n := partitionFiles(t, dir); n > maxOpen*fdsPerPartition {
			t.Fatalf("%s: %d descriptors on partition files, bound %d×%d", stage, n, maxOpen, fdsPerPartition)
		}
		t.Logf("%s: %d partitions open, %d descriptors on partition files", stage, ev.OpenPartitions(), partitionFiles(t, dir))
	}
	check("after insert")
	if n := ev.Partitions(); n != days {
		t.Fatalf("Partitions() = %d, want %d", n, days)
	}

	// A search over every day reads them all, a few open at a time.
	page, err := ev.SearchEvents(ctx, audit.EventFilter{Tenant: "a", Limit: audit.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != days || page.Events[0].ID != "e299" || page.Events[days-1].ID != "e000" {
		t.Fatalf("search over %d days returned %d events", days, len(page.Events))
	}
	check("after search")
	q, err := query.Parse(`time:>=2023-12-01 | stats count() by actor.id`, first.Add(days*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	res, err := query.NewRunner(ev, query.Options{}).RunQuery(ctx, audit.QueryScope{Tenant: "a"}, q)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(res.Rows); got != fmt.Sprintf("[[alice %d]]", days) {
		t.Fatalf("count over every day = %s", got)
	}
	if res.Stats.Partitions != days {
		t.Fatalf("query read %d partitions, want %d", res.Stats.Partitions, days)
	}
	check("after query")
	got, err := ev.GetEvent(ctx, "a", "e000")
	if err != nil || !got.Time.Equal(first) {
		t.Fatalf("GetEvent of the oldest day = %v, %v", got, err)
	}
	if _, err := ev.DistinctActorsByIP(ctx, "a", audit.ActionLoginFailure, first, first.Add(days*24*time.Hour), 10); err != nil {
		t.Fatal(err)
	}
	check("after get and aggregate")

	// Restart: no partition is opened until used.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before := openFDs(t)
	db2 := openDB(t, sqlite.Options{Dir: dir, MaxOpenPartitions: maxOpen})
	if n := db2.Events().OpenPartitions(); n != 0 {
		t.Fatalf("%d partitions open right after Open, want 0", n)
	}
	if n := partitionFiles(t, dir); n != 0 {
		t.Fatalf("%d descriptors on partition files right after Open, want 0", n)
	}
	t.Logf("restart with %d partitions: %d descriptors more than before Open", days, openFDs(t)-before)
	if n := db2.Events().Partitions(); n != days {
		t.Fatalf("Partitions() after reopening = %d, want %d", n, days)
	}
	if err := db2.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if n := db2.Events().OpenPartitions(); n > maxOpen {
		t.Fatalf("Migrate left %d partitions open, bound %d", n, maxOpen)
	}
	page, err = db2.Events().SearchEvents(ctx, audit.EventFilter{Tenant: "a", Limit: 5})
	if err != nil || len(page.Events) != 5 || page.Events[0].ID != "e299" {
		t.Fatalf("search after reopening = %v, %v", page, err)
	}
}

// TestPartitionsConcurrent writes, reads and purges many days from many
// goroutines through a tiny open bound, so partitions are opened and closed
// under readers and writers all the time (run with -race); every event must
// be stored and read back.
func TestPartitionsConcurrent(t *testing.T) {
	const days, writers = 40, 4
	db := openDB(t, sqlite.Options{MaxOpenPartitions: 2})
	ctx := t.Context()
	ev := db.Events()
	first := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range writers {
		wg.Go(func() {
			for d := range days {
				e := audit.Event{Tenant: "a", ID: fmt.Sprintf("w%d-d%02d", w, d), Action: "custom.thing",
					Time: first.Add(time.Duration(d)*24*time.Hour + time.Duration(w)*time.Minute)}
				if err := ev.InsertEvents(ctx, []audit.Event{e}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range days {
				if _, err := ev.SearchEvents(ctx, audit.EventFilter{Tenant: "a", Limit: 50}); err != nil {
					errs <- err
					return
				}
				if _, err := ev.GetEvent(ctx, "a", "w0-d00"); err != nil && audit.ErrorCode(err) != audit.ENOTFOUND {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		// Purging another tenant reads every partition without deleting any.
		for range 5 {
			if _, err := ev.Purge(ctx, "other", first.Add(days*24*time.Hour)); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := ev.OpenPartitions(); n > 2 {
		t.Fatalf("%d partitions open when idle, bound 2", n)
	}
	seen := 0
	cursor := ""
	for {
		page, err := ev.SearchEvents(ctx, audit.EventFilter{Tenant: "a", Limit: 37, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		seen += len(page.Events)
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if seen != days*writers {
		t.Fatalf("read back %d events, want %d", seen, days*writers)
	}
	// Retention still drops whole days while partitions come and go.
	n, err := ev.Purge(ctx, "a", first.Add(10*24*time.Hour))
	if err != nil || n != 10*writers {
		t.Fatalf("purge = %d, %v; want %d", n, err, 10*writers)
	}
	if got := ev.Partitions(); got != days-10 {
		t.Fatalf("%d partitions after purging 10 days, want %d", got, days-10)
	}
}

// TestPartitionsOfOtherTenantsStayClosed: with more days than stay open, a
// tenant's searches, scans, aggregations and retention passes open only
// the days that hold its events once each day's tenants are known (from
// its first open since start), and a day that gains the tenant later, or
// is dropped and created again, is not missed.
func TestPartitionsOfOtherTenantsStayClosed(t *testing.T) {
	const days, maxOpen = 40, 4
	dir := t.TempDir()
	ctx := t.Context()
	first := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	day := func(d int) time.Time { return first.Add(time.Duration(d) * 24 * time.Hour) }
	event := func(tenant string, d int, id string) audit.Event {
		return audit.Event{Tenant: tenant, ID: id, Action: audit.ActionLoginFailure, Time: day(d),
			Actor: audit.Actor{ID: "alice"}, Context: audit.Context{IP: netip.MustParseAddr("203.0.113.9")}}
	}
	evs := []audit.Event{event("a", 0, "a0")}
	for d := 1; d < days; d++ {
		evs = append(evs, event("b", d, fmt.Sprintf("b%02d", d)))
	}
	db := openDB(t, sqlite.Options{Dir: dir, MaxOpenPartitions: maxOpen})
	if err := db.Events().InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, sqlite.Options{Dir: dir, MaxOpenPartitions: maxOpen})
	ev := db.Events()
	search := func(want int) {
		t.Helper()
		page, err := ev.SearchEvents(ctx, audit.EventFilter{Tenant: "a", Limit: 100})
		if err != nil || len(page.Events) != want {
			t.Fatalf("tenant a's search = %d events, %v; want %d", len(page.Events), err, want)
		}
	}
	// The first search after the start opens every day to learn its
	// tenants; the next ones open only tenant a's day.
	search(1)
	if n := sqlite.Opens(ev); n < days {
		t.Fatalf("the first search opened %d partitions of %d", n, days)
	}
	opens := sqlite.Opens(ev)
	for range 3 {
		search(1)
	}
	if _, err := ev.DistinctActorsByIP(ctx, "a", audit.ActionLoginFailure, first, day(days), 10); err != nil {
		t.Fatal(err)
	}
	if n, err := ev.CountBefore(ctx, "a", day(days)); err != nil || n != 1 {
		t.Fatalf("CountBefore = %d, %v", n, err)
	}
	q, err := query.Parse(`time:>=2023-12-01 | stats count() by actor.id`, day(days))
	if err != nil {
		t.Fatal(err)
	}
	res, err := query.NewRunner(ev, query.Options{}).RunQuery(ctx, audit.QueryScope{Tenant: "a"}, q)
	if err != nil || fmt.Sprint(res.Rows) != "[[alice 1]]" {
		t.Fatalf("tenant a's count = %v, %v", res, err)
	}
	if n := sqlite.Opens(ev) - opens; n > 1 {
		t.Fatalf("tenant a's reads opened %d partitions again; only its own day may be", n)
	}

	// A day known to lack tenant a gains an event of it.
	if err := ev.InsertEvents(ctx, []audit.Event{event("a", 20, "a20")}); err != nil {
		t.Fatal(err)
	}
	search(2)
	// Tenant b's oldest days are purged: their files go, and a new event of
	// tenant a on one of those days creates the file again.
	if _, err := ev.Purge(ctx, "b", day(10)); err != nil {
		t.Fatal(err)
	}
	if n := ev.Partitions(); n != days-9 {
		t.Fatalf("%d partitions after the purge, want %d", n, days-9)
	}
	if err := ev.InsertEvents(ctx, []audit.Event{event("a", 5, "a5")}); err != nil {
		t.Fatal(err)
	}
	search(3)
	res, err = query.NewRunner(ev, query.Options{}).RunQuery(ctx, audit.QueryScope{Tenant: "a"}, q)
	if err != nil || fmt.Sprint(res.Rows) != "[[alice 3]]" {
		t.Fatalf("tenant a's count after new days = %v, %v", res, err)
	}
	// Every tenant's search still reads every day.
	page, err := ev.SearchEvents(ctx, audit.EventFilter{AllTenants: true, Limit: 100})
	if err != nil || len(page.Events) != days-9+2 {
		t.Fatalf("all tenants' search = %d events, %v", len(page.Events), err)
	}
}
