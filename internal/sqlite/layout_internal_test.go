package sqlite

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// TestPartitionLayoutIsKept: a partition created by this version gets the
// time-bucketed indexes (an eighth of its period wide); one written by an
// earlier version keeps its indexes when reopened, and both answer the
// same searches and id lookups, across every bucket of the day.
func TestPartitionLayoutIsKept(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	day1 := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	day2 := day1.Add(24 * time.Hour)
	events := func(day time.Time) []audit.Event {
		var evs []audit.Event
		for i := range 48 { // every half hour: six per bucket
			evs = append(evs, audit.Event{ID: fmt.Sprintf("%s-%02d", day.Format("0102"), i), Tenant: "a",
				Time: day.Add(time.Duration(i) * 30 * time.Minute), Action: audit.ActionLoginFailure,
				Actor: audit.Actor{ID: "alice"}})
		}
		return evs
	}
	db, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	db.Events().legacyLayout = true
	if err := db.Events().InsertEvents(ctx, events(day1)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := db.Events()
	if err := s.InsertEvents(ctx, events(day2)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		day  time.Time
		want int64
	}{{day1, 0}, {day2, int64(3 * time.Hour)}} {
		p, err := s.acquire(ctx, s.index(c.day.UnixNano()), false)
		if err != nil {
			t.Fatal(err)
		}
		got := p.bucketNs
		s.release(p)
		if got != c.want {
			t.Fatalf("partition of %s: bucket width %v, want %v", c.day.Format(time.DateOnly), time.Duration(got), time.Duration(c.want))
		}
	}
	// Both days, newest first, through the actor index, page by page.
	var ids []string
	f := audit.EventFilter{Tenant: "a", ActorID: "alice", Limit: 7}
	for {
		page, err := s.SearchEvents(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Events {
			ids = append(ids, ev.ID)
		}
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	want := append(events(day1), events(day2)...)
	if len(ids) != len(want) {
		t.Fatalf("%d events found, want %d", len(ids), len(want))
	}
	for i, id := range ids {
		if w := want[len(want)-1-i].ID; id != w {
			t.Fatalf("event %d is %s, want %s (newest first)", i, id, w)
		}
	}
	// A window inside one bucket of the bucketed day, and lookups by id.
	page, err := s.SearchEvents(ctx, audit.EventFilter{Tenant: "a", ActorID: "alice", Since: day2.Add(7 * time.Hour), Until: day2.Add(8 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 2 || page.Events[0].ID != "0402-15" || page.Events[1].ID != "0402-14" {
		t.Fatalf("07:00-08:00 of the bucketed day: %v", page.Events)
	}
	for _, ev := range want {
		got, err := s.GetEvent(ctx, "a", ev.ID)
		if err != nil || !got.Time.Equal(ev.Time) {
			t.Fatalf("GetEvent(%s) = %v, %v", ev.ID, got, err)
		}
	}
	// Repeats are stored once in either layout.
	if err := s.InsertEvents(ctx, want); err != nil {
		t.Fatal(err)
	}
	n, err := s.CountBefore(ctx, "a", day2.Add(48*time.Hour))
	if err != nil || n != int64(len(want)) {
		t.Fatalf("%d events after storing them all again, want %d (%v)", n, len(want), err)
	}
}
