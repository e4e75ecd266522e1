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
package natsstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilhq/vigil/internal/audit"
)

var (
	_ audit.EventStream     = (*Stream)(nil)
	_ audit.StreamStats     = (*Stream)(nil)
	_ audit.WindowedDedupe  = (*Stream)(nil)
	_ audit.PositionClaimer = (*Stream)(nil)
)

// Options configures a Stream. Only URL is required.
type Options struct {
	// URL is the NATS server URL, or a comma-separated list of them; it may
	// carry credentials (nats://user:password@host:4222). It is never
	// logged and never part of an error.
	URL string
	// CredsFile is an optional NATS credentials file (JWT and NKey seed).
	CredsFile string
	// Name is the JetStream stream's name; default "VIGIL_EVENTS". The
	// consumer positions live in the key-value bucket NAME_offsets.
	Name string
	// Subject is the subject prefix of the stream's partitions; default
	// "vigil.events".
	Subject string
	// Partitions is the number of tenant-hash subjects; default 16. It is
	// part of where a tenant's events go: keep it fixed for a stream.
	Partitions int
	// Replicas is the stream's replication (1, 3 or 5); default 1.
	Replicas int
	// DuplicateWindow is how long JetStream remembers an event's
	// (tenant, id) to answer a retry as a duplicate; default 2m.
	DuplicateWindow time.Duration
	// MaxBacklog is the most records the stream keeps; past it Append
	// answers EUNAVAILABLE. Default 2,000,000.
	MaxBacklog int64
	// MaxBytes is the most bytes the stream keeps; past it Append answers
	// EUNAVAILABLE. JetStream reserves it on the servers. Default 8 GiB.
	MaxBytes int64
	// Timeout bounds each JetStream request, an append's acknowledgement
	// included; default 10s.
	Timeout time.Duration
	// ClientName names the connection on the NATS server (monitoring).
	ClientName string
	Logger     *slog.Logger
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
var subjectPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

func (o *Options) defaults() error {
	if o.URL == "" {
		return errors.New("natsstream: URL is required")
	}
	if o.Name == "" {
		o.Name = "VIGIL_EVENTS"
	}
	if !namePattern.MatchString(o.Name) {
		return fmt.Errorf("natsstream: stream name %q: use 1-64 letters, digits, _ or -", o.Name)
	}
	if o.Subject == "" {
		o.Subject = "vigil.events"
	}
	if !subjectPattern.MatchString(o.Subject) || len(o.Subject) > 200 {
		return fmt.Errorf("natsstream: subject prefix %q: use dot-separated tokens of letters, digits, _ or -", o.Subject)
	}
	if o.Partitions == 0 {
		o.Partitions = 16
	}
	if o.Partitions < 1 || o.Partitions > 1024 {
		return fmt.Errorf("natsstream: partitions %d: must be 1-1024", o.Partitions)
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Replicas < 1 || o.Replicas > 5 {
		return fmt.Errorf("natsstream: replicas %d: must be 1-5", o.Replicas)
	}
	if o.DuplicateWindow == 0 {
		o.DuplicateWindow = 2 * time.Minute
	}
	if o.DuplicateWindow < time.Second {
		return fmt.Errorf("natsstream: duplicate window %s: must be at least 1s", o.DuplicateWindow)
	}
	if o.MaxBacklog == 0 {
		o.MaxBacklog = 2_000_000
	}
	if o.MaxBacklog < 1 {
		return fmt.Errorf("natsstream: max backlog %d: must be positive", o.MaxBacklog)
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = 8 << 30
	}
	if o.MaxBytes < 1<<20 {
		return fmt.Errorf("natsstream: max bytes %d: must be at least 1 MiB", o.MaxBytes)
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Stream is an audit.EventStream on NATS JetStream. It is safe for
// concurrent use.
type Stream struct {
	opts    Options
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	offsets jetstream.KeyValue
	notify  *nats.Subscription
	log     *slog.Logger

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when an append is announced
	closed  chan struct{}
	once    sync.Once

	// revs holds, per claimed consumer key, the revision of its position
	// this stream last wrote: Commit moves a claimed position only from
	// there, so a node that lost the pipeline to another cannot write its
	// stale position over the new one.
	revs map[string]uint64
	// backlog caches Backlog for backlogTTL: the ingest path asks it per
	// request, and each answer costs several JetStream requests.
	backlogAt              time.Time
	backlogLast, backlogLo uint64

	// fetchMax caps the records of one fetch (0: as many as Read asks
	// for). Tests set it to see a Read assembled from several fetches.
	fetchMax int

	// cseq is the consumer sequence of the last record the reading
	// consumer delivered to this stream: a jump means records were
	// delivered and lost on the way (a fetch cut short), so the consumer
	// is started again from the position.
	cseq uint64

	// rmu serialises Read: one consumer reads the stream onward from next.
	rmu  sync.Mutex
	cons jetstream.Consumer
	next uint64
}

// Open connects to NATS and creates or updates the stream and its offsets
// bucket.
func Open(ctx context.Context, opts Options) (*Stream, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	copts := []nats.Option{
		nats.Name(opts.ClientName),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.Timeout(opts.Timeout),
	}
	if opts.CredsFile != "" {
		copts = append(copts, nats.UserCredentials(opts.CredsFile))
	}
	log := opts.Logger
	copts = append(copts,
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS", "error", err.Error())
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("reconnected to NATS", "server", nc.ConnectedServerName()) }),
	)
	nc, err := nats.Connect(opts.URL, copts...)
	if err != nil {
		// nats.Connect's errors name no URL, so no credentials leak here.
		return nil, audit.Errorf(audit.EUNAVAILABLE, "connect to NATS: %v", err)
	}
	s, err := open(ctx, nc, opts)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return s, nil
}

func open(ctx context.Context, nc *nats.Conn, opts Options) (*Stream, error) {
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(8192),
		jetstream.WithPublishAsyncTimeout(opts.Timeout),
		jetstream.WithDefaultTimeout(opts.Timeout),
	)
	if err != nil {
		return nil, fmt.Errorf("natsstream: %w", err)
	}
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        opts.Name,
		Description: "Vigil's ingest stream: accepted audit events on their way to enrichment, detection and storage.",
		Subjects:    []string{opts.Subject + ".*"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
		Duplicates:  opts.DuplicateWindow,
		MaxMsgs:     opts.MaxBacklog,
		MaxBytes:    opts.MaxBytes,
		Discard:     jetstream.DiscardNew,
	})
	if err != nil {
		return nil, unavailable(fmt.Sprintf("create JetStream stream %s", opts.Name), err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      opts.Name + "_offsets",
		Description: "Vigil's consumer positions on the stream " + opts.Name + ".",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
	})
	if err != nil {
		return nil, unavailable(fmt.Sprintf("create key-value bucket %s_offsets", opts.Name), err)
	}
	s := &Stream{opts: opts, nc: nc, js: js, stream: st, offsets: kv, log: opts.Logger,
		changed: make(chan struct{}), closed: make(chan struct{}), revs: map[string]uint64{}}
	// Appends, this node's or another's, are announced on a core subject
	// outside the stream's, so Wait wakes without polling.
	s.notify, err = nc.Subscribe(s.notifySubject(), func(*nats.Msg) { s.wake() })
	if err != nil {
		return nil, unavailable("subscribe to append announcements", err)
	}
	return s, nil
}

