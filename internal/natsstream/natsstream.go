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
	"slices"
	"strconv"
	"strings"
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
	// partChanged[p] is closed and replaced when an append to partition p
	// is announced (nil until a view waits on it).
	partChanged []chan struct{}
	closed      chan struct{}
	once        sync.Once

	// claims are the whole-stream positions this stream claimed.
	claims claims
	// backlog caches Backlog for backlogTTL: the ingest path asks it per
	// request, and each answer costs several JetStream requests.
	backlog backlogCache

	// rd reads every partition.
	rd *reader
	// parts are the partition views handed out by Part, by partition
	// (nil until asked for); guarded by mu.
	parts []*Part
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
		changed: make(chan struct{}), closed: make(chan struct{}), parts: make([]*Part, opts.Partitions),
		partChanged: make([]chan struct{}, opts.Partitions)}
	s.rd = &reader{s: s, what: "the JetStream stream", last: s.last}
	// Appends, this node's or another's, are announced on a core subject
	// outside the stream's, so Wait wakes without polling.
	s.notify, err = nc.Subscribe(s.notifySubject(), func(m *nats.Msg) { s.wake(m.Data) })
	if err != nil {
		return nil, unavailable("subscribe to append announcements", err)
	}
	return s, nil
}

func (s *Stream) notifySubject() string { return s.opts.Subject + "-appended" }

// wake wakes the waiters an announcement concerns: those on the whole
// stream, and those on the partitions it names (a comma-separated list;
// an announcement naming none, as earlier versions send, concerns every
// partition). Views wait on their own partition only, so an append to
// one partition does not send every view of every node to the server.
func (s *Stream) wake(parts []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.changed)
	s.changed = make(chan struct{})
	all := len(parts) == 0
	touch := func(p int) {
		if p >= 0 && p < len(s.partChanged) && s.partChanged[p] != nil {
			close(s.partChanged[p])
			s.partChanged[p] = nil
		}
	}
	for field := range strings.SplitSeq(string(parts), ",") {
		p, err := strconv.Atoi(field)
		if err != nil {
			all = true
			break
		}
		touch(p)
	}
	if all {
		for p := range s.partChanged {
			touch(p)
		}
	}
}

// changedChan is the channel closed at the next announcement concerning
// partition p, or the whole stream when p < 0.
func (s *Stream) changedChan(p int) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p < 0 {
		return s.changed
	}
	if s.partChanged[p] == nil {
		s.partChanged[p] = make(chan struct{})
	}
	return s.partChanged[p]
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

// subject is partition p's subject.
func (s *Stream) subject(p int) string { return s.opts.Subject + "." + strconv.Itoa(p) }

// Partitions returns the number of partition subjects of the stream
// (Options.Partitions).
func (s *Stream) Partitions() int { return s.opts.Partitions }

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
	var touched []int // partitions appended to
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
		part := Partition(ev.Tenant, s.opts.Partitions)
		if !slices.Contains(touched, part) {
			touched = append(touched, part)
		}
		msg := nats.NewMsg(s.subject(part))
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
	// the poll interval of Wait. It names the partitions appended to.
	var ann []byte
	for i, p := range touched {
		if i > 0 {
			ann = append(ann, ',')
		}
		ann = strconv.AppendInt(ann, int64(p), 10)
	}
	_ = s.nc.Publish(s.notifySubject(), ann)
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
	return s.rd.read(ctx, after, max)
}

// Wait implements audit.EventStream.
func (s *Stream) Wait(ctx context.Context, after uint64) error {
	return s.wait(ctx, after, -1, s.last, nil)
}

// wait blocks until last answers beyond after, checking again on every
// append announcement and every second; it returns ErrStreamClosed once
// the stream or viewClosed (nil for none) closes.
func (s *Stream) wait(ctx context.Context, after uint64, part int, last func(context.Context) (uint64, error), viewClosed <-chan struct{}) error {
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for {
		changed := s.changedChan(part)
		if s.isClosed() || isDone(viewClosed) {
			return audit.ErrStreamClosed
		}
		last, err := last(ctx)
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
		case <-viewClosed:
			return audit.ErrStreamClosed
		}
	}
}

// isDone reports whether ch is closed; a nil ch never is.
func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// last is the stream's last sequence.
func (s *Stream) last(ctx context.Context) (uint64, error) {
	st, err := s.state(ctx)
	return st.LastSeq, err
}

func (s *Stream) state(ctx context.Context) (jetstream.StreamState, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return jetstream.StreamState{}, unavailable("read the JetStream stream's state", err)
	}
	return info.State, nil
}

// partLast is the last sequence of partition p's subject, 0 when the
// stream holds none of its records.
func (s *Stream) partLast(ctx context.Context, p int) (uint64, error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, s.subject(p))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable(fmt.Sprintf("read the last record of partition %d (%s)", p, s.subject(p)), err)
	}
	return m.Sequence, nil
}

// Offset implements audit.EventStream. It only reads: the pipeline's
// owner uses Claim. For a consumer that has only partition positions
// (partitioned detection, Part) it is where Claim would resume the whole
// stream: the lowest of them, a partition without one counting as 0.
func (s *Stream) Offset(ctx context.Context, consumer string) (uint64, error) {
	if s.isClosed() {
		return 0, audit.ErrStreamClosed
	}
	n, rev, err := s.getKey(ctx, offsetKey(consumer), positionName(consumer))
	if err != nil || rev != 0 {
		return n, err
	}
	n, _, _, err = s.fromPartitions(ctx, consumer)
	return n, err
}

