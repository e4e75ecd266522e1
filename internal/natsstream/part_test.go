package natsstream_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/natsstream"
	"github.com/vigilhq/vigil/internal/natsstream/natstest"
	"github.com/vigilhq/vigil/internal/storetest"
)

// TestPartConformance: on a stream of one partition, the view of that
// partition is the whole stream, so it must pass the stream contract.
func TestPartConformance(t *testing.T) {
	srv := natstest.Server(t)
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		opts, s := openFresh(t, srv.URL(), func(o *natsstream.Options) { o.Partitions = 1 })
		b := storetest.Backend{Stream: s.Part(0)}
		b.Reopen = func(t *testing.T) storetest.Backend {
			_ = s.Close()
			return storetest.Backend{Stream: reopen(t, opts).Part(0)}
		}
		return b
	})
}

// tenantIn returns a tenant name whose events go to partition p of n,
// other than those in avoid.
func tenantIn(t *testing.T, p, n int, avoid ...string) string {
	t.Helper()
	for i := range 10_000 {
		name := fmt.Sprintf("tenant-%d", i)
		if natsstream.Partition(name, n) != p {
			continue
		}
		taken := false
		for _, a := range avoid {
			taken = taken || a == name
		}
		if !taken {
			return name
		}
	}
	t.Fatalf("no tenant falls in partition %d of %d", p, n)
	return ""
}

// TestPartReadsOnlyItsPartition appends the events of 40 tenants, their
// partitions interleaved, and reads each partition's view from 0 with a
// small max, the four concurrently: each view returns exactly the events
// of its tenants, in Seq order, every read full while records remain, and
// together they return every event once.
func TestPartReadsOnlyItsPartition(t *testing.T) {
	srv := natstest.Server(t)
	_, s := openFresh(t, srv.URL(), func(o *natsstream.Options) { o.Partitions = 4 })
	ctx := t.Context()
	if s.Partitions() != 4 {
		t.Fatalf("Partitions() = %d, want 4", s.Partitions())
	}
	const tenants, per, max = 40, 50, 7
	want := make([][]uint64, 4) // by partition, the seqs appended there
	bySeq := map[uint64]string{}
	for i := range per {
		var evs []*audit.Event
		for tn := range tenants {
			evs = append(evs, ev(fmt.Sprintf("tenant-%d", tn), fmt.Sprintf("e%d", i)))
		}
		res, err := s.Append(ctx, evs)
		if err != nil {
			t.Fatal(err)
		}
		for j, r := range res {
			if r.Duplicate {
				t.Fatalf("event %s/%s appended as a duplicate", evs[j].Tenant, evs[j].ID)
			}
			p := natsstream.Partition(evs[j].Tenant, 4)
			want[p] = append(want[p], r.Seq)
			bySeq[r.Seq] = evs[j].Tenant + "/" + evs[j].ID
		}
	}
	for p, seqs := range want {
		if len(seqs) == 0 || len(seqs) == tenants*per {
			t.Fatalf("partition %d got %d of %d events; the test needs them spread", p, len(seqs), tenants*per)
		}
	}

	got := make([][]audit.Record, 4)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			v := s.Part(p)
			var after uint64
			for {
				recs, err := v.Read(ctx, after, max)
				if err != nil {
					errs[p] = err
					return
				}
				left := len(want[p]) - len(got[p])
				if len(recs) != min(max, left) {
					errs[p] = fmt.Errorf("partition %d: Read(after %d, max %d) with %d records left returned %d",
						p, after, max, left, len(recs))
					return
				}
				if len(recs) == 0 {
					return
				}
				got[p] = append(got[p], recs...)
				after = recs[len(recs)-1].Seq
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for p := range 4 {
		if len(got[p]) != len(want[p]) {
			t.Fatalf("partition %d: read %d records, want %d", p, len(got[p]), len(want[p]))
		}
		for i, r := range got[p] {
			if r.Seq != want[p][i] {
				t.Fatalf("partition %d: record %d has seq %d, want %d", p, i, r.Seq, want[p][i])
			}
			if k := r.Event.Tenant + "/" + r.Event.ID; bySeq[r.Seq] != k {
				t.Fatalf("partition %d: seq %d holds %s, want %s", p, r.Seq, k, bySeq[r.Seq])
			}
			if seen[r.Seq] {
				t.Fatalf("seq %d read from two partitions", r.Seq)
			}
			seen[r.Seq] = true
		}
	}
	if len(seen) != tenants*per {
		t.Fatalf("the partitions returned %d events together, want %d", len(seen), tenants*per)
	}
}

// TestPartWaitWakesOnlyForItsPartition: a view's Wait returns for an
// append to its partition, and not for appends to another.
func TestPartWaitWakesOnlyForItsPartition(t *testing.T) {
	srv := natstest.Server(t)
	_, s := openFresh(t, srv.URL(), func(o *natsstream.Options) { o.Partitions = 4 })
	ctx := t.Context()
	mine, other := tenantIn(t, 1, 4), tenantIn(t, 2, 4)
	v := s.Part(1)

	if _, err := s.Append(ctx, []*audit.Event{ev(other, "1")}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := v.Wait(short, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on partition 1 holding only another partition's record = %v, want the deadline", err)
	}

	done := make(chan error, 1)
	go func() { done <- v.Wait(ctx, 0) }()
	// The append is announced, which wakes the waiter to check again.
	if _, err := v.Append(ctx, []*audit.Event{ev(other, "2")}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("Wait on partition 1 returned (%v) for an append to partition 2", err)
	case <-time.After(1500 * time.Millisecond): // past Wait's one-second poll too
	}
	res, err := s.Append(ctx, []*audit.Event{ev(mine, "1")})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait on partition 1 after an append to it = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait on partition 1 did not return after an append to it")
	}
	short2, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if err := v.Wait(short2, res[0].Seq); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past partition 1's last record = %v, want the deadline", err)
	}
}

