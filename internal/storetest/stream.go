package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

func streamOf(t *testing.T, open func(t *testing.T) Backend) (Backend, audit.EventStream) {
	t.Helper()
	b := open(t)
	if b.Stream == nil {
		t.Skip("backend has no stream")
	}
	return b, b.Stream
}

func evp(tenant, id string) *audit.Event {
	e := sampleEvent(tenant, id, baseTime)
	return &e
}

func seqs(rs []audit.AppendResult) []uint64 {
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r.Seq
	}
	return out
}

func runStream(t *testing.T, open func(t *testing.T) Backend) {
	t.Run("AppendReadInOrder", func(t *testing.T) {
		_, s := streamOf(t, open)
		ctx := t.Context()
		res, err := s.Append(ctx, []*audit.Event{evp("a", "1"), evp("a", "2")})
		noErr(t, err)
		res2, err := s.Append(ctx, []*audit.Event{evp("b", "1")})
		noErr(t, err)
		if got := append(seqs(res), seqs(res2)...); fmt.Sprint(got) != "[1 2 3]" {
			t.Fatalf("seqs = %v, want [1 2 3]", got)
		}
		recs, err := s.Read(ctx, 0, 10)
		noErr(t, err)
		if len(recs) != 3 {
			t.Fatalf("read %d records, want 3", len(recs))
		}
		for i, r := range recs {
			if r.Seq != uint64(i+1) {
				t.Fatalf("record %d has seq %d", i, r.Seq)
			}
		}
		sameJSON(t, "record 3", recs[2].Event, *evp("b", "1"))
		recs, err = s.Read(ctx, 1, 1)
		noErr(t, err)
		if len(recs) != 1 || recs[0].Seq != 2 {
			t.Fatalf("Read(after 1, max 1) = %+v, want seq 2", recs)
		}
		recs, err = s.Read(ctx, 3, 10)
		noErr(t, err)
		if len(recs) != 0 {
			t.Fatalf("Read past the end returned %d records", len(recs))
		}
	})

	// A read returns as many records as it asks for while the stream holds
	// that many: the pipeline takes a shorter read to mean it has caught up
	// (and lets new records gather for ingest.batch_linger before reading
	// again), so a read that came back short with a backlog waiting would
	// slow every drain. Sizes are the pipeline's: batches of 20,000 events
	// of about a real event's size.
	t.Run("ReadOfABacklogIsFull", func(t *testing.T) {
		_, s := streamOf(t, open)
		const total, max = 45_000, 20_000
		for i := 0; i < total; i += 1000 {
			evs := make([]*audit.Event, 1000)
			for j := range evs {
				evs[j] = evp(fmt.Sprintf("t%d", j%7), fmt.Sprintf("e%06d", i+j))
			}
			_, err := s.Append(t.Context(), evs)
			noErr(t, err)
		}
		var after uint64
		for _, want := range []int{max, max, total - 2*max} {
			recs, err := s.Read(t.Context(), after, max)
			noErr(t, err)
			if len(recs) != want {
				t.Fatalf("a read after %d of %d records returned %d, want %d", after, total, len(recs), want)
			}
			after = recs[len(recs)-1].Seq
		}
	})

	t.Run("IdempotentAcrossAndWithinCalls", func(t *testing.T) {
		_, s := streamOf(t, open)
		ctx := t.Context()
		res, err := s.Append(ctx, []*audit.Event{evp("a", "x"), evp("a", "x"), evp("b", "x")})
		noErr(t, err)
		want := []audit.AppendResult{{Seq: 1}, {Duplicate: true}, {Seq: 2}}
		if fmt.Sprint(res) != fmt.Sprint(want) {
			t.Fatalf("within one call: %+v, want %+v", res, want)
		}
		res, err = s.Append(ctx, []*audit.Event{evp("a", "y"), evp("a", "x")})
		noErr(t, err)
		want = []audit.AppendResult{{Seq: 3}, {Duplicate: true}}
		if fmt.Sprint(res) != fmt.Sprint(want) {
			t.Fatalf("across calls: %+v, want %+v", res, want)
		}
		recs, err := s.Read(ctx, 0, 100)
		noErr(t, err)
		if len(recs) != 3 {
			t.Fatalf("stream holds %d records, want 3", len(recs))
		}
	})

	t.Run("ConcurrentAppendsGroupCommit", func(t *testing.T) {
		_, s := streamOf(t, open)
		ctx := t.Context()
		const clients, each = 64, 5
		var wg sync.WaitGroup
		var mu sync.Mutex
		got := map[uint64]string{}
		errs := make(chan error, clients)
		for c := range clients {
			wg.Go(func() {
				for i := range each {
					id := fmt.Sprintf("c%d-%d", c, i)
					res, err := s.Append(ctx, []*audit.Event{evp("a", id), evp("a", id)})
					if err != nil {
						errs <- err
						return
					}
					if res[0].Duplicate || !res[1].Duplicate {
						errs <- fmt.Errorf("%s: results %+v", id, res)
						return
					}
					mu.Lock()
					got[res[0].Seq] = id
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if len(got) != clients*each {
			t.Fatalf("%d distinct seqs, want %d", len(got), clients*each)
		}
		recs, err := s.Read(ctx, 0, 10_000)
		noErr(t, err)
		for i, r := range recs {
			if r.Seq != uint64(i+1) || got[r.Seq] != r.Event.ID {
				t.Fatalf("record %d: seq %d id %s, acknowledged %s", i, r.Seq, r.Event.ID, got[r.Seq])
			}
		}
	})

	t.Run("WaitBlocksUntilAppend", func(t *testing.T) {
		_, s := streamOf(t, open)
		ctx := t.Context()
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		if err := s.Wait(short, 0); !isCtxErr(err) {
			t.Fatalf("Wait on an empty stream = %v, want a context error", err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Wait(ctx, 0) }()
		_, err := s.Append(ctx, []*audit.Event{evp("a", "1")})
		noErr(t, err)
		noErr(t, <-done)
		noErr(t, s.Wait(ctx, 0)) // already beyond: returns at once
	})

	t.Run("OffsetCommit", func(t *testing.T) {
		_, s := streamOf(t, open)
		ctx := t.Context()
		off, err := s.Offset(ctx, "detect")
		noErr(t, err)
		if off != 0 {
			t.Fatalf("new consumer offset = %d", off)
		}
		_, err = s.Append(ctx, []*audit.Event{evp("a", "1"), evp("a", "2"), evp("a", "3")})
		noErr(t, err)
		// Both consumers exist before either moves far: a stream may trim
		// what every consumer it knows of has committed.
		noErr(t, s.Commit(ctx, "store", 1))
		noErr(t, s.Commit(ctx, "detect", 2))
		if off, _ := s.Offset(ctx, "detect"); off != 2 {
			t.Fatalf("detect offset = %d, want 2", off)
		}
		if off, _ := s.Offset(ctx, "store"); off != 1 {
			t.Fatalf("store offset = %d, want 1", off)
		}
		// Records the slowest consumer has not committed are still there.
		recs, err := s.Read(ctx, 1, 10)
		noErr(t, err)
		if len(recs) != 2 || recs[0].Seq != 2 {
			t.Fatalf("after commits, Read(1) = %d records", len(recs))
		}
		if st, ok := s.(audit.StreamStats); ok {
			last, committed, err := st.Backlog(ctx)
			noErr(t, err)
			if last != 3 || committed != 1 {
				t.Fatalf("Backlog = %d, %d; want 3, 1", last, committed)
			}
		}
	})

	t.Run("DurableAcrossReopen", func(t *testing.T) {
		b, s := streamOf(t, open)
		if b.Reopen == nil {
			t.Skip("backend cannot reopen")
		}
		ctx := t.Context()
		_, err := s.Append(ctx, []*audit.Event{evp("a", "1"), evp("a", "2")})
		noErr(t, err)
		noErr(t, s.Commit(ctx, "c", 2))
		b = b.Reopen(t)
		s = b.Stream
		if off, _ := s.Offset(ctx, "c"); off != 2 {
			t.Fatalf("offset after reopen = %d, want 2", off)
		}
		res, err := s.Append(ctx, []*audit.Event{evp("a", "1"), evp("a", "3")})
		noErr(t, err)
		if !res[0].Duplicate || res[1].Seq != 3 {
			t.Fatalf("after reopen: %+v, want [dup, seq 3] (seqs never reused)", res)
		}
		recs, err := s.Read(ctx, 2, 10)
		noErr(t, err)
		if len(recs) != 1 || recs[0].Event.ID != "3" {
			t.Fatalf("after reopen Read(2) = %+v", recs)
		}
	})

	t.Run("Closed", func(t *testing.T) {
		_, s := streamOf(t, open)
		ctx := t.Context()
		waitErr := make(chan error, 1)
		go func() { waitErr <- s.Wait(ctx, 0) }()
		noErr(t, s.Close())
		if _, err := s.Append(ctx, []*audit.Event{evp("a", "1")}); !errors.Is(err, audit.ErrStreamClosed) {
			t.Fatalf("Append after Close = %v, want ErrStreamClosed", err)
		}
		if err := <-waitErr; !errors.Is(err, audit.ErrStreamClosed) {
			t.Fatalf("Wait across Close = %v, want ErrStreamClosed", err)
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		_, s := streamOf(t, open)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := s.Append(ctx, []*audit.Event{evp("a", "1")}); !isCtxErr(err) {
			t.Fatalf("Append with a cancelled context = %v, want the context error", err)
		}
		recs, err := s.Read(t.Context(), 0, 10)
		noErr(t, err)
		if len(recs) != 0 {
			t.Fatalf("a cancelled Append stored %d records", len(recs))
		}
	})
}