func (s *Stream) notifySubject() string { return s.opts.Subject + "-appended" }

func (s *Stream) wake() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Stream) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// Partition is the partition of a tenant's events: a stable hash, so a
// tenant's events share one subject and keep their order.
func Partition(tenant string, partitions int) int {
	h := fnv.New32a()
	h.Write([]byte(tenant))
	return int(h.Sum32() % uint32(partitions))
}

// msgID is the JetStream message id of an event: a digest of its
// (tenant, id), since ids may hold bytes a header cannot.
func msgID(tenant, id string) string {
	h := sha256.New()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return hex.EncodeToString(h.Sum(nil)[:20])
}

// Append implements audit.EventStream.
func (s *Stream) Append(ctx context.Context, events []*audit.Event) ([]audit.AppendResult, error) {
	if s.isClosed() {
		return nil, audit.ErrStreamClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]audit.AppendResult, len(events))
	first := make(map[audit.EventKey]bool, len(events))
	futures := make([]jetstream.PubAckFuture, len(events))
	for i, ev := range events {
		k := audit.EventKey{Tenant: ev.Tenant, ID: ev.ID}
		if first[k] {
			out[i].Duplicate = true
			continue
		}
		first[k] = true
		data, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("encode event %d: %w", i, err)
		}
		msg := nats.NewMsg(s.opts.Subject + "." + strconv.Itoa(Partition(ev.Tenant, s.opts.Partitions)))
		msg.Data = data
		f, err := s.js.PublishMsgAsync(msg, jetstream.WithMsgID(msgID(ev.Tenant, ev.ID)), jetstream.WithStallWait(s.opts.Timeout))
		if err != nil {
			return nil, s.appendErr(ctx, err)
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				out[i].Duplicate = true
			} else {
				out[i].Seq = ack.Sequence
			}
		case err := <-f.Err():
			return nil, s.appendErr(ctx, err)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.closed:
			return nil, audit.ErrStreamClosed
		}
	}
	// Best effort: a lost announcement delays a waiting reader by at most
	// the poll interval of Wait.
	_ = s.nc.Publish(s.notifySubject(), nil)
	return out, nil
}