// TestPartCommitIsFenced: two nodes claim the same partition's position;
// the earlier claimer's commit is fenced, while its claim of another
// partition is not affected.
func TestPartCommitIsFenced(t *testing.T) {
	srv := natstest.Server(t)
	opts, a := openFresh(t, srv.URL(), func(o *natsstream.Options) { o.Partitions = 4 })
	b := reopen(t, opts)
	ctx := t.Context()
	if _, err := a.Append(ctx, []*audit.Event{ev(tenantIn(t, 1, 4), "1"), ev(tenantIn(t, 2, 4), "1")}); err != nil {
		t.Fatal(err)
	}
	for _, claim := range []func() (uint64, error){
		func() (uint64, error) { return a.Part(1).Claim(ctx, "pipeline") },
		func() (uint64, error) { return a.Part(2).Claim(ctx, "pipeline") },
		func() (uint64, error) { return b.Part(1).Claim(ctx, "pipeline") },
	} {
		if off, err := claim(); err != nil || off != 0 {
			t.Fatalf("claim of a new partition position = %d, %v; want 0", off, err)
		}
	}
	if err := a.Part(1).Commit(ctx, "pipeline", 1); !errors.Is(err, audit.ErrFenced) {
		t.Fatalf("the earlier claimer's commit of partition 1 = %v, want ErrFenced", err)
	}
	if err := b.Part(1).Commit(ctx, "pipeline", 1); err != nil {
		t.Fatalf("the later claimer's commit of partition 1: %v", err)
	}
	if err := a.Part(2).Commit(ctx, "pipeline", 2); err != nil {
		t.Fatalf("the earlier claimer's commit of partition 2, which nobody else claimed: %v", err)
	}
	for p, want := range map[int]uint64{1: 1, 2: 2} {
		if off, err := b.Part(p).Offset(ctx, "pipeline"); err != nil || off != want {
			t.Fatalf("partition %d's position = %d, %v; want %d", p, off, err, want)
		}
	}
	if err := a.Part(1).Commit(ctx, "pipeline", 2); !errors.Is(err, audit.ErrFenced) {
		t.Fatalf("the earlier claimer's commit of partition 1 after the other's = %v, want ErrFenced", err)
	}
}

