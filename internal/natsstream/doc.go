// Package natsstream is the ingest stream on NATS JetStream: an
// audit.EventStream that several Vigil nodes can append to and that
// outlives any one of them.
//
// Events are JetStream messages on one stream, on subjects partitioned by
// a hash of the tenant (PREFIX.0 … PREFIX.N-1), so a tenant's events stay
// in one partition, in order. A record's Seq is its stream sequence: one
// increasing sequence across partitions. Consumer positions live in a
// JetStream key-value bucket beside the stream, and records every known
// consumer has committed are purged.
//
// How it meets the audit.EventStream contract, and where it differs from
// the embedded stream:
//   - Durability: Append returns once JetStream has acknowledged every
//     event, which it does once the stream's replicas (a quorum of them)
//     have stored it. With one replica an acknowledged event survives the
//     NATS server's crash but, unless the server syncs every write
//     (sync_interval: always), not the machine's power loss.
//   - Idempotency: each event carries its (tenant, id) as the JetStream
//     message id, so a retry within the stream's duplicate window is
//     reported as a duplicate. After the window the event is appended
//     again; the stream says so (audit.WindowedDedupe) and the pipeline
//     drops it against the store's record of the event.
//   - Atomicity: an Append that fails may have appended part of its
//     events. Retrying the call appends none of them twice.
//
// # Partition views
//
// Stream.Part(p) is the view of one partition: an audit.EventStream whose
// Read and Wait see only the records of subject PREFIX.p (still numbered
// by the stream's sequence), so that several nodes can each consume a
// share of the partitions. A view appends through the whole stream (each
// event to its own tenant's partition) and keeps its consumers' positions
// apart from the whole stream's: consumer C of partition p has the key
// "C.pP" in the offsets bucket, fenced by Claim as the whole stream's key
// "C" is. A commit through a view purges that partition's records below
// the lowest position that concerns it (its own partition keys and every
// whole-stream key).
//
// A consumer moves between the two modes without losing records. Claiming
// partition p of a consumer that has only a whole-stream position starts
// the partition there, and once every partition has its own position the
// whole-stream one is deleted. Claiming the whole stream for a consumer
// that has only partition positions starts it at the lowest of them (a
// partition without one counts as 0) and deletes them; records some
// partitions had already consumed are read again, which the pipeline
// drops against the store.
package natsstream
