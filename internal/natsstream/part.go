package natsstream

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilhq/vigil/internal/audit"
)

var (
	_ audit.EventStream     = (*Part)(nil)
	_ audit.StreamStats     = (*Part)(nil)
	_ audit.WindowedDedupe  = (*Part)(nil)
	_ audit.PositionClaimer = (*Part)(nil)
	_ audit.StreamHeld      = (*Part)(nil)
)

// Part is the view of one partition of a Stream: an audit.EventStream
// whose records are those of the partition's subject, numbered by the
// stream's sequence (so not densely), and whose consumers keep positions
// of their own for the partition. It reads through a JetStream consumer of
// its own, so views of different partitions read concurrently. It is safe
// for concurrent use.
type Part struct {
	s       *Stream
	p       int
	subject string
	rd      *reader

	// claims are the partition positions this view claimed.
	claims claims

	mu      sync.Mutex
	backlog backlogCache // guarded by mu

	closed chan struct{}
	once   sync.Once
}

// Part returns the view of partition p (0 <= p < Partitions()); it panics
// on another p. It returns the same view on every call until that view is
// closed, and a new one after: the claims a view made are its own, so
// take one view per pipeline. The view shares the stream's connection;
// once the stream is closed, the view's methods return
// audit.ErrStreamClosed.
func (s *Stream) Part(p int) *Part {
	if p < 0 || p >= s.opts.Partitions {
		panic(fmt.Sprintf("natsstream: partition %d of a stream of %d partitions", p, s.opts.Partitions))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.parts[p]; v != nil && !isDone(v.closed) {
		return v
	}
	v := &Part{s: s, p: p, subject: s.subject(p), closed: make(chan struct{})}
	v.rd = &reader{s: s, subject: v.subject, what: fmt.Sprintf("partition %d (%s) of the JetStream stream", p, v.subject),
		last: v.last}
	s.parts[p] = v
	return v
}

// PartOffset is Part(p).Offset without a view: the consumer's committed
// position in partition p (its whole-stream position, or 0, while it has
// none there). It only reads, whatever the views do meanwhile.
func (s *Stream) PartOffset(ctx context.Context, consumer string, p int) (uint64, error) {
	if s.isClosed() {
		return 0, audit.ErrStreamClosed
	}
	if p < 0 || p >= s.opts.Partitions {
		return 0, fmt.Errorf("natsstream: partition %d of a stream of %d partitions", p, s.opts.Partitions)
	}
	v := &Part{s: s, p: p, subject: s.subject(p)}
	n, _, err := v.claimFrom(ctx, consumer)
	return n, err
}

// Partition returns the partition the view reads.
func (v *Part) Partition() int { return v.p }

func (v *Part) isClosed() bool { return v.s.isClosed() || isDone(v.closed) }

func (v *Part) last(ctx context.Context) (uint64, error) { return v.s.partLast(ctx, v.p) }

// key is the consumer's position key for this partition.
func (v *Part) key(consumer string) string { return partKey(consumer, v.p) }

func (v *Part) positionName(consumer string) string {
	return fmt.Sprintf("consumer %q's position in partition %d", consumer, v.p)
}

// Append implements audit.EventStream through the whole stream: each event
// goes to its own tenant's partition, whichever view appends it.
func (v *Part) Append(ctx context.Context, events []*audit.Event) ([]audit.AppendResult, error) {
	if v.isClosed() {
		return nil, audit.ErrStreamClosed
	}
	return v.s.Append(ctx, events)
}

// Read implements audit.EventStream: the partition's records after
// `after`, in Seq order. As the stream's Read, it returns max records
// whenever the partition holds that many after `after`.
func (v *Part) Read(ctx context.Context, after uint64, max int) ([]audit.Record, error) {
	if v.isClosed() {
		return nil, audit.ErrStreamClosed
	}
	return v.rd.read(ctx, after, max)
}

// Wait implements audit.EventStream: it returns once the partition holds
// a record beyond after. Appends to other partitions wake it only to check
// again.
func (v *Part) Wait(ctx context.Context, after uint64) error {
	return v.s.wait(ctx, after, v.p, v.last, v.closed)
}

// Offset implements audit.EventStream: the consumer's position in the
// partition. A consumer without one yet reads it where Claim would start
// it: at its whole-stream position, or 0.
func (v *Part) Offset(ctx context.Context, consumer string) (uint64, error) {
	if v.isClosed() {
		return 0, audit.ErrStreamClosed
	}
	n, _, err := v.claimFrom(ctx, consumer)
	return n, err
}

// claimFrom is the consumer's position in the partition and its
// revision; for a consumer without one, its whole-stream position (or 0)
// with revision 0.
func (v *Part) claimFrom(ctx context.Context, consumer string) (uint64, uint64, error) {
	n, rev, err := v.s.getKey(ctx, v.key(consumer), v.positionName(consumer))
	if err != nil || rev != 0 {
		return n, rev, err
	}
	n, _, err = v.s.getKey(ctx, offsetKey(consumer), positionName(consumer))
	return n, 0, err
}

// Claim implements audit.PositionClaimer for the consumer's position in
// the partition: a Commit through another view or stream that claimed it
// earlier (another node) fails with an error wrapping audit.ErrFenced.
//
// A consumer's first claim of the partition starts it at the consumer's
// whole-stream position, or 0. Once every partition has a position of the
// consumer, its whole-stream position is deleted (it no longer holds back
// purges), which fences a stream that claimed it.
func (v *Part) Claim(ctx context.Context, consumer string) (uint64, error) {
	if v.isClosed() {
		return 0, audit.ErrStreamClosed
	}
	n, _, err := v.s.claimKey(ctx, &v.claims, v.key(consumer), v.positionName(consumer),
		func(ctx context.Context) (uint64, error) {
			n, _, err := v.claimFrom(ctx, consumer)
			return n, err
		})
	if err != nil {
		return 0, err
	}
	if err := v.s.retireWholeStream(ctx, consumer); err != nil {
		return 0, err
	}
	return n, nil
}

// retireWholeStream deletes the consumer's whole-stream position once
// every partition has a position of the consumer.
func (s *Stream) retireWholeStream(ctx context.Context, consumer string) error {
	key := offsetKey(consumer)
	_, rev, err := s.getKey(ctx, key, positionName(consumer))
	if err != nil || rev == 0 {
		return err
	}
	parts, err := s.partitionPositions(ctx, consumer)
	if err != nil || len(parts) < s.opts.Partitions {
		return err
	}
	if err := s.offsets.Delete(ctx, key); err != nil {
		return unavailable(fmt.Sprintf("delete consumer %q's whole-stream position, now that every partition has one", consumer), err)
	}
	return nil
}

// Commit implements audit.EventStream for the consumer's position in the
// partition, fenced as Claim says. It then purges the partition's records
// that every position concerning it has passed: the partition positions
// of every consumer, and every whole-stream position.
func (v *Part) Commit(ctx context.Context, consumer string, seq uint64) error {
	if v.isClosed() {
		return audit.ErrStreamClosed
	}
	if err := v.s.commitKey(ctx, &v.claims, v.key(consumer), v.positionName(consumer), seq); err != nil {
		return err
	}
	v.backlog.reset(&v.mu)
	v.s.backlog.reset(&v.s.mu)
	pos, err := positions(ctx, v.s.offsets)
	if err != nil {
		return err
	}
	return v.s.purgePartition(ctx, pos, v.p, 0)
}

// purgePartition purges partition p's records that every position
// concerning it (pos, by key) has passed, when that bound is above
// `above` (what a whole-stream purge already removed).
func (s *Stream) purgePartition(ctx context.Context, pos map[string]uint64, p int, above uint64) error {
	low, ok := lowest(pos, p)
	if !ok || low <= above {
		return nil
	}
	// Purge keeps the partition's records from low+1 on.
	if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(s.subject(p)), jetstream.WithPurgeSequence(low+1)); err != nil {
		return unavailable(fmt.Sprintf("purge committed records of partition %d", p), err)
	}
	return nil
}

