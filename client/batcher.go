package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Batcher defaults; see BatcherOptions.
const (
	DefaultMaxBatch      = 1000
	DefaultMaxBatchBytes = 4 << 20
	DefaultFlushInterval = time.Second
	DefaultBufferSize    = 10000
)

// BatcherOptions configures a Batcher. Zero fields take the defaults.
type BatcherOptions struct {
	// MaxBatch is the most events sent in one request (default 1000, at
	// most MaxEventsPerBatch). A batch is sent as soon as it is full.
	MaxBatch int
	// MaxBatchBytes caps the encoded size of one request (default 4 MiB, at
	// most MaxRequestBytes).
	MaxBatchBytes int
	// FlushInterval is the longest an event waits for its batch to fill
	// before the batch is sent anyway (default 1s).
	FlushInterval time.Duration
	// BufferSize bounds the events the batcher holds — waiting, queued or
	// in flight (default 10000, at least MaxBatch). When it is full, Add
	// blocks until an event is delivered, or fails with ErrBufferFull when
	// NonBlocking is set.
	BufferSize int
	// NonBlocking makes Add return ErrBufferFull instead of waiting.
	NonBlocking bool
	// Concurrency is the number of requests in flight at once (default 1).
	// With more than one, batches may arrive out of order; events carry
	// their own time, so search order is unaffected.
	Concurrency int
	// OnResult, if set, is called once for each batch the server answered,
	// with the batch's events (ids assigned, in request order) and the
	// per-event results; rejected events are those with Status
	// StatusRejected. It is called from the batcher's goroutines, at most
	// Concurrency at a time, and must not call Flush or Close.
	OnResult func(events []Event, res *IngestResult)
	// OnError, if set, is called once for each batch that could not be
	// delivered after retries (network failure, 401/403, Close's deadline),
	// with its events and the error. Like OnResult it must not block for long.
	OnError func(events []Event, err error)
}

// Batcher sends events in the background: Add buffers, full batches and
// those older than FlushInterval are sent by Concurrency goroutines with
// the client's retries, and Flush and Close wait for delivery.
//
// Nothing is dropped silently: every event added ends up either accepted
// (or a duplicate of an accepted one), or reported — per batch through
// OnResult (rejections) or OnError (undelivered), and in the error that the
// next Flush or Close returns. Each event gets its idempotency id in Add, so
// a retried batch is deduplicated by the server and delivered exactly once.
//
// A Batcher is safe for concurrent use. Close it to release its goroutines.
type Batcher struct {
	c     *Client
	o     BatcherOptions
	log   *slog.Logger
	slots *semaphore  // one unit per event held
	queue chan *batch // batches waiting for a worker; never full (see cut)

	ctx     context.Context // delivery; cancelled when Close gives up
	cancel  context.CancelCauseFunc
	closing chan struct{} // closed when Close starts
	stopped chan struct{} // closed when every worker has returned

	mu       sync.Mutex
	closed   bool
	pending  *batch // being filled, nil when empty
	gen      uint64 // identifies pending for its flush timer
	timer    *time.Timer
	inflight map[*batch]struct{} // cut but not finished
	failed   int                 // events not accepted since the last Flush/Close
	firstErr error
}

// batch is a run of events with their encodings.
type batch struct {
	events []Event
	enc    [][]byte
	bytes  int
	done   chan struct{} // closed when delivered or reported
}

