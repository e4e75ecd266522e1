package natsstream

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/natsstream/natstest"
)

// TestReadFillsFromShortFetches: a fetch may hand over fewer records than
// the stream holds (here every fetch is capped at 700); Read fetches again
// until it has what it was asked for, and stops short only at the end.
func TestReadFillsFromShortFetches(t *testing.T) {
	srv := natstest.Server(t)
	s, err := Open(t.Context(), Options{URL: srv.URL(), Name: "SHORTFETCH", Subject: "shortfetch.events", Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.fetchMax = 700
	const total = 5000
	at := time.Unix(1_700_000_000, 0).UTC()
	var evs []*audit.Event
	for i := range total {
		evs = append(evs, &audit.Event{ID: fmt.Sprintf("e%05d", i), Tenant: fmt.Sprintf("t%d", i%3), Action: "auth.login.success",
			Time: at, ReceivedAt: at, Actor: audit.Actor{ID: "u"}})
	}
	if _, err := s.Append(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	var after uint64
	for _, want := range []int{2000, 2000, 1000, 0} {
		recs, err := s.Read(t.Context(), after, 2000)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != want {
			t.Fatalf("Read(after %d, max 2000) of %d records returned %d, want %d", after, total, len(recs), want)
		}
		for i, r := range recs {
			if r.Seq != after+uint64(i)+1 {
				t.Fatalf("record %d of the read after %d has seq %d", i, after, r.Seq)
			}
		}
		if want > 0 {
			after = recs[len(recs)-1].Seq
		}
	}
}
