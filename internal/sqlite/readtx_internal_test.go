package sqlite

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// testDay is the day of onePartition's events.
var testDay = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// onePartition stores evs (all of testDay) in a fresh store and returns
// it with their partition, held until the test ends.
func onePartition(t *testing.T, evs []audit.Event) (*DB, *EventStore, *partition) {
	t.Helper()
	db, err := Open(t.Context(), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := db.Events()
	if err := s.InsertEvents(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	p, err := s.acquire(t.Context(), s.index(testDay.UnixNano()), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.release(p) })
	return db, s, p
}

// TestReadSnapshotSpansAFirstSeal is the window of a read that begins
// before its partition's first seal: the read takes its handle, the seal
// commits, the read's row query sees the rows as references to blocks, and
// an erasure then rewrites the block of the row being read. The block must
// come from the row's snapshot: the original body, not an emptied slot.
func TestReadSnapshotSpansAFirstSeal(t *testing.T) {
	ctx := t.Context()
	evs := make([]audit.Event, 100)
	for i := range evs {
		evs[i] = audit.Event{Tenant: "a", ID: fmt.Sprintf("e%03d", i), Action: audit.ActionLoginSuccess,
			Time: testDay.Add(time.Duration(i) * time.Minute), Actor: audit.Actor{ID: "alice"}, Context: audit.Context{RequestID: fmt.Sprintf("req-%03d", i)}}
	}
	_, s, p := onePartition(t, evs)

	q, done, err := p.readConn(ctx) // the read begins: no blocks yet
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if n, err := p.seal(ctx, 1); err != nil || n != int64(len(evs)) {
		t.Fatalf("seal = %d, %v", n, err)
	}
	rows, err := q.QueryContext(ctx, `SELECT id, body FROM events ORDER BY ts`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		t.Fatal("no row")
	}
	var id string
	var body []byte
	if err := rows.Scan(&id, &body); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := parseRef(body); !ok {
		t.Fatalf("row %s is not a reference to a block after the seal", id)
	}
	erased := evs[0]
	erased.Context.RequestID = ""
	if n, err := s.ReplaceEvents(ctx, []audit.Event{erased}); err != nil || n != 1 {
		t.Fatalf("erase = %d, %v", n, err)
	}
	bs := bodies{q: q, path: p.f.path}
	got, err := bs.get(ctx, body)
	if err != nil {
		t.Fatalf("the block of row %s, read in the row's snapshot: %v", id, err)
	}
	if !bytes.Contains(got, []byte("req-000")) {
		t.Fatalf("row %s's body from its snapshot lacks the original request id", id)
	}
}

// TestPartitionReadersMapTheirFile checks that the day partitions' readers,
// and only they, read through a memory map (mappedDriver): the writer
// writes through the file, and the other files keep the plain driver.
func TestPartitionReadersMapTheirFile(t *testing.T) {
	ctx := t.Context()
	db, s, p := onePartition(t, []audit.Event{{Tenant: "a", ID: "e1", Action: audit.ActionLoginSuccess, Time: testDay,
		Actor: audit.Actor{ID: "alice"}}})
	mapped := func(q queryRower) int64 {
		t.Helper()
		var n int64
		if err := q.QueryRowContext(ctx, `PRAGMA mmap_size`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := mapped(p.f.r); n != readMapBytes {
		t.Errorf("partition reader mmap_size = %d, want %d", n, readMapBytes)
	}
	if n := mapped(p.f.w); n != 0 {
		t.Errorf("partition writer mmap_size = %d, want 0", n)
	}
	if n := mapped(db.meta.r); n != 0 {
		t.Errorf("meta.db reader mmap_size = %d, want 0", n)
	}
	// A read through the map sees the sealed and vacuumed file.
	if n, err := p.seal(ctx, 1); err != nil || n != 1 {
		t.Fatalf("seal = %d, %v", n, err)
	}
	ev, err := s.GetEvent(ctx, "a", "e1")
	if err != nil || ev.Actor.ID != "alice" {
		t.Fatalf("GetEvent after the seal = %+v, %v", ev, err)
	}
}
