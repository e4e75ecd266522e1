package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilhq/vigil/client"
)

// outcomes collects what a batcher reports through its callbacks.
type outcomes struct {
	mu       sync.Mutex
	accepted map[string]int // event id → times reported accepted or duplicate
	rejected []client.EventResult
	failed   []client.Event
	errs     []error
}

func (o *outcomes) options(bo client.BatcherOptions) client.BatcherOptions {
	o.accepted = map[string]int{}
	bo.OnResult = func(events []client.Event, res *client.IngestResult) {
		o.mu.Lock()
		defer o.mu.Unlock()
		for _, r := range res.Results {
			if r.Status == client.StatusRejected {
				o.rejected = append(o.rejected, r)
				continue
			}
			if r.ID != events[r.Index].ID {
				panic(fmt.Sprintf("result id %s for event %s", r.ID, events[r.Index].ID))
			}
			o.accepted[r.ID]++
		}
	}
	bo.OnError = func(events []client.Event, err error) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.failed = append(o.failed, events...)
		o.errs = append(o.errs, err)
	}
	return bo
}

func newBatcher(t *testing.T, c *client.Client, o client.BatcherOptions) *client.Batcher {
	t.Helper()
	b, err := client.NewBatcher(c, o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBatcherExactlyOnce sends from several goroutines through 429s, 503s
// and a connection lost after the server stored a batch, and checks that
// Close delivers every event exactly once.
func TestBatcherExactlyOnce(t *testing.T) {
	s := newFakeServer(t)
	s.setFault(func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.URL.Path != "/v1/events" {
			return false
		}
		switch n {
		case 2:
			replyError(w, 429, "rate_limited", "1")
		case 4:
			s.ingest(&discardWriter{h: http.Header{}}, r, "lost")
			dropConn(t, w, r)
		case 5, 6:
			replyError(w, 503, "unavailable", "")
		default:
			return false
		}
		return true
	})
	c, _ := newClient(t, s)
	var o outcomes
	b := newBatcher(t, c, o.options(client.BatcherOptions{MaxBatch: 10, BufferSize: 30, Concurrency: 3, FlushInterval: time.Hour}))

	const producers, perProducer = 4, 53
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range perProducer {
				if err := b.Add(t.Context(), loginFailure(fmt.Sprintf("p%d-u%d", p, i), t0)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := b.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	const total = producers * perProducer
	if n := s.storedCount(); n != total {
		t.Errorf("server stored %d events, want %d", n, total)
	}
	if len(o.accepted) != total || len(o.failed) != 0 || len(o.rejected) != 0 {
		t.Errorf("reported %d accepted, %d failed, %d rejected; want %d, 0, 0", len(o.accepted), len(o.failed), len(o.rejected), total)
	}
	for id, n := range o.accepted {
		if n != 1 {
			t.Errorf("event %s reported %d times", id, n)
		}
	}
	// 22 batches (21 full, 2 events at Close) plus one retry for each of
	// the 429, the lost answer and the two 503s.
	if n := s.count("POST /v1/events"); n != 26 {
		t.Errorf("%d ingest requests, want 26", n)
	}
	if b.Buffered() != 0 {
		t.Errorf("Buffered() = %d after Close", b.Buffered())
	}
}

// TestBatcherBufferBounded stalls the server and checks that the batcher
// holds at most BufferSize events, then delivers them all.
func TestBatcherBufferBounded(t *testing.T) {
	s := newFakeServer(t)
	s.hold = make(chan struct{})
	release := sync.OnceFunc(func() { close(s.hold) })
	t.Cleanup(release)
	c, _ := newClient(t, s)

	nb := newBatcher(t, c, client.BatcherOptions{MaxBatch: 5, BufferSize: 20, NonBlocking: true, FlushInterval: time.Hour})
	for i := range 20 {
		if err := nb.Add(t.Context(), loginFailure(fmt.Sprintf("u%d", i), t0)); err != nil {
			t.Fatalf("Add %d: %v", i, err)
		}
	}
	if err := nb.Add(t.Context(), loginFailure("one too many", t0)); !errors.Is(err, client.ErrBufferFull) {
		t.Fatalf("Add beyond the buffer: err = %v, want ErrBufferFull", err)
	}
	if n := nb.Buffered(); n != 20 {
		t.Errorf("Buffered() = %d, want 20", n)
	}

	b := newBatcher(t, c, client.BatcherOptions{MaxBatch: 5, BufferSize: 5, FlushInterval: time.Hour})
	for i := range 5 {
		if err := b.Add(t.Context(), loginFailure(fmt.Sprintf("v%d", i), t0)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.Add(ctx, loginFailure("blocked", t0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("blocking Add on a full buffer: err = %v, want context.Canceled", err)
	}
	blocked := make(chan error)
	go func() { blocked <- b.Add(t.Context(), loginFailure("waits for room", t0)) }()

	release()
	if err := <-blocked; err != nil {
		t.Fatalf("blocked Add: %v", err)
	}
	for _, x := range []*client.Batcher{nb, b} {
		if err := x.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.storedCount(); n != 26 {
		t.Errorf("stored %d events, want 26", n)
	}
}

func TestBatcherReportsRejections(t *testing.T) {
	s := newFakeServer(t)
	c, _ := newClient(t, s)
	var o outcomes
	b := newBatcher(t, c, o.options(client.BatcherOptions{}))
	for _, actor := range []string{"alice", "", "carol"} {
		if err := b.Add(t.Context(), loginFailure(actor, t0)); err != nil {
			t.Fatal(err)
		}
	}
	err := b.Flush(t.Context())
	if !errors.Is(err, client.ErrInvalid) || !strings.Contains(err.Error(), "1 events not accepted") {
		t.Fatalf("Flush err = %v, want 1 ErrInvalid rejection", err)
	}
	if len(o.rejected) != 1 || o.rejected[0].Index != 1 || o.rejected[0].Error.Field != "actor.id" || len(o.accepted) != 2 {
		t.Errorf("rejected %+v, accepted %d", o.rejected, len(o.accepted))
	}
	if err := b.Flush(t.Context()); err != nil {
		t.Errorf("second Flush: %v (failures are reported once)", err)
	}
	if err := b.Close(t.Context()); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := b.Add(t.Context(), loginFailure("late", t0)); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Add after Close: err = %v", err)
	}
	if err := b.Flush(t.Context()); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Flush after Close: err = %v", err)
	}
	if err := b.Close(t.Context()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestBatcherReportsUndelivered(t *testing.T) {
	s := newFakeServer(t)
	c, _ := newClient(t, s, client.WithAPIKey("vgl_revoked_key"))
	var o outcomes
	b := newBatcher(t, c, o.options(client.BatcherOptions{}))
	for i := range 3 {
		if err := b.Add(t.Context(), loginFailure(fmt.Sprintf("u%d", i), t0)); err != nil {
			t.Fatal(err)
		}
	}
	err := b.Close(t.Context())
	if !errors.Is(err, client.ErrUnauthenticated) || !strings.Contains(err.Error(), "3 events not accepted") {
		t.Fatalf("Close err = %v", err)
	}
	if len(o.failed) != 3 || len(o.errs) != 1 || !errors.Is(o.errs[0], client.ErrUnauthenticated) {
		t.Errorf("OnError got %d events, errors %v", len(o.failed), o.errs)
	}
}

// TestBatcherCloseDeadline: when Close's context ends before delivery, the
// pending events are reported, not lost.
func TestBatcherCloseDeadline(t *testing.T) {
	s := newFakeServer(t)
	s.hold = make(chan struct{})
	t.Cleanup(func() { close(s.hold) })
	c, _ := newClient(t, s)
	var o outcomes
	b := newBatcher(t, c, o.options(client.BatcherOptions{MaxBatch: 2, FlushInterval: time.Hour}))
	for i := range 5 {
		if err := b.Add(t.Context(), loginFailure(fmt.Sprintf("u%d", i), t0)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	err := b.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "5 events not accepted") {
		t.Fatalf("Close err = %v", err)
	}
	if len(o.failed) != 5 {
		t.Errorf("OnError got %d events, want 5", len(o.failed))
	}
	for _, e := range o.errs {
		if !errors.Is(e, client.ErrClosed) {
			t.Errorf("OnError err = %v, want ErrClosed", e)
		}
	}
}

// TestBatcherRequestSize checks that batches respect MaxBatchBytes, that a
// 413 splits a batch, and that an oversized event is refused by Add.
func TestBatcherRequestSize(t *testing.T) {
	s := newFakeServer(t)
	var mu sync.Mutex
	var sizes []int64
	s.setFault(func(w http.ResponseWriter, r *http.Request, n int) bool {
		mu.Lock()
		sizes = append(sizes, r.ContentLength)
		mu.Unlock()
		if r.ContentLength > 40000 {
			replyError(w, http.StatusRequestEntityTooLarge, "too_large", "")
			return true
		}
		return false
	})
	c, _ := newClient(t, s)
	var o outcomes
	b := newBatcher(t, c, o.options(client.BatcherOptions{MaxBatch: 16, MaxBatchBytes: 100000, FlushInterval: time.Hour}))
	for i := range 16 {
		e := loginFailure(fmt.Sprintf("u%d", i), t0)
		e.Metadata = map[string]any{"pad": strings.Repeat("x", 9000)}
		if err := b.Add(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	huge := loginFailure("huge", t0)
	huge.Metadata = map[string]any{"pad": strings.Repeat("x", client.MaxEventBytes)}
	if err := b.Add(t.Context(), huge); !errors.Is(err, client.ErrTooLarge) {
		t.Errorf("oversized Add: err = %v, want ErrTooLarge", err)
	}
	if err := b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := s.storedCount(); n != 16 || len(o.accepted) != 16 {
		t.Errorf("stored %d, reported %d; want 16", n, len(o.accepted))
	}
	for _, sz := range sizes {
		if sz > 100000 {
			t.Errorf("request of %d bytes exceeds MaxBatchBytes", sz)
		}
	}
	if len(sizes) <= 2 {
		t.Errorf("only %d requests: want byte cutting and 413 splitting", len(sizes))
	}
}

// TestBatcherFlushInterval runs in a synctest bubble with the fake served in
// memory, so the flush timer runs on the fake clock.
func TestBatcherFlushInterval(t *testing.T) {
	s := newFakeServer(t)
	synctest.Test(t, func(t *testing.T) {
		c, err := client.New("http://vigil.test", client.WithAPIKey(testKey),
			client.WithHTTPClient(&http.Client{Transport: handlerTransport{s}}))
		if err != nil {
			t.Fatal(err)
		}
		b := newBatcher(t, c, client.BatcherOptions{MaxBatch: 100, FlushInterval: time.Second})
		for i := range 3 {
			if err := b.Add(t.Context(), loginFailure(fmt.Sprintf("u%d", i), t0)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(999 * time.Millisecond)
		synctest.Wait()
		if n := s.storedCount(); n != 0 {
			t.Fatalf("%d events sent before FlushInterval", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := s.storedCount(); n != 3 {
			t.Fatalf("%d events sent after FlushInterval, want 3", n)
		}
		// A later event starts a fresh interval.
		if err := b.Add(t.Context(), loginFailure("later", t0)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		if n := s.storedCount(); n != 3 {
			t.Fatalf("stored %d, want 3 halfway through the second interval", n)
		}
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		if n := s.storedCount(); n != 4 {
			t.Fatalf("stored %d, want 4", n)
		}
		if err := b.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestNewBatcherOptions(t *testing.T) {
	s := newFakeServer(t)
	c, _ := newClient(t, s)
	for _, tt := range []struct {
		name    string
		o       client.BatcherOptions
		wantErr string
	}{
		{name: "defaults", o: client.BatcherOptions{}},
		{name: "batch too big", o: client.BatcherOptions{MaxBatch: 10001}, wantErr: "MaxBatch"},
		{name: "buffer below batch", o: client.BatcherOptions{MaxBatch: 100, BufferSize: 10}, wantErr: "BufferSize"},
		{name: "request too small", o: client.BatcherOptions{MaxBatchBytes: 1000}, wantErr: "MaxBatchBytes"},
		{name: "negative interval", o: client.BatcherOptions{FlushInterval: -time.Second}, wantErr: "FlushInterval"},
		{name: "negative concurrency", o: client.BatcherOptions{Concurrency: -1}, wantErr: "Concurrency"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := client.NewBatcher(c, tt.o)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				_ = b.Close(t.Context())
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want it to mention %s", err, tt.wantErr)
			}
		})
	}
}
