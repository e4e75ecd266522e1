package natsstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilhq/vigil/internal/audit"
)

// reader reads the stream onward through one JetStream consumer: every
// subject for a Stream, one partition's subject for a Part. One consumer
// reads onward from where the last read stopped; a read from elsewhere (a
// restart, a retry after a failure) starts a new one there.
type reader struct {
	s *Stream
	// subject filters the consumer to one partition's subject; empty
	// reads every subject.
	subject string
	// what names what the reader reads, for errors and logs.
	what string
	// last returns the last sequence the consumer could deliver: the
	// stream's, or its partition's (0 when it holds none).
	last func(context.Context) (uint64, error)

	// fetchMax caps the records of one fetch (0: as many as a read asks
	// for). Tests set it to see a read assembled from several fetches.
	fetchMax int

	// mu serialises reads: one consumer reads onward from next.
	mu   sync.Mutex
	cons jetstream.Consumer
	next uint64
	// cseq is the consumer sequence of the last record the consumer
	// delivered to this reader: a jump means records were delivered and
	// lost on the way (a fetch cut short), so the consumer is started
	// again from the position.
	cseq uint64
}

// read returns up to max records after `after`, in Seq order. It returns
// max records whenever the reader's subjects hold that many after
// `after`: one fetch can come back with fewer while more are stored (the
// server hands over what it has ready; a fetch cut short ends at the
// gap), so read fetches again until it has max or a fetch finds nothing.
func (r *reader) read(ctx context.Context, after uint64, max int) ([]audit.Record, error) {
	if max <= 0 {
		return nil, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []audit.Record
	for len(out) < max {
		recs, err := r.readRetrying(ctx, after, max-len(out))
		if err != nil {
			if len(out) > 0 {
				// Hand back what was read: the next read starts after it.
				return out, nil
			}
			return nil, err
		}
		if len(recs) == 0 {
			break
		}
		if out == nil {
			out = recs
		} else {
			out = append(out, recs...)
		}
		after = recs[len(recs)-1].Seq
	}
	return out, nil
}

// readRetrying is readOnce with one more try, on a new consumer, after a
// failure.
func (r *reader) readRetrying(ctx context.Context, after uint64, max int) ([]audit.Record, error) {
	for attempt := 0; ; attempt++ {
		recs, err := r.readOnce(ctx, after, max)
		if err == nil {
			return recs, nil
		}
		r.drop()
		if attempt == 1 || ctx.Err() != nil {
			return nil, err
		}
	}
}

func (r *reader) readOnce(ctx context.Context, after uint64, max int) ([]audit.Record, error) {
	// The second try waits briefly: a consumer just created, or one whose
	// stream changed leader, can answer "no messages" before it has
	// caught up with the stream, and one that lost records on the way is
	// started again.
	for try := 0; try < 2; try++ {
		if err := r.ensureConsumer(ctx, after); err != nil {
			return nil, err
		}
		wait := time.Duration(0)
		if try > 0 {
			wait = 500 * time.Millisecond
		}
		recs, err := r.fetch(ctx, after, max, wait)
		if err != nil || len(recs) > 0 || try > 0 {
			return recs, err
		}
		last, err := r.last(ctx)
		if err != nil || last <= after {
			return nil, err
		}
	}
	return nil, nil
}

// ensureConsumer starts a consumer at after+1 unless the current one is
// there.
func (r *reader) ensureConsumer(ctx context.Context, after uint64) error {
	if r.cons != nil && r.next == after+1 {
		return nil
	}
	r.drop()
	cfg := jetstream.ConsumerConfig{
		Description:       "Vigil pipeline reader",
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       after + 1,
		FilterSubject:     r.subject,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
		Replicas:          1,
	}
	if r.subject != "" {
		cfg.Description = "Vigil pipeline reader of " + r.subject
	}
	cons, err := r.s.stream.CreateConsumer(ctx, cfg)
	if err != nil {
		return unavailable("start reading "+r.what, err)
	}
	r.cons, r.next, r.cseq = cons, after+1, 0
	return nil
}

// fetch reads up to max records from the consumer; with wait 0 it does
// not wait for records to arrive.
func (r *reader) fetch(ctx context.Context, after uint64, max int, wait time.Duration) ([]audit.Record, error) {
	var batch jetstream.MessageBatch
	var err error
	if r.fetchMax > 0 {
		max = min(max, r.fetchMax)
	}
	if wait == 0 {
		batch, err = r.cons.FetchNoWait(max)
	} else {
		batch, err = r.cons.Fetch(max, jetstream.FetchMaxWait(wait))
	}
	if err != nil {
		return nil, unavailable("read "+r.what, err)
	}
	var recs []audit.Record
	gap := false
	for msg := range batch.Messages() {
		if gap {
			continue // let the batch finish; these are read again
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", r.what, err)
		}
		if md.Sequence.Consumer != r.cseq+1 {
			// The consumer delivered records this reader never received (a
			// fetch cut short): with no acknowledgements the server will not
			// send them again, so read on from the last record received
			// with a new consumer.
			r.s.log.Warn("records delivered by the stream were not received; reading them again",
				"reading", r.what, "after", after, "consumer_seq", md.Sequence.Consumer, "expected", r.cseq+1)
			gap = true
			continue
		}
		r.cseq = md.Sequence.Consumer
		var rec audit.Record
		rec.Seq = md.Sequence.Stream
		if err := json.Unmarshal(msg.Data(), &rec.Event); err != nil {
			return nil, fmt.Errorf("decode stream record %d: %w", rec.Seq, err)
		}
		if rec.Seq <= after {
			continue // cannot happen with a fresh consumer; never hand back old records
		}
		recs = append(recs, rec)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) {
		return nil, unavailable("read "+r.what, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n := len(recs); n > 0 {
		r.next = recs[n-1].Seq + 1
	}
	if gap {
		r.drop() // the next read starts a new one at its position
	}
	return recs, nil
}

// drop forgets the consumer (JetStream removes it once inactive). The
// caller holds r.mu.
func (r *reader) drop() {
	if r.cons == nil {
		return
	}
	name := r.cons.CachedInfo().Name
	r.cons = nil
	ctx, cancel := context.WithTimeout(context.Background(), r.s.opts.Timeout)
	defer cancel()
	_ = r.s.stream.DeleteConsumer(ctx, name)
}

// close drops the consumer once no read is in flight.
func (r *reader) close() {
	r.mu.Lock()
	r.drop()
	r.mu.Unlock()
}