// positionName names a consumer's whole-stream position in errors.
func positionName(consumer string) string { return fmt.Sprintf("consumer %q's position", consumer) }

// Claim implements audit.PositionClaimer: it reads the position and writes
// it back with a compare-and-set on the revision it read, so that a Commit
// of a stream that read or wrote the position before — a node that lost
// the pipeline, even one paused between its checkpoint and its commit —
// now fails.
//
// A consumer that has no whole-stream position but has partition
// positions (it ran partitioned, through Part views) resumes at the
// lowest of them, a partition without one counting as 0, so that no
// partition skips a record; its partition positions are then deleted,
// which fences the views that claimed them.
func (s *Stream) Claim(ctx context.Context, consumer string) (uint64, error) {
	if s.isClosed() {
		return 0, audit.ErrStreamClosed
	}
	var parts map[int]uint64
	n, created, err := s.claimKey(ctx, &s.claims, offsetKey(consumer), positionName(consumer),
		func(ctx context.Context) (uint64, error) {
			n, ps, _, err := s.fromPartitions(ctx, consumer)
			parts = ps
			return n, err
		})
	if err != nil {
		return 0, err
	}
	if created {
		for p := range parts {
			if err := s.offsets.Delete(ctx, partKey(consumer, p)); err != nil {
				return 0, unavailable(fmt.Sprintf("delete consumer %q's position in partition %d, now that it reads the whole stream", consumer, p), err)
			}
		}
	}
	return n, nil
}

// Commit implements audit.EventStream: it stores the position, then purges
// the records every consumer has committed (the lowest of every position,
// partition positions included). A position this stream claimed (Claim)
// moves only from the revision it last wrote: if another stream (another
// node) claimed or moved it since, Commit writes nothing and returns an
// error wrapping audit.ErrFenced.
func (s *Stream) Commit(ctx context.Context, consumer string, seq uint64) error {
	if s.isClosed() {
		return audit.ErrStreamClosed
	}
	if err := s.commitKey(ctx, &s.claims, offsetKey(consumer), positionName(consumer), seq); err != nil {
		return err
	}
	s.backlog.reset(&s.mu)
	pos, err := positions(ctx, s.offsets)
	if err != nil {
		return err
	}
	low, ok := lowest(pos, allPartitions)
	if ok && low > 0 {
		// Purge keeps the records from low+1 on.
		if err := s.stream.Purge(ctx, jetstream.WithPurgeSequence(low+1)); err != nil {
			return unavailable("purge committed records", err)
		}
	}
	// With partition positions, a partition committed further than low
	// may have waited for this consumer alone: purge it to its own bound,
	// or its committed records would stay until it commits again.
	parted := false
	for k := range pos {
		parted = parted || keyPartition(k) >= 0
	}
	for p := 0; parted && p < s.opts.Partitions; p++ {
		if err := s.purgePartition(ctx, pos, p, low); err != nil {
			return err
		}
	}
	return nil
}

// backlogTTL is how long a Backlog answer is reused.
const backlogTTL = 250 * time.Millisecond

// backlogCache is a Backlog answer and when it was read, guarded by its
// owner's mutex.
type backlogCache struct {
	at              time.Time
	last, committed uint64
}

func (c *backlogCache) get(mu *sync.Mutex) (last, committed uint64, ok bool) {
	mu.Lock()
	defer mu.Unlock()
	if time.Since(c.at) >= backlogTTL {
		return 0, 0, false
	}
	return c.last, c.committed, true
}

func (c *backlogCache) set(mu *sync.Mutex, last, committed uint64) {
	mu.Lock()
	c.at, c.last, c.committed = time.Now(), last, committed
	mu.Unlock()
}

func (c *backlogCache) reset(mu *sync.Mutex) {
	mu.Lock()
	c.at = time.Time{}
	mu.Unlock()
}

// Backlog implements audit.StreamStats: last is the stream's last
// sequence and committed the lowest position of any consumer, so that
// last − committed counts the records some consumer has still to process.
//
// Once any consumer keeps partition positions (Part), that difference
// would also count other partitions' records and quiet partitions'
// positions; records are purged as soon as every position concerning them
// has passed them, so the records the stream holds are the backlog, and
// committed is last minus their number (at least 0).
//
// Answers are reused for a quarter of a second: the ingest path asks for
// every request.
func (s *Stream) Backlog(ctx context.Context) (last, committed uint64, err error) {
	if last, committed, ok := s.backlog.get(&s.mu); ok {
		return last, committed, nil
	}
	st, err := s.state(ctx)
	if err != nil {
		return 0, 0, err
	}
	pos, err := positions(ctx, s.offsets)
	if err != nil {
		return 0, 0, err
	}
	last = st.LastSeq
	committed, _ = lowest(pos, allPartitions)
	for k := range pos {
		if keyPartition(k) >= 0 {
			committed = 0
			if st.Msgs < last {
				committed = last - st.Msgs
			}
			break
		}
	}
	s.backlog.set(&s.mu, last, committed)
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
// ErrStreamClosed, and so do the partition views' methods from then on.
func (s *Stream) Close() error {
	s.once.Do(func() {
		close(s.closed)
		s.rd.close()
		s.mu.Lock()
		parts := append([]*Part(nil), s.parts...)
		s.mu.Unlock()
		for _, v := range parts {
			if v != nil {
				v.rd.close()
			}
		}
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