func (s *Stream) appendErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if s.isClosed() {
		return audit.ErrStreamClosed
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStoreFailed {
		return audit.Errorf(audit.EUNAVAILABLE, "ingest backlog is full (JetStream: %s)", apiErr.Description)
	}
	return unavailable("append to the JetStream stream", err)
}

// errCodeStoreFailed is JetStream's error code for a message the stream
// could not store: over its limits (maximum messages exceeded) or out of
// storage.
const errCodeStoreFailed jetstream.ErrorCode = 10077

// unavailable wraps a NATS failure as EUNAVAILABLE: the caller may retry.
func unavailable(what string, err error) error {
	return audit.Errorf(audit.EUNAVAILABLE, "%s: %v", what, err)
}

// Read implements audit.EventStream. One JetStream consumer reads onward
// from where the last Read stopped; a Read from elsewhere (a restart, a
// retry after a failure) starts a new one there.
//
// A Read returns max records whenever the stream holds that many after
// `after`: one fetch can come back with fewer while more are stored (the
// server hands over what it has ready; a fetch cut short ends at the
// gap), so Read fetches again until it has max or a fetch finds nothing.
// The pipeline takes a shorter read to mean it has caught up.
func (s *Stream) Read(ctx context.Context, after uint64, max int) ([]audit.Record, error) {
	if s.isClosed() {
		return nil, audit.ErrStreamClosed
	}
	if max <= 0 {
		return nil, nil
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	var out []audit.Record
	for len(out) < max {
		recs, err := s.readRetrying(ctx, after, max-len(out))
		if err != nil {
			if len(out) > 0 {
				// Hand back what was read: the next Read starts after it.
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

// readRetrying is read with one more try, on a new consumer, after a
// failure.
func (s *Stream) readRetrying(ctx context.Context, after uint64, max int) ([]audit.Record, error) {
	for attempt := 0; ; attempt++ {
		recs, err := s.read(ctx, after, max)
		if err == nil {
			return recs, nil
		}
		s.dropConsumer()
		if attempt == 1 || ctx.Err() != nil {
			return nil, err
		}
	}
}

func (s *Stream) read(ctx context.Context, after uint64, max int) ([]audit.Record, error) {
	// The second try waits briefly: a consumer just created, or one whose
	// stream changed leader, can answer "no messages" before it has
	// caught up with the stream, and one that lost records on the way is
	// started again.
	for try := 0; try < 2; try++ {
		if err := s.ensureConsumer(ctx, after); err != nil {
			return nil, err
		}
		wait := time.Duration(0)
		if try > 0 {
			wait = 500 * time.Millisecond
		}
		recs, err := s.fetch(ctx, after, max, wait)
		if err != nil || len(recs) > 0 || try > 0 {
			return recs, err
		}
		last, err := s.last(ctx)
		if err != nil || last <= after {
			return nil, err
		}
	}
	return nil, nil
}

// ensureConsumer starts a reading consumer at after+1 unless the current
// one is there.
func (s *Stream) ensureConsumer(ctx context.Context, after uint64) error {
	if s.cons != nil && s.next == after+1 {
		return nil
	}
	s.dropConsumer()
	cons, err := s.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Description:       "Vigil pipeline reader",
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       after + 1,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
		Replicas:          1,
	})
	if err != nil {
		return unavailable("start reading the JetStream stream", err)
	}
	s.cons, s.next, s.cseq = cons, after+1, 0
	return nil
}

// fetch reads up to max records from the reading consumer; with wait 0 it
// does not wait for records to arrive.
func (s *Stream) fetch(ctx context.Context, after uint64, max int, wait time.Duration) ([]audit.Record, error) {
	var batch jetstream.MessageBatch
	var err error
	if s.fetchMax > 0 {
		max = min(max, s.fetchMax)
	}
	if wait == 0 {
		batch, err = s.cons.FetchNoWait(max)
	} else {
		batch, err = s.cons.Fetch(max, jetstream.FetchMaxWait(wait))
	}
	if err != nil {
		return nil, unavailable("read the JetStream stream", err)
	}
	var recs []audit.Record
	gap := false
	for msg := range batch.Messages() {
		if gap {
			continue // let the batch finish; these are read again
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("read the JetStream stream: %w", err)
		}
		if md.Sequence.Consumer != s.cseq+1 {
			// The consumer delivered records this stream never received (a
			// fetch cut short): with no acknowledgements the server will not
			// send them again, so read on from the last record received
			// with a new consumer.
			s.log.Warn("records delivered by the stream were not received; reading them again",
				"after", after, "consumer_seq", md.Sequence.Consumer, "expected", s.cseq+1)
			gap = true
			continue
		}
		s.cseq = md.Sequence.Consumer
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
		return nil, unavailable("read the JetStream stream", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n := len(recs); n > 0 {
		s.next = recs[n-1].Seq + 1
	}
	if gap {
		s.dropConsumer() // the next Read starts a new one at its position
	}
	return recs, nil
}

// dropConsumer forgets the reading consumer (JetStream removes it once
// inactive).
func (s *Stream) dropConsumer() {
	if s.cons == nil {
		return
	}
	name := s.cons.CachedInfo().Name
	s.cons = nil
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	_ = s.stream.DeleteConsumer(ctx, name)
}

// Wait implements audit.EventStream.
func (s *Stream) Wait(ctx context.Context, after uint64) error {
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		if s.isClosed() {
			return audit.ErrStreamClosed
		}
		last, err := s.last(ctx)
		if err == nil && last > after {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			s.log.Debug("stream state unavailable while waiting", "error", err.Error())
		}
		select {
		case <-changed:
		case <-poll.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closed:
			return audit.ErrStreamClosed
		}
	}
}

func (s *Stream) last(ctx context.Context) (uint64, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, unavailable("read the JetStream stream's state", err)
	}
	return info.State.LastSeq, nil
}

// offsetKey is a consumer's key in the offsets bucket: consumer names are
// Vigil's own ("pipeline"), but a key allows few characters, so any other
// byte is escaped.
func offsetKey(consumer string) string {
	b := make([]byte, 0, len(consumer))
	for i := 0; i < len(consumer); i++ {
		c := consumer[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
			b = append(b, c)
		default:
			b = append(b, '_')
			b = append(b, hex.EncodeToString([]byte{c})...)
		}
	}
	return string(b)
}

// Offset implements audit.EventStream. It only reads: the pipeline's
// owner uses Claim.
func (s *Stream) Offset(ctx context.Context, consumer string) (uint64, error) {
	if s.isClosed() {
		return 0, audit.ErrStreamClosed
	}
	n, _, err := s.getOffset(ctx, consumer)
	return n, err
}

// getOffset reads a consumer's position and its revision (0 when absent).
func (s *Stream) getOffset(ctx context.Context, consumer string) (uint64, uint64, error) {
	e, err := s.offsets.Get(ctx, offsetKey(consumer))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, unavailable(fmt.Sprintf("read consumer %q's position", consumer), err)
	}
	n, err := parseOffset(consumer, e.Value())
	if err != nil {
		return 0, 0, err
	}
	return n, e.Revision(), nil
}

// Claim implements audit.PositionClaimer: it reads the position and writes
// it back with a compare-and-set on the revision it read, so that a Commit
// of a stream that read or wrote the position before — a node that lost
// the pipeline, even one paused between its checkpoint and its commit —
// now fails.
func (s *Stream) Claim(ctx context.Context, consumer string) (uint64, error) {
	if s.isClosed() {
		return 0, audit.ErrStreamClosed
	}
	key := offsetKey(consumer)
	for attempt := 0; ; attempt++ {
		n, rev, err := s.getOffset(ctx, consumer)
		if err != nil {
			return 0, err
		}
		val := []byte(strconv.FormatUint(n, 10))
		var newRev uint64
		if rev == 0 {
			newRev, err = s.offsets.Create(ctx, key, val)
		} else {
			newRev, err = s.offsets.Update(ctx, key, val, rev)
		}
		if err == nil {
			s.setRev(key, newRev)
			return n, nil
		}
		if !isRevisionConflict(err) || attempt == 4 {
			return 0, unavailable(fmt.Sprintf("claim consumer %q's position", consumer), err)
		}
		// Another node wrote it between the read and the write: read again.
	}
}

func (s *Stream) setRev(key string, rev uint64) {
	s.mu.Lock()
	s.revs[key] = rev
	s.mu.Unlock()
}

func parseOffset(consumer string, v []byte) (uint64, error) {
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("consumer %q's stored position %q is not a sequence: %w", consumer, v, err)
	}
	return n, nil
}

// Commit implements audit.EventStream: it stores the position, then purges
// the records every consumer has committed. A position this stream claimed
// (Claim) moves only from the revision it last wrote: if another stream
// (another node) claimed or moved it since, Commit writes nothing and
// returns an error wrapping audit.ErrFenced.
func (s *Stream) Commit(ctx context.Context, consumer string, seq uint64) error {
	if s.isClosed() {
		return audit.ErrStreamClosed
	}
	key := offsetKey(consumer)
	val := []byte(strconv.FormatUint(seq, 10))
	s.mu.Lock()
	rev, claimed := s.revs[key]
	s.mu.Unlock()
	var err error
	if claimed {
		rev, err = s.offsets.Update(ctx, key, val, rev)
	} else {
		rev, err = s.offsets.Put(ctx, key, val)
	}
	if err != nil {
		if claimed && isRevisionConflict(err) {
			return fmt.Errorf("%w: consumer %q's position was claimed by another node", audit.ErrFenced, consumer)
		}
		return unavailable(fmt.Sprintf("store consumer %q's position", consumer), err)
	}
	if claimed {
		s.setRev(key, rev)
	}
	s.mu.Lock()
	s.backlogAt = time.Time{}
	s.mu.Unlock()
	low, err := s.committed(ctx)
	if err != nil {
		return err
	}
	if low > 0 {
		// Purge keeps the records from low+1 on.
		if err := s.stream.Purge(ctx, jetstream.WithPurgeSequence(low+1)); err != nil {
			return unavailable("purge committed records", err)
		}
	}
	return nil
}

// isRevisionConflict reports a compare-and-set write refused because the
// key is not at the expected revision.
func isRevisionConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == 10164)
}