// positionsOf reads the offsets bucket as `vigil cluster status` does.
func positionsOf(t *testing.T, opts natsstream.Options) map[string]uint64 {
	t.Helper()
	st, err := natsstream.Inspect(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return st.Positions
}

// TestPartClaimSwitchesModes: a consumer at a whole-stream position X
// starts every partition at X; once every partition has its own position,
// the whole-stream one is gone (and its claimer fenced). Switching back,
// the whole stream resumes at the lowest partition position and the
// partition positions are gone (and their claimers fenced); a partition
// that never had a position counts as 0.
func TestPartClaimSwitchesModes(t *testing.T) {
	srv := natstest.Server(t)
	opts, s := openFresh(t, srv.URL(), func(o *natsstream.Options) { o.Partitions = 4 })
	ctx := t.Context()
	var evs []*audit.Event
	for i := range 20 {
		evs = append(evs, ev(fmt.Sprintf("tenant-%d", i%8), fmt.Sprint(i)))
	}
	if _, err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, "pipeline"); err != nil {
		t.Fatal(err)
	}
	const x = 5
	if err := s.Commit(ctx, "pipeline", x); err != nil {
		t.Fatal(err)
	}

	node := reopen(t, opts)
	if off, err := node.Part(0).Offset(ctx, "pipeline"); err != nil || off != x {
		t.Fatalf("partition 0's offset before its claim = %d, %v; want the whole-stream %d", off, err, x)
	}
	if off, err := node.PartOffset(ctx, "pipeline", 1); err != nil || off != x {
		t.Fatalf("PartOffset of partition 1 before its claim = %d, %v; want the whole-stream %d", off, err, x)
	}
	for p := range 4 {
		off, err := node.Part(p).Claim(ctx, "pipeline")
		if err != nil || off != x {
			t.Fatalf("first claim of partition %d = %d, %v; want %d", p, off, err, x)
		}
		pos := positionsOf(t, opts)
		if _, held := pos["pipeline"]; held != (p < 3) {
			t.Fatalf("after claiming partitions 0-%d the positions are %v", p, pos)
		}
	}
	if err := s.Commit(ctx, "pipeline", x+1); !errors.Is(err, audit.ErrFenced) {
		t.Fatalf("a whole-stream commit after every partition was claimed = %v, want ErrFenced", err)
	}
	for p, n := range []uint64{8, 6, 12, 9} {
		if err := node.Part(p).Commit(ctx, "pipeline", n); err != nil {
			t.Fatal(err)
		}
	}
	for p, n := range []uint64{8, 6, 12, 9} {
		if off, err := node.PartOffset(ctx, "pipeline", p); err != nil || off != n {
			t.Fatalf("PartOffset of partition %d = %d, %v; want %d", p, off, err, n)
		}
	}

	back := reopen(t, opts)
	if off, err := back.Offset(ctx, "pipeline"); err != nil || off != 6 {
		t.Fatalf("whole-stream offset with only partition positions = %d, %v; want their lowest, 6", off, err)
	}
	if off, err := back.Claim(ctx, "pipeline"); err != nil || off != 6 {
		t.Fatalf("whole-stream claim with only partition positions = %d, %v; want their lowest, 6", off, err)
	}
	if pos := positionsOf(t, opts); len(pos) != 1 || pos["pipeline"] != 6 {
		t.Fatalf("after the whole-stream claim the positions are %v, want only pipeline=6", pos)
	}
	if err := node.Part(2).Commit(ctx, "pipeline", 13); !errors.Is(err, audit.ErrFenced) {
		t.Fatalf("a partition commit after the whole-stream claim = %v, want ErrFenced", err)
	}
	if err := back.Commit(ctx, "pipeline", 7); err != nil {
		t.Fatal(err)
	}

	// A consumer that ran partitioned on partition 0 only (the others
	// never claimed) resumes the whole stream at 0: the other partitions'
	// records are unconsumed.
	if _, err := node.Part(0).Claim(ctx, "partial"); err != nil {
		t.Fatal(err)
	}
	if err := node.Part(0).Commit(ctx, "partial", 15); err != nil {
		t.Fatal(err)
	}
	if off, err := back.Claim(ctx, "partial"); err != nil || off != 0 {
		t.Fatalf("whole-stream claim after partition 0 alone ran = %d, %v; want 0", off, err)
	}
}