// NewBatcher returns a running batcher sending through c.
func NewBatcher(c *Client, o BatcherOptions) (*Batcher, error) {
	if c == nil {
		return nil, errors.New("vigil: batcher needs a client")
	}
	o.MaxBatch = cmpOr(o.MaxBatch, DefaultMaxBatch)
	o.MaxBatchBytes = cmpOr(o.MaxBatchBytes, DefaultMaxBatchBytes)
	o.FlushInterval = cmpOr(o.FlushInterval, DefaultFlushInterval)
	o.BufferSize = cmpOr(o.BufferSize, max(DefaultBufferSize, o.MaxBatch))
	o.Concurrency = cmpOr(o.Concurrency, 1)
	switch {
	case o.MaxBatch < 1 || o.MaxBatch > MaxEventsPerBatch:
		return nil, fmt.Errorf("vigil: batcher MaxBatch %d must be within [1, %d]", o.MaxBatch, MaxEventsPerBatch)
	case o.MaxBatchBytes < MaxEventBytes+2 || o.MaxBatchBytes > MaxRequestBytes:
		return nil, fmt.Errorf("vigil: batcher MaxBatchBytes %d must be within [%d, %d]", o.MaxBatchBytes, MaxEventBytes+2, MaxRequestBytes)
	case o.FlushInterval < 0:
		return nil, fmt.Errorf("vigil: batcher FlushInterval %s must be positive", o.FlushInterval)
	case o.BufferSize < o.MaxBatch:
		return nil, fmt.Errorf("vigil: batcher BufferSize %d must be at least MaxBatch %d", o.BufferSize, o.MaxBatch)
	case o.Concurrency < 1:
		return nil, fmt.Errorf("vigil: batcher Concurrency %d must be at least 1", o.Concurrency)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	b := &Batcher{
		c: c, o: o, log: c.log,
		slots:    newSemaphore(o.BufferSize),
		queue:    make(chan *batch, o.BufferSize),
		ctx:      ctx,
		cancel:   cancel,
		closing:  make(chan struct{}),
		stopped:  make(chan struct{}),
		inflight: map[*batch]struct{}{},
	}
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Go(b.work)
	}
	go func() {
		wg.Wait()
		close(b.stopped)
	}()
	return b, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Add buffers e for sending. It assigns e's id (when empty) and the
// client's tenant, and encodes e at once, so later changes to e (its
// Metadata map) are not sent. When the buffer is full, Add waits for room
// until ctx ends, or returns ErrBufferFull in non-blocking mode. After
// Close it returns ErrClosed. An event whose encoding exceeds MaxEventBytes
// is refused with an ErrTooLarge *Error.
func (b *Batcher) Add(ctx context.Context, e Event) error {
	if e.ID == "" {
		e.ID = b.c.NewID()
	}
	if e.Tenant == "" {
		e.Tenant = b.c.tenant
	}
	var buf bytes.Buffer
	if err := b.c.encodeEvent(&buf, e); err != nil {
		return fmt.Errorf("vigil: encode event %s: %w", e.ID, err)
	}
	if buf.Len() > MaxEventBytes {
		return &Error{Code: CodeTooLarge, Message: fmt.Sprintf("event %s is %d bytes encoded; at most %d are allowed", e.ID, buf.Len(), MaxEventBytes)}
	}
	if err := b.acquire(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		b.slots.release(1)
		return ErrClosed
	}
	if p := b.pending; p != nil && p.bytes+buf.Len()+1 > b.o.MaxBatchBytes-1 {
		b.cut() // the event would overflow the request: send what we have first
	}
	if b.pending == nil {
		b.pending = &batch{done: make(chan struct{})}
		gen := b.gen
		b.timer = time.AfterFunc(b.o.FlushInterval, func() { b.flushTimer(gen) })
	}
	p := b.pending
	p.events = append(p.events, e)
	p.enc = append(p.enc, buf.Bytes())
	p.bytes += buf.Len() + 1 // and a comma or bracket
	if len(p.events) >= b.o.MaxBatch {
		b.cut()
	}
	return nil
}

// acquire takes a buffer slot for one event.
func (b *Batcher) acquire(ctx context.Context) error {
	select {
	case <-b.closing:
		return ErrClosed
	default:
	}
	for {
		room := b.slots.tryAcquire()
		if room == nil {
			return nil
		}
		if b.o.NonBlocking {
			return ErrBufferFull
		}
		select {
		case <-room:
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-b.closing:
			return ErrClosed
		}
	}
}

// semaphore counts buffer slots. Unlike a buffered channel used as one, it
// frees a whole batch's slots with one wake-up instead of one per event.
type semaphore struct {
	mu   sync.Mutex
	used int
	max  int
	room chan struct{} // closed (and replaced) whenever slots are freed
}

func newSemaphore(n int) *semaphore {
	return &semaphore{max: n, room: make(chan struct{})}
}

// tryAcquire takes a slot and returns nil, or returns a channel that is
// closed when slots are next freed.
func (s *semaphore) tryAcquire() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used < s.max {
		s.used++
		return nil
	}
	return s.room
}

func (s *semaphore) release(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used -= n
	close(s.room)
	s.room = make(chan struct{})
}

