package natsstream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/natsstream"
	"github.com/vigilhq/vigil/internal/natsstream/natstest"
	"github.com/vigilhq/vigil/internal/storetest"
)

var streamN atomic.Int64

// openFresh opens a stream of its own on srv, closed when the test ends.
func openFresh(t *testing.T, url string, mod func(*natsstream.Options)) (natsstream.Options, *natsstream.Stream) {
	t.Helper()
	n := streamN.Add(1)
	opts := natsstream.Options{URL: url, Name: fmt.Sprintf("T%d", n), Subject: fmt.Sprintf("t%d.events", n), Partitions: 4}
	if mod != nil {
		mod(&opts)
	}
	s, err := natsstream.Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return opts, s
}

func reopen(t *testing.T, opts natsstream.Options) *natsstream.Stream {
	t.Helper()
	s, err := natsstream.Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	srv := natstest.Server(t)
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		opts, s := openFresh(t, srv.URL(), nil)
		b := storetest.Backend{Stream: s}
		b.Reopen = func(t *testing.T) storetest.Backend {
			_ = s.Close()
			return storetest.Backend{Stream: reopen(t, opts)}
		}
		return b
	})
}

func ev(tenant, id string) *audit.Event {
	return &audit.Event{ID: id, Tenant: tenant, Action: "auth.login.success", Time: time.Unix(1_700_000_000, 0).UTC(),
		ReceivedAt: time.Unix(1_700_000_001, 0).UTC(), Actor: audit.Actor{ID: "u-" + id}}
}

func TestDuplicateAfterWindowIsAppendedAgain(t *testing.T) {
	srv := natstest.Server(t)
	_, s := openFresh(t, srv.URL(), func(o *natsstream.Options) { o.DuplicateWindow = time.Second })
	ctx := t.Context()
	if got := s.DedupeWindow(); got != time.Second {
		t.Fatalf("DedupeWindow = %s, want 1s", got)
	}
	res, err := s.Append(ctx, []*audit.Event{ev("a", "1")})
	if err != nil || res[0].Seq != 1 {
		t.Fatalf("first append: %+v, %v", res, err)
	}
	res, err = s.Append(ctx, []*audit.Event{ev("a", "1")})
	if err != nil || !res[0].Duplicate {
		t.Fatalf("retry within the window: %+v, %v; want a duplicate", res, err)
	}
	// Past the window JetStream forgets the id (it expires ids on a timer,
	// so allow it some time): the event is appended again, which is what
	// the pipeline's check against the store is for.
	deadline := time.Now().Add(15 * time.Second)
	for {
		time.Sleep(500 * time.Millisecond)
		res, err = s.Append(ctx, []*audit.Event{ev("a", "1")})
		if err != nil {
			t.Fatal(err)
		}
		if !res[0].Duplicate {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the id was still a duplicate 15s after a 1s window")
		}
	}
	if res[0].Seq != 2 {
		t.Fatalf("appended again at seq %d, want 2", res[0].Seq)
	}
}

