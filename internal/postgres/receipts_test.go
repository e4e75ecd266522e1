package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilhq/vigil/internal/audit"
)

// TestStoredReceipts: the receipts of stored events come back exactly
// (nanoseconds, in UTC) across day partitions and lookup chunks; absent,
// other tenants', unstorable and purged keys are simply absent.
func TestStoredReceipts(t *testing.T) {
	s, _ := openEventsAt(t, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC))
	ctx := t.Context()
	if got, err := s.StoredReceipts(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("no keys: %v, %v", got, err)
	}

	// One event a day over three days, received in a zone other than UTC
	// with every nanosecond digit set.
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	day := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	want := map[audit.EventKey]time.Time{}
	var evs []audit.Event
	for i := range 3 {
		ev := newLoginEvent("a", fmt.Sprintf("e%d", i), day.Add(time.Duration(i)*24*time.Hour))
		ev.ReceivedAt = time.Date(2026, 3, 5, 8, 0, i, 123456789, zone)
		evs = append(evs, ev)
		want[audit.EventKey{Tenant: "a", ID: ev.ID}] = ev.ReceivedAt.UTC()
	}
	if err := s.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}

	// More keys than one lookup sends, the stored ones last (so in the
	// second chunk), repeated, beside keys that are not stored: another
	// tenant's id, and ids no event can have.
	var keys []audit.EventKey
	for i := range 25_000 {
		keys = append(keys, audit.EventKey{Tenant: "a", ID: fmt.Sprintf("absent-%d", i)})
	}
	keys = append(keys,
		audit.EventKey{Tenant: "b", ID: "e0"},
		audit.EventKey{Tenant: "a", ID: "bad\xff"},
		audit.EventKey{Tenant: "a", ID: "nul\x00"},
		audit.EventKey{Tenant: "\xfe", ID: "e1"},
		audit.EventKey{Tenant: "a", ID: ""},
	)
	for k := range want {
		keys = append(keys, k, k)
	}
	got, err := s.StoredReceipts(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("receipts (-want +got):\n%s", d)
	}
	for k, at := range got {
		if at.Location() != time.UTC || !at.Equal(want[k]) {
			t.Fatalf("receipt of %v is %s, want %s in UTC", k, at, want[k])
		}
	}

	// Purging the first two days removes their keys (and drops the first
	// day's emptied partition); the third stays.
	if _, err := s.Purge(ctx, "a", day.Add(36*time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err = s.StoredReceipts(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	last := audit.EventKey{Tenant: "a", ID: "e2"}
	if d := cmp.Diff(map[audit.EventKey]time.Time{last: want[last]}, got); d != "" {
		t.Fatalf("receipts after a purge (-want +got):\n%s", d)
	}
}
