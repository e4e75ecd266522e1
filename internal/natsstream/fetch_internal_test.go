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
	s.rd.fetchMax = 700
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

// TestPartReadFillsFromShortFetches: a partition view, too, fetches again
// until it has what it was asked for (every fetch capped at 70 here), and
// reads only its partition's records, in Seq order.
func TestPartReadFillsFromShortFetches(t *testing.T) {
	srv := natstest.Server(t)
	s, err := Open(t.Context(), Options{URL: srv.URL(), Name: "PARTFETCH", Subject: "partfetch.events", Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Unix(1_700_000_000, 0).UTC()
	var evs []*audit.Event
	var want []uint64 // seqs of partition 1's records
	for i := range 3000 {
		evs = append(evs, &audit.Event{ID: fmt.Sprintf("e%05d", i), Tenant: fmt.Sprintf("t%d", i%5), Action: "auth.login.success",
			Time: at, ReceivedAt: at, Actor: audit.Actor{ID: "u"}})
	}
	res, err := s.Append(t.Context(), evs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if Partition(evs[i].Tenant, 2) == 1 {
			want = append(want, r.Seq)
		}
	}
	if len(want) < 1000 || len(want) == len(evs) {
		t.Fatalf("partition 1 holds %d of %d records; the test needs several reads of each partition", len(want), len(evs))
	}
	v := s.Part(1)
	v.rd.fetchMax = 70
	var got []uint64
	var after uint64
	for {
		recs, err := v.Read(t.Context(), after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if left := len(want) - len(got); len(recs) != min(500, left) {
			t.Fatalf("Read(after %d, max 500) with %d of partition 1's records left returned %d", after, left, len(recs))
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			got = append(got, r.Seq)
		}
		after = recs[len(recs)-1].Seq
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("partition 1 read seqs %v…, want %v…", got[:min(10, len(got))], want[:10])
	}
}