func TestBacklogCap(t *testing.T) {
	srv := natstest.Server(t)
	_, s := openFresh(t, srv.URL(), func(o *natsstream.Options) { o.MaxBacklog = 3 })
	ctx := t.Context()
	if _, err := s.Append(ctx, []*audit.Event{ev("a", "1"), ev("a", "2"), ev("a", "3")}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Append(ctx, []*audit.Event{ev("a", "4")})
	var ae *audit.Error
	if !errors.As(err, &ae) || ae.Code != audit.EUNAVAILABLE || !strings.Contains(err.Error(), "backlog is full") {
		t.Fatalf("append over the cap = %v, want EUNAVAILABLE backlog is full", err)
	}
	// Committing lets the stream drop what was consumed, which makes room.
	if err := s.Commit(ctx, "pipeline", 3); err != nil {
		t.Fatal(err)
	}
	res, err := s.Append(ctx, []*audit.Event{ev("a", "4")})
	if err != nil || res[0].Seq != 4 {
		t.Fatalf("append after the commit: %+v, %v", res, err)
	}
	recs, err := s.Read(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Seq != 4 {
		t.Fatalf("after purge Read(0) = %+v, want only seq 4", recs)
	}
}

func TestPartitionIsStablePerTenant(t *testing.T) {
	seen := map[int]bool{}
	for i := range 200 {
		tenant := fmt.Sprintf("tenant-%d", i)
		p := natsstream.Partition(tenant, 16)
		if p < 0 || p >= 16 || p != natsstream.Partition(tenant, 16) {
			t.Fatalf("Partition(%s) = %d", tenant, p)
		}
		seen[p] = true
	}
	if len(seen) < 12 {
		t.Fatalf("200 tenants fell in only %d of 16 partitions", len(seen))
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, tc := range []struct {
		opts natsstream.Options
		want string
	}{
		{natsstream.Options{}, "URL is required"},
		{natsstream.Options{URL: "nats://x", Name: "a.b"}, "stream name"},
		{natsstream.Options{URL: "nats://x", Subject: "a.*"}, "subject prefix"},
		{natsstream.Options{URL: "nats://x", Partitions: 2000}, "partitions"},
		{natsstream.Options{URL: "nats://x", Replicas: 7}, "replicas"},
		{natsstream.Options{URL: "nats://x", DuplicateWindow: time.Millisecond}, "duplicate window"},
	} {
		_, err := natsstream.Open(t.Context(), tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v) = %v, want an error naming %q", tc.opts, err, tc.want)
		}
	}
}

func TestUnreachableServerNamesNoCredentials(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := natsstream.Open(ctx, natsstream.Options{URL: "nats://vigil:s3cret-pass@127.0.0.1:1", Timeout: time.Second})
	var ae *audit.Error
	if !errors.As(err, &ae) || ae.Code != audit.EUNAVAILABLE {
		t.Fatalf("Open on a closed port = %v, want EUNAVAILABLE", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("the error shows the password: %v", err)
	}
}

// TestReadAcrossServerRestart: the reader's consumer lives in the server's
// memory; after the server restarts, reading resumes where it was.
func TestReadAcrossServerRestart(t *testing.T) {
	srv := natstest.Server(t)
	_, s := openFresh(t, srv.URL(), nil)
	ctx := t.Context()
	if _, err := s.Append(ctx, []*audit.Event{ev("a", "1"), ev("a", "2")}); err != nil {
		t.Fatal(err)
	}
	recs, err := s.Read(ctx, 0, 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("Read = %+v, %v", recs, err)
	}
	srv.Stop()
	srv.Start()
	var got []audit.Record
	deadline := time.Now().Add(30 * time.Second)
	for len(got) == 0 {
		got, err = s.Read(ctx, 1, 10)
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("reading after the restart still fails: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if len(got) == 0 && time.Now().After(deadline) {
			t.Fatal("nothing read after the restart")
		}
	}
	if len(got) != 1 || got[0].Seq != 2 || got[0].Event.ID != "2" {
		t.Fatalf("after the restart Read(1) = %+v, want seq 2", got)
	}
}

// TestClusterServerKilledMidStream appends from several clients to a
// three-replica stream while one NATS server, the stream's leader, is
// killed and later restarted. Clients retry failed appends with the same
// events, as the ingest API's clients do. Every acknowledged event must be
// in the stream, and none twice.
func TestClusterServerKilledMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	c := natstest.NewCluster(t, 3)
	_, s := openFresh(t, c.URL(), func(o *natsstream.Options) { o.Replicas = 3; o.Timeout = 5 * time.Second })
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	const clients, batches, per = 4, 60, 25
	var acked sync.Map // "tenant/id" -> seq
	var retries atomic.Int64
	var progress atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for cl := range clients {
		wg.Go(func() {
			for b := range batches {
				var evs []*audit.Event
				for i := range per {
					evs = append(evs, ev(fmt.Sprintf("t%d", cl), fmt.Sprintf("%d-%d", b, i)))
				}
				for {
					res, err := s.Append(ctx, evs)
					if err == nil {
						for i, r := range res {
							acked.Store(evs[i].Tenant+"/"+evs[i].ID, r)
						}
						break
					}
					if ctx.Err() != nil {
						errs <- fmt.Errorf("client %d batch %d: gave up: %v", cl, b, err)
						return
					}
					retries.Add(1)
					time.Sleep(100 * time.Millisecond)
				}
				progress.Add(1)
			}
		})
	}
	// Kill the server that leads the stream once a third of the batches
	// are in, and bring it back once two thirds are.
	waitProgress := func(n int64) {
		for progress.Load() < n && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitProgress(clients * batches / 3)
	leader := streamLeader(t, s)
	var killed *natstest.Node
	for i, n := range c.Nodes {
		if fmt.Sprintf("vigil-test-%d", i+1) == leader {
			killed = n
		}
	}
	if killed == nil {
		t.Fatalf("no node is named %q", leader)
	}
	killed.Stop()
	waitProgress(clients * batches * 2 / 3)
	killed.Start()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	recs := readAll(t, s)
	inStream := map[string]int{}
	for _, r := range recs {
		inStream[r.Event.Tenant+"/"+r.Event.ID]++
	}
	n := 0
	acked.Range(func(k, v any) bool {
		n++
		if inStream[k.(string)] != 1 {
			t.Errorf("acknowledged %s is in the stream %d times", k, inStream[k.(string)])
		}
		return true
	})
	if n != clients*batches*per {
		t.Fatalf("%d events acknowledged, want %d", n, clients*batches*per)
	}
	if len(recs) != n {
		t.Fatalf("the stream holds %d records for %d events", len(recs), n)
	}
	t.Logf("%d events, %d appends retried across the leader's death (%s)", n, retries.Load(), leader)
}

func streamLeader(t *testing.T, s *natsstream.Stream) string {
	t.Helper()
	name, err := s.Leader(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return name
}

func readAll(t *testing.T, s *natsstream.Stream) []audit.Record {
	t.Helper()
	var all []audit.Record
	var after uint64
	deadline := time.Now().Add(time.Minute)
	for {
		recs, err := s.Read(t.Context(), after, 1000)
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if len(recs) == 0 {
			last, _, err := s.Backlog(t.Context())
			if err == nil && last <= after {
				return all
			}
			if time.Now().After(deadline) {
				t.Fatalf("Read(%d) keeps returning nothing; the stream's last record is %d (%v)", after, last, err)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		for _, r := range recs {
			if r.Seq <= after {
				t.Fatalf("Read(%d) returned seq %d", after, r.Seq)
			}
			after = r.Seq
		}
		all = append(all, recs...)
	}
}

// TestCommitIsFenced: a node that claimed the pipeline's position and then
// lost the pipeline to another node cannot write its stale position over
// the new one — whether it commits after the new node's first commit or
// before it (paused between its checkpoint and its commit) — and reading
// the position (Offset, as the ingest limiter does) does not lift the
// fence.
func TestCommitIsFenced(t *testing.T) {
	srv := natstest.Server(t)
	opts, old := openFresh(t, srv.URL(), nil)
	ctx := t.Context()
	if _, err := old.Append(ctx, []*audit.Event{ev("a", "1"), ev("a", "2"), ev("a", "3")}); err != nil {
		t.Fatal(err)
	}
	if off, err := old.Claim(ctx, "pipeline"); err != nil || off != 0 {
		t.Fatalf("first claim = %d, %v", off, err)
	}
	if err := old.Commit(ctx, "pipeline", 1); err != nil {
		t.Fatal(err)
	}
	// Another node takes over and claims the position; the old one,
	// paused until now, commits before the new one has.
	taker := reopen(t, opts)
	if off, err := taker.Claim(ctx, "pipeline"); err != nil || off != 1 {
		t.Fatalf("the new node claims %d, %v; want 1", off, err)
	}
	if _, err := old.Offset(ctx, "pipeline"); err != nil {
		t.Fatal(err)
	}
	if err := old.Commit(ctx, "pipeline", 2); !errors.Is(err, audit.ErrFenced) {
		t.Fatalf("the old node's commit after the takeover = %v, want ErrFenced", err)
	}
	if err := taker.Commit(ctx, "pipeline", 3); err != nil {
		t.Fatalf("the new node's commit: %v", err)
	}
	if err := old.Commit(ctx, "pipeline", 2); !errors.Is(err, audit.ErrFenced) {
		t.Fatalf("the old node's commit after the new node's = %v, want ErrFenced", err)
	}
	if off, _ := taker.Offset(ctx, "pipeline"); off != 3 {
		t.Fatalf("position = %d after the fenced commits, want 3", off)
	}
	// Claims race cleanly: of two streams claiming a new position, the
	// later one owns it.
	a, b := reopen(t, opts), reopen(t, opts)
	if _, err := a.Claim(ctx, "fresh"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Claim(ctx, "fresh"); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(ctx, "fresh", 1); !errors.Is(err, audit.ErrFenced) {
		t.Fatalf("the earlier claimer's commit = %v, want ErrFenced", err)
	}
	if err := b.Commit(ctx, "fresh", 1); err != nil {
		t.Fatal(err)
	}
}

func TestInspect(t *testing.T) {
	c := natstest.NewCluster(t, 3)
	opts, s := openFresh(t, c.URL(), func(o *natsstream.Options) { o.Replicas = 3 })
	ctx := t.Context()
	if _, err := s.Append(ctx, []*audit.Event{ev("a", "1"), ev("a", "2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Offset(ctx, "pipeline"); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "pipeline", 1); err != nil {
		t.Fatal(err)
	}
	// The purge behind the commit is applied by the stream's replicas
	// through their log: its effect on the record count may lag a moment.
	var st *natsstream.Status
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if st, err = natsstream.Inspect(ctx, opts); err != nil {
			t.Fatal(err)
		}
		if st.Msgs == 1 || time.Now().After(deadline) {
			break
		}
	}
	if st.Replicas != 3 || st.Leader == "" || len(st.Peers) != 2 || st.Last != 2 || st.Msgs != 1 || st.Positions["pipeline"] != 1 {
		t.Fatalf("Inspect = %+v", st)
	}
	opts.Name = "NO_SUCH_STREAM"
	if _, err := natsstream.Inspect(ctx, opts); audit.ErrorCode(err) != audit.ENOTFOUND {
		t.Fatalf("Inspect of a missing stream = %v, want ENOTFOUND", err)
	}
}