// committed is the lowest position among the consumers with one.
func (s *Stream) committed(ctx context.Context) (uint64, error) {
	pos, err := positions(ctx, s.offsets)
	if err != nil {
		return 0, err
	}
	low, any := uint64(0), false
	for _, n := range pos {
		if !any || n < low {
			low, any = n, true
		}
	}
	return low, nil
}

// positions reads every consumer position in the offsets bucket, by key.
func positions(ctx context.Context, kv jetstream.KeyValue) (map[string]uint64, error) {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, unavailable("list consumer positions", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	_ = lister.Stop()
	out := make(map[string]uint64, len(keys))
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, unavailable("read consumer positions", err)
		}
		n, err := parseOffset(k, e.Value())
		if err != nil {
			return nil, err
		}
		out[k] = n
	}
	return out, nil
}

// backlogTTL is how long a Backlog answer is reused.
const backlogTTL = 250 * time.Millisecond

// Backlog implements audit.StreamStats. Answers are reused for a quarter
// of a second: the ingest path asks for every request.
func (s *Stream) Backlog(ctx context.Context) (last, committed uint64, err error) {
	s.mu.Lock()
	if time.Since(s.backlogAt) < backlogTTL {
		last, committed = s.backlogLast, s.backlogLo
		s.mu.Unlock()
		return last, committed, nil
	}
	s.mu.Unlock()
	if last, err = s.last(ctx); err != nil {
		return 0, 0, err
	}
	if committed, err = s.committed(ctx); err != nil {
		return 0, 0, err
	}
	s.mu.Lock()
	s.backlogAt, s.backlogLast, s.backlogLo = time.Now(), last, committed
	s.mu.Unlock()
	return last, committed, nil
}

