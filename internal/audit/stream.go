package audit

import (
	"context"
	"errors"
	"time"
)

// ErrStreamClosed is returned by EventStream methods after Close.
var ErrStreamClosed = errors.New("event stream closed")

// ErrFenced is wrapped by the errors of writes refused because another
// node has taken over the work this node was doing (it became the active
// node after this one lost its lock): the node must stop that work, as its
// in-memory state is stale.
var ErrFenced = errors.New("another node took over")

// AppendResult is the outcome of appending one event.
type AppendResult struct {
	// Seq is the event's position in the stream; for a duplicate it is 0.
	Seq uint64
	// Duplicate reports that an event with the same (Tenant, ID) was accepted
	// before, so this one was not appended again.
	Duplicate bool
}

// Record is one entry of the stream.
type Record struct {
	Seq   uint64
	Event Event
}

// EventStream is the durable, ordered log of accepted events: ingestion
// appends to it and acknowledges the client; the pipeline (enrich → detect
// → store) consumes it behind.
//
// Contract:
//   - Append returns only once the appended events are durable: a crash
//     (kill -9, power loss on a sane disk) right after it returns loses none.
//     Concurrent Appends may share one commit (group commit).
//   - Append either succeeds for every event of the call or returns an
//     error. After an error, some events of the call may have been
//     appended (a stream that is WindowedDedupe) or none were (every
//     other stream); either way the caller may retry the whole call,
//     because of the idempotency below.
//   - Idempotency: an event whose (Tenant, ID) was appended before is not
//     appended again and is reported as Duplicate, for at least as long as
//     the original event is retained; a WindowedDedupe stream guarantees
//     this only within its window, and the store's unique (Tenant, ID),
//     which the pipeline consults, is the permanent guarantee. Within one
//     call, a repeated (Tenant, ID) is a duplicate of its first occurrence.
//   - Seq values are assigned in append order, strictly increasing, never
//     reused, starting at 1. Consumers must not assume they are dense.
//   - Read is non-blocking and returns records in Seq order; Wait blocks until
//     a record beyond a position exists.
//   - Consumers are named; each keeps its own committed position. Records
//     all consumers have committed may be deleted by the stream.
//   - All methods are safe for concurrent use.
//   - Append returns an EUNAVAILABLE *Error when the stream cannot take more
//     right now (disk full, backlog over its cap); callers answer 429/503.
type EventStream interface {
	Append(ctx context.Context, events []*Event) ([]AppendResult, error)
	Read(ctx context.Context, after uint64, max int) ([]Record, error)
	Wait(ctx context.Context, after uint64) error
	// Offset returns the consumer's committed position (0 when new).
	Offset(ctx context.Context, consumer string) (uint64, error)
	// Commit records that the consumer has processed every record up to seq.
	Commit(ctx context.Context, consumer string, seq uint64) error
	Close() error
}

// StreamStats is an optional capability of an EventStream: how far behind
// consumers are, for metrics, readiness and backpressure.
type StreamStats interface {
	// Backlog returns the last appended Seq and the lowest committed offset
	// among consumers.
	Backlog(ctx context.Context) (last, committed uint64, err error)
}

// StreamHeld is an optional capability of an EventStream that shares its
// sequence with other readers (a partition of a stream), so that the
// distance between two of its Seqs overstates how many records lie
// between them: Held counts the records it holds that its consumers have
// not all committed.
type StreamHeld interface {
	Held(ctx context.Context) (int64, error)
}

// WindowedDedupe is an optional capability of an EventStream whose
// idempotency holds only for a window of time (NATS JetStream's duplicate
// window): a (Tenant, ID) appended again after the window is appended as a
// new record. A consumer of such a stream drops a record whose event the
// store already holds from an earlier receipt (StoredReceipts), so each
// event is evaluated and stored once.
type WindowedDedupe interface {
	DedupeWindow() time.Duration
}

// PositionClaimer is an optional capability of an EventStream that several
// nodes share: Claim returns the consumer's committed position, as Offset
// does, and makes this stream its only writer from then on — a Commit
// through a stream that claimed it earlier fails with an error wrapping
// ErrFenced. The pipeline claims its position when it starts.
type PositionClaimer interface {
	Claim(ctx context.Context, consumer string) (uint64, error)
}
