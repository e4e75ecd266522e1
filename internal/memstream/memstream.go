// Package memstream is a non-durable, in-process audit.EventStream for tests
// and development: it keeps every record in memory and forgets all of it
// when the process ends. It honours every clause of the EventStream contract
// except durability.
package memstream

import (
	"context"
	"sync"

	"github.com/vigilhq/vigil/internal/audit"
)

var (
	_ audit.EventStream = (*Stream)(nil)
	_ audit.StreamStats = (*Stream)(nil)
)

// Options configures a Stream.
type Options struct {
	// MaxBacklog is the most unconsumed records kept before Append answers
	// EUNAVAILABLE; 0 means 1,000,000.
	MaxBacklog int
}

// Stream is an in-memory EventStream.
type Stream struct {
	mu      sync.Mutex
	recs    []audit.Record // recs[i].Seq == base+i+1
	base    uint64         // records up to base were trimmed
	seen    map[[2]string]struct{}
	offsets map[string]uint64
	notify  chan struct{} // closed and replaced on every append
	closed  bool
	max     int
}

// New returns an empty Stream.
func New(opts Options) *Stream {
	if opts.MaxBacklog <= 0 {
		opts.MaxBacklog = 1_000_000
	}
	return &Stream{seen: map[[2]string]struct{}{}, offsets: map[string]uint64{}, notify: make(chan struct{}), max: opts.MaxBacklog}
}

// Append implements audit.EventStream.
func (s *Stream) Append(ctx context.Context, events []*audit.Event) ([]audit.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, audit.ErrStreamClosed
	}
	if len(s.recs)+len(events) > s.max {
		return nil, audit.Errorf(audit.EUNAVAILABLE, "ingest backlog is full")
	}
	out := make([]audit.AppendResult, len(events))
	for i, ev := range events {
		k := [2]string{ev.Tenant, ev.ID}
		if _, dup := s.seen[k]; dup {
			out[i].Duplicate = true
			continue
		}
		s.seen[k] = struct{}{}
		seq := s.base + uint64(len(s.recs)) + 1
		s.recs = append(s.recs, audit.Record{Seq: seq, Event: *ev})
		out[i].Seq = seq
	}
	close(s.notify)
	s.notify = make(chan struct{})
	return out, nil
}

// Read implements audit.EventStream.
func (s *Stream) Read(ctx context.Context, after uint64, max int) ([]audit.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, audit.ErrStreamClosed
	}
	start := 0
	if after > s.base {
		start = int(after - s.base)
	}
	if start >= len(s.recs) {
		return nil, nil
	}
	end := min(start+max, len(s.recs))
	return append([]audit.Record(nil), s.recs[start:end]...), nil
}

// Wait implements audit.EventStream.
func (s *Stream) Wait(ctx context.Context, after uint64) error {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return audit.ErrStreamClosed
		}
		last := s.base + uint64(len(s.recs))
		ch := s.notify
		s.mu.Unlock()
		if last > after {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Offset implements audit.EventStream.
func (s *Stream) Offset(_ context.Context, consumer string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offsets[consumer], nil
}

// Commit implements audit.EventStream; records every consumer has passed
// are released.
func (s *Stream) Commit(_ context.Context, consumer string, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A first commit registers the consumer, at 0 too: from then on the
	// stream keeps what it has not committed.
	if old, ok := s.offsets[consumer]; !ok || seq > old {
		s.offsets[consumer] = seq
	}
	low := s.offsets[consumer]
	for _, o := range s.offsets {
		low = min(low, o)
	}
	if low > s.base {
		n := min(int(low-s.base), len(s.recs))
		s.recs = append([]audit.Record(nil), s.recs[n:]...)
		s.base += uint64(n)
	}
	return nil
}

// Backlog implements audit.StreamStats.
func (s *Stream) Backlog(context.Context) (last, committed uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last = s.base + uint64(len(s.recs))
	committed = last
	for _, o := range s.offsets {
		committed = min(committed, o)
	}
	return last, committed, nil
}

// Close implements audit.EventStream.
func (s *Stream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.notify)
	}
	return nil
}