// DedupeWindow implements audit.WindowedDedupe.
func (s *Stream) DedupeWindow() time.Duration { return s.opts.DuplicateWindow }

// Ready reports whether the stream can take appends: connected, and the
// stream answering.
func (s *Stream) Ready(ctx context.Context) error {
	if s.isClosed() {
		return audit.ErrStreamClosed
	}
	if st := s.nc.Status(); st != nats.CONNECTED {
		return audit.Errorf(audit.EUNAVAILABLE, "NATS connection is %s", st)
	}
	_, err := s.last(ctx)
	return err
}

// Close implements audit.EventStream. Waiters and appends in flight return
// ErrStreamClosed.
func (s *Stream) Close() error {
	s.once.Do(func() {
		close(s.closed)
		s.rmu.Lock()
		s.dropConsumer()
		s.rmu.Unlock()
		_ = s.notify.Unsubscribe()
		s.nc.Close()
	})
	return nil
}

// Leader names the NATS server that leads the stream's replicas (empty
// for a stream on a single server), for `vigil cluster status` and tests.
func (s *Stream) Leader(ctx context.Context) (string, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return "", unavailable("read the JetStream stream's state", err)
	}
	if info.Cluster == nil {
		return "", nil
	}
	return info.Cluster.Leader, nil
}