// readAllOf reads a stream or view from 0 to its end.
func readAllOf(t *testing.T, s audit.EventStream) []audit.Record {
	t.Helper()
	recs, err := s.Read(t.Context(), 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func seqsOf(recs []audit.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

// appendAlternating appends n events of each tenant, alternating, and
// returns the seqs of each tenant's events.
func appendAlternating(t *testing.T, s *natsstream.Stream, n int, tenants ...string) map[string][]uint64 {
	t.Helper()
	out := map[string][]uint64{}
	for i := range n {
		for _, tn := range tenants {
			res, err := s.Append(t.Context(), []*audit.Event{ev(tn, fmt.Sprint(i))})
			if err != nil {
				t.Fatal(err)
			}
			out[tn] = append(out[tn], res[0].Seq)
		}
	}
	return out
}

// TestPartCommitPurgesItsPartition: a partition commit purges the
// partition's committed records and no other partition's.
func TestPartCommitPurgesItsPartition(t *testing.T) {
	srv := natstest.Server(t)
	_, s := openFresh(t, srv.URL(), func(o *natsstream.Options) { o.Partitions = 4 })
	ctx := t.Context()
	a, b := tenantIn(t, 0, 4), tenantIn(t, 3, 4)
	seqs := appendAlternating(t, s, 5, a, b)

	if _, err := s.Part(0).Claim(ctx, "pipeline"); err != nil {
		t.Fatal(err)
	}
	if err := s.Part(0).Commit(ctx, "pipeline", seqs[a][4]); err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(readAllOf(t, s)); fmt.Sprint(got) != fmt.Sprint(seqs[b]) {
		t.Fatalf("after committing partition 0 to its end the stream holds %v, want partition 3's %v", got, seqs[b])
	}
	if got := readAllOf(t, s.Part(0)); len(got) != 0 {
		t.Fatalf("partition 0 still holds %v", seqsOf(got))
	}
	// Partition 3 commits part of its records: the rest stay.
	if err := s.Part(3).Commit(ctx, "pipeline", seqs[b][2]); err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(readAllOf(t, s)); fmt.Sprint(got) != fmt.Sprint(seqs[b][3:]) {
		t.Fatalf("after committing partition 3 to %d the stream holds %v, want %v", seqs[b][2], got, seqs[b][3:])
	}
}

// TestPartPurgeWaitsForWholeStreamConsumers: a whole-stream consumer that
// lags holds back the purge of a partition committed past it.
func TestPartPurgeWaitsForWholeStreamConsumers(t *testing.T) {
	srv := natstest.Server(t)
	_, s := openFresh(t, srv.URL(), func(o *natsstream.Options) { o.Partitions = 4 })
	ctx := t.Context()
	a, b := tenantIn(t, 1, 4), tenantIn(t, 2, 4)
	seqs := appendAlternating(t, s, 5, a, b)
	lag := seqs[a][1] // the archive has consumed a's first two records
	if err := s.Commit(ctx, "archive", lag); err != nil {
		t.Fatal(err)
	}
	if err := s.Part(1).Commit(ctx, "pipeline", seqs[a][4]); err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(readAllOf(t, s.Part(1))); fmt.Sprint(got) != fmt.Sprint(seqs[a][2:]) {
		t.Fatalf("partition 1, committed to its end, with a whole-stream consumer at %d holds %v, want %v",
			lag, got, seqs[a][2:])
	}
	var wantB []uint64
	for _, q := range seqs[b] {
		if q > lag {
			wantB = append(wantB, q)
		}
	}
	if got := seqsOf(readAllOf(t, s.Part(2))); fmt.Sprint(got) != fmt.Sprint(wantB) {
		t.Fatalf("partition 2 holds %v, want %v", got, wantB)
	}
	// The whole-stream consumer catches up: partition 1, committed to its
	// end before, is purged without committing again; partition 2 keeps
	// what its own consumer has not committed.
	if err := s.Part(2).Commit(ctx, "pipeline", seqs[b][2]); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "archive", seqs[b][4]); err != nil {
		t.Fatal(err)
	}
	if got := readAllOf(t, s.Part(1)); len(got) != 0 {
		t.Errorf("partition 1 still holds %v after every consumer committed it", seqsOf(got))
	}
	if got := seqsOf(readAllOf(t, s.Part(2))); fmt.Sprint(got) != fmt.Sprint(seqs[b][3:]) {
		t.Errorf("partition 2 holds %v, want %v (what its consumer has not committed)", got, seqs[b][3:])
	}
}

// TestBacklogWithPartitionPositions: once partition positions exist, the
// stream's Backlog counts the records it holds, not the distance from the
// lowest position; a view's Backlog is its partition's.
func TestBacklogWithPartitionPositions(t *testing.T) {
	srv := natstest.Server(t)
	_, s := openFresh(t, srv.URL(), func(o *natsstream.Options) { o.Partitions = 4 })
	ctx := t.Context()
	a, b := tenantIn(t, 0, 4), tenantIn(t, 1, 4)
	// Partition 1's records come first, so the only position (partition
	// 0's, at the end of the stream) is not the backlog's bottom.
	seqsB := appendAlternating(t, s, 10, b)[b]
	seqsA := appendAlternating(t, s, 10, a)[a]
	if err := s.Part(0).Commit(ctx, "pipeline", seqsA[9]); err != nil {
		t.Fatal(err)
	}
	last, committed, err := s.Backlog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last != 20 || last-committed != 10 {
		t.Fatalf("Backlog = %d, %d; want 20 and a backlog of partition 1's 10 held records", last, committed)
	}
	last, committed, err = s.Part(1).Backlog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last != seqsB[9] || committed != 0 {
		t.Fatalf("partition 1's Backlog = %d, %d; want %d, 0", last, committed, seqsB[9])
	}
	last, committed, err = s.Part(0).Backlog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last != 0 || committed != seqsA[9] {
		t.Fatalf("committed partition 0's Backlog = %d, %d; want 0 (no record held), %d", last, committed, seqsA[9])
	}
	// What each partition holds: none of 0's (committed, purged), all of 1's.
	for p, want := range []int64{0, 10} {
		if held, err := s.Part(p).Held(ctx); err != nil || held != want {
			t.Errorf("partition %d holds %d records (%v), want %d", p, held, err, want)
		}
	}
}

// TestPartClosed: closing a view closes only it; closing the stream
// closes every view, and Part still hands out views that say so.
func TestPartClosed(t *testing.T) {
	srv := natstest.Server(t)
	_, s := openFresh(t, srv.URL(), func(o *natsstream.Options) { o.Partitions = 2 })
	ctx := t.Context()
	v := s.Part(0)
	if s.Part(0) != v {
		t.Fatal("Part(0) returned a new view while the first is open")
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Read(ctx, 0, 1); !errors.Is(err, audit.ErrStreamClosed) {
		t.Fatalf("Read of a closed view = %v, want ErrStreamClosed", err)
	}
	if _, err := s.Append(ctx, []*audit.Event{ev(tenantIn(t, 0, 2), "1")}); err != nil {
		t.Fatalf("the stream after a view closed: %v", err)
	}
	if recs, err := s.Part(0).Read(ctx, 0, 10); err != nil || len(recs) != 1 {
		t.Fatalf("a new view of partition 0 reads %d records, %v; want 1", len(recs), err)
	}
	w := s.Part(1)
	waitErr := make(chan error, 1)
	go func() { waitErr <- w.Wait(ctx, 0) }()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-waitErr; !errors.Is(err, audit.ErrStreamClosed) {
		t.Fatalf("a view's Wait across the stream's Close = %v, want ErrStreamClosed", err)
	}
	if _, err := s.Part(1).Claim(ctx, "pipeline"); !errors.Is(err, audit.ErrStreamClosed) {
		t.Fatalf("Claim through a view of a closed stream = %v, want ErrStreamClosed", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("Part(2) of a stream of 2 partitions did not panic")
			}
		}()
		s.Part(2)
	}()
}