// Backlog implements audit.StreamStats for the partition: last is the
// sequence of the partition's last record (0 when the stream holds none
// of them: committed ones are purged), committed the lowest position
// concerning the partition (its consumers' partition positions and every
// whole-stream position; 0 when there is none). So committed can exceed
// last once the partition is consumed; the backlog is then 0. Answers
// are reused for a quarter of a second.
func (v *Part) Backlog(ctx context.Context) (last, committed uint64, err error) {
	if v.isClosed() {
		return 0, 0, audit.ErrStreamClosed
	}
	if last, committed, ok := v.backlog.get(&v.mu); ok {
		return last, committed, nil
	}
	if last, err = v.last(ctx); err != nil {
		return 0, 0, err
	}
	pos, err := positions(ctx, v.s.offsets)
	if err != nil {
		return 0, 0, err
	}
	committed, _ = lowest(pos, v.p)
	v.backlog.set(&v.mu, last, committed)
	return last, committed, nil
}

// Held implements audit.StreamHeld: how many of the partition's records
// the stream holds. Committed records are purged, so these are the
// records not yet committed by every consumer concerning the partition
// (and any committed since the last purge).
func (v *Part) Held(ctx context.Context) (int64, error) {
	if v.isClosed() {
		return 0, audit.ErrStreamClosed
	}
	info, err := v.s.stream.Info(ctx, jetstream.WithSubjectFilter(v.subject))
	if err != nil {
		return 0, unavailable(fmt.Sprintf("count the records of partition %d (%s)", v.p, v.subject), err)
	}
	return int64(info.State.Subjects[v.subject]), nil
}

// DedupeWindow implements audit.WindowedDedupe: the stream's.
func (v *Part) DedupeWindow() time.Duration { return v.s.DedupeWindow() }

// Close implements audit.EventStream: it drops the view's reading
// consumer (the connection is the stream's, which stays open). The view's
// methods then return audit.ErrStreamClosed; Part hands out a new view of
// the partition.
func (v *Part) Close() error {
	v.once.Do(func() {
		close(v.closed)
		v.rd.close()
	})
	return nil
}
