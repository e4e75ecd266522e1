package sqlite_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// TestInsertSharedTimestamps stores many events that share one timestamp
// (clients stamping to the second do this all the time) and checks that
// repeats are still recognised, including a repeat whose time differs
// within the same day partition. The existence check once probed the
// (tenant, time) index and scanned every event sharing the timestamp.
func TestInsertSharedTimestamps(t *testing.T) {
	db := openDB(t, sqlite.Options{Dir: t.TempDir()})
	ctx := t.Context()
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	batch := func(from, n int, when time.Time) []audit.Event {
		out := make([]audit.Event, n)
		for i := range out {
			out[i] = audit.Event{ID: fmt.Sprintf("e%05d", from+i), Tenant: "acme", Action: "auth.logout", Time: when, ReceivedAt: when,
				Actor: audit.Actor{ID: "u"}}
		}
		return out
	}
	for _, b := range [][]audit.Event{batch(0, 3000, at), batch(3000, 3000, at), batch(0, 3000, at), batch(0, 10, at.Add(time.Hour))} {
		if err := db.Events().InsertEvents(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	f := audit.EventFilter{Tenant: "acme", Limit: audit.MaxPageSize}
	for {
		page, err := db.Events().SearchEvents(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Events)
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	if n != 6000 {
		t.Fatalf("stored %d events, want 6000 (repeats, even at another time of the same day, are skipped)", n)
	}
}