func (s *semaphore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

// cut hands the pending batch to the workers. b.mu is held. The queue never
// blocks: every queued batch holds at least one of BufferSize slots.
func (b *Batcher) cut() {
	p := b.pending
	if p == nil {
		return
	}
	b.pending = nil
	b.gen++
	b.timer.Stop()
	b.inflight[p] = struct{}{}
	b.queue <- p
}

func (b *Batcher) flushTimer(gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gen == gen && !b.closed {
		b.cut()
	}
}

// Buffered returns the number of events the batcher holds: waiting for a
// batch, queued, or in flight.
func (b *Batcher) Buffered() int { return b.slots.len() }

// Flush sends the events added so far and waits until each has been
// accepted or reported, or until ctx ends. It returns an error wrapping the
// first failure when any event added since the previous Flush or Close was
// not accepted (rejected or undelivered); errors.Is works on it (ErrInvalid,
// ErrUnauthenticated, …). After Close it returns ErrClosed.
func (b *Batcher) Flush(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.cut()
	wait := make([]*batch, 0, len(b.inflight))
	for p := range b.inflight {
		wait = append(wait, p)
	}
	b.mu.Unlock()
	for _, p := range wait {
		select {
		case <-p.done:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return b.takeFailures()
}

// Close stops accepting events, sends everything buffered, waits for it and
// stops the batcher's goroutines. If ctx ends first, deliveries still
// pending are abandoned — each reported through OnError and the returned
// error — and Close returns once the goroutines have stopped. Close returns
// the same kind of error as Flush; calling it again returns nil after the
// first call's work is done.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	first := !b.closed
	if first {
		b.cut()
		b.closed = true
		close(b.queue)
		close(b.closing)
	}
	b.mu.Unlock()
	var ctxErr error
	select {
	case <-b.stopped:
	case <-ctx.Done():
		ctxErr = context.Cause(ctx)
		b.cancel(fmt.Errorf("%w before delivery: %w", ErrClosed, ctxErr))
		<-b.stopped
	}
	b.cancel(ErrClosed)
	if !first {
		return ctxErr
	}
	return errors.Join(ctxErr, b.takeFailures())
}

func (b *Batcher) takeFailures() error {
	b.mu.Lock()
	n, first := b.failed, b.firstErr
	b.failed, b.firstErr = 0, nil
	b.mu.Unlock()
	if n == 0 {
		return nil
	}
	return fmt.Errorf("vigil: %d events not accepted, first: %w", n, first)
}

func (b *Batcher) work() {
	for p := range b.queue {
		b.deliver(p.events, p.enc)
		b.mu.Lock()
		delete(b.inflight, p)
		b.mu.Unlock()
		b.slots.release(len(p.events))
		close(p.done)
	}
}

// deliver sends one run of events and reports the outcome. A request the
// server finds too large as a whole (413) is split in halves.
func (b *Batcher) deliver(events []Event, enc [][]byte) {
	body := make([]byte, 0, len(enc)+1+sumLen(enc))
	body = append(body, '[')
	for i, e := range enc {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, e...)
	}
	body = append(body, ']')
	res, err := b.c.sendBatch(b.ctx, body, len(events))
	if res == nil && errors.Is(err, ErrTooLarge) && len(events) > 1 && b.ctx.Err() == nil {
		h := len(events) / 2
		b.deliver(events[:h], enc[:h])
		b.deliver(events[h:], enc[h:])
		return
	}
	if res != nil {
		b.reportResult(events, res)
		return
	}
	b.fail(len(events), err)
	if b.o.OnError != nil {
		b.o.OnError(events, err)
		return
	}
	b.log.LogAttrs(context.Background(), slog.LevelError, "vigil batch not delivered",
		slog.Int("events", len(events)), slog.String("event_id", events[0].ID), slog.String("error", err.Error()))
}

func (b *Batcher) reportResult(events []Event, res *IngestResult) {
	for _, r := range res.Results {
		if r.Status == StatusRejected {
			b.fail(1, fmt.Errorf("event %s: %w", events[r.Index].ID, r.Error.Err()))
		}
	}
	if len(res.Results) == 0 && res.Rejected > 0 { // counts without details
		b.fail(res.Rejected, &Error{Code: CodeInvalid, Message: "events rejected without details"})
	}
	if b.o.OnResult != nil {
		b.o.OnResult(events, res)
		return
	}
	if res.Rejected > 0 {
		b.log.LogAttrs(context.Background(), slog.LevelWarn, "vigil events rejected",
			slog.Int("events", len(events)), slog.Int("rejected", res.Rejected))
	}
}

func (b *Batcher) fail(n int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failed += n
	if b.firstErr == nil {
		b.firstErr = err
	}
}

func sumLen(bs [][]byte) int {
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	return n
}
