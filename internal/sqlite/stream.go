package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// Stream is the durable ingest stream (audit.EventStream) in its own file,
// stream.db, with synchronous=FULL.
//
// One committer goroutine owns every append: it gathers the Append calls
// waiting at that moment (up to Options.MaxBatch events) into one
// transaction — group commit — so 64 clients sending one event each share
// one fsync, and an Append returns only after its commit has been fsynced.
// Events are encoded before the transaction, so an event that cannot be
// stored fails its own call alone; the calls' events are then written
// together, 256 per statement. Idempotency keys are checked and inserted in the same transaction
// (INSERT OR IGNORE into a WITHOUT ROWID table), which makes "appended once"
// atomic with the append itself. The fresh events of each append chunk
// (≤ 256 events, consecutive seqs) are stored as one records row keyed by
// its last seq; Read splits rows back into one record per event.
type Stream struct {
	f          *file
	log        *slog.Logger
	now        func() time.Time
	maxBacklog int64
	maxBatch   int

	reqs chan *appendReq
	quit chan struct{}
	done chan struct{}
	cw   chunkWriter // the committer's, reused by every group commit

	mu        sync.Mutex
	closed    bool
	last      uint64            // last committed seq
	notify    chan struct{}     // closed and replaced after each commit
	consumers map[string]uint64 // committed offsets
	trimmed   uint64            // records ≤ trimmed have been deleted
	closeOnce sync.Once
	// failErr is the storage error (full, read-only, I/O) of the most
	// recent group commit when that commit failed, at failAt; a successful
	// commit clears it. Readiness reports it for a while (writeFailure).
	failErr error
	failAt  time.Time
	// reclaimAt is when Commit last looked for free pages to give back
	// (guarded by reclaimMu, which also keeps two reclaims from racing).
	reclaimMu sync.Mutex
	reclaimAt time.Time
	// legacy reports that dedupe_v1 (keys of stream schema version 1)
	// still holds rows, so each append also looks its legacy keys up there.
	legacy atomic.Bool
}

var (
	_ audit.EventStream = (*Stream)(nil)
	_ audit.StreamStats = (*Stream)(nil)
	_ audit.Retention   = (*Stream)(nil)
)

// Request states: the committer claims a request, or a cancelled caller
// withdraws it first; whoever wins the CAS decides.
const (
	reqPending int32 = iota
	reqClaimed
	reqWithdrawn
)

type appendReq struct {
	events []*audit.Event
	keys   [][16]byte
	state  atomic.Int32
	res    []audit.AppendResult
	err    error
	done   chan struct{}
}

func openStream(ctx context.Context, opts Options, log *slog.Logger) (*Stream, error) {
	f, err := openFile(ctx, filepath.Join(opts.Dir, "stream.db"), "stream", 4)
	if err != nil {
		return nil, err
	}
	s := &Stream{
		f: f, log: log.With("backend", "sqlite-stream"), now: opts.Now,
		maxBacklog: opts.MaxBacklog, maxBatch: opts.MaxBatch,
		reqs: make(chan *appendReq, 1024), quit: make(chan struct{}), done: make(chan struct{}),
		notify: make(chan struct{}), consumers: map[string]uint64{},
	}
	if err := s.ensureAutoVacuum(ctx); err != nil {
		return nil, errors.Join(err, f.close())
	}
	// The high-water mark survives trimming in sqlite_sequence.
	var last sql.NullInt64
	if err := f.r.QueryRowContext(ctx, `SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'records'), 0),
		coalesce((SELECT max(seq) FROM records), 0))`).Scan(&last); err != nil {
		return nil, errors.Join(translate(err, "read stream position"), f.close())
	}
	s.last = uint64(last.Int64)
	rows, err := f.r.QueryContext(ctx, `SELECT name, pos FROM consumers`)
	if err != nil {
		return nil, errors.Join(translate(err, "read consumers"), f.close())
	}
	for rows.Next() {
		var name string
		var pos int64
		if err := rows.Scan(&name, &pos); err != nil {
			rows.Close()
			return nil, errors.Join(translate(err, "read consumers"), f.close())
		}
		s.consumers[name] = uint64(pos)
	}
	rows.Close()
	if err := s.checkLegacy(ctx); err != nil {
		return nil, errors.Join(err, f.close())
	}
	var first sql.NullInt64
	if err := f.r.QueryRowContext(ctx, `SELECT min(seq) FROM records`).Scan(&first); err != nil {
		return nil, errors.Join(translate(err, "read stream start"), f.close())
	}
	if first.Valid {
		s.trimmed = uint64(first.Int64) - 1
	} else {
		s.trimmed = s.last
	}
	go s.commitLoop()
	return s, nil
}

// checkLegacy sets s.legacy to whether dedupe_v1 holds any key.
func (s *Stream) checkLegacy(ctx context.Context) error {
	var found bool
	if err := s.f.w.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM dedupe_v1)`).Scan(&found); err != nil {
		return translate(err, "read legacy idempotency keys")
	}
	s.legacy.Store(found)
	return nil
}

// dedupeKey is the 16-byte idempotency key of (tenant, id), a pure
// function of the two, laid out so that time-ordered ids land at the right
// edge of the dedupe b-tree (each commit then dirties a few pages instead
// of one random page per key, which cost ~4 KB of WAL per event):
//
//   - a canonical ULID (26 upper-case Crockford digits): its 48-bit
//     millisecond time (6 bytes), the last 4 bytes of its 80 random bits
//     (which a monotonic generator increments within one millisecond), and
//     6 bytes of SHA-256(tenant NUL id). Two different (tenant, id) share a
//     key only if time, those 32 bits and a 48-bit hash all agree.
//   - any other id: legacyDedupeKey.
func dedupeKey(tenant, id string) [16]byte {
	lo, ok := ulidLow32(id)
	if !ok {
		return legacyDedupeKey(tenant, id)
	}
	var k [16]byte
	ms := idMillis(id)
	k[0], k[1], k[2], k[3], k[4], k[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	k[6], k[7], k[8], k[9] = byte(lo>>24), byte(lo>>16), byte(lo>>8), byte(lo)
	sum := tenantIDHash(tenant, id)
	copy(k[10:], sum[:6])
	return k
}

// legacyDedupeKey is the key of stream schema version 1 (still used for ids
// that are not canonical ULIDs): the id's own millisecond timestamp when it
// is a ULID or UUIDv7 (else zero) in the first 6 bytes, then 10 bytes of
// SHA-256(tenant NUL id). Within one millisecond its order is random.
func legacyDedupeKey(tenant, id string) [16]byte {
	var k [16]byte
	ms := idMillis(id)
	k[0], k[1], k[2], k[3], k[4], k[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	sum := tenantIDHash(tenant, id)
	copy(k[6:], sum[:10])
	return k
}

func tenantIDHash(tenant, id string) [32]byte {
	h := sha256.New()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write([]byte(id))
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// ulidLow32 returns the last 32 bits of a canonical ULID (upper-case
// Crockford base32, first digit ≤ 7, so distinct strings are distinct
// numbers); ok is false for anything else, lower case included.
func ulidLow32(id string) (uint32, bool) {
	if len(id) != 26 {
		return 0, false
	}
	var lo uint32
	for i := 0; i < 26; i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' {
			return 0, false
		}
		v := crockfordValue(c)
		if v < 0 || (i == 0 && v > 7) {
			return 0, false
		}
		lo = lo<<5 | uint32(v) // keeps the low 32 of the 128 bits
	}
	return lo, true
}

// idMillis returns the 48-bit millisecond timestamp of a ULID or UUIDv7 id,
// or 0 for any other id.
func idMillis(id string) uint64 {
	switch len(id) {
	case 26: // ULID: the first 10 Crockford digits carry 50 bits, 48 used.
		var ms uint64
		for i := 0; i < 10; i++ {
			v := crockfordValue(id[i])
			if v < 0 || (i == 0 && v > 7) {
				return 0
			}
			ms = ms<<5 | uint64(v)
		}
		return ms
	case 36: // UUID: xxxxxxxx-xxxx-7xxx-…, the first 48 bits are the time.
		if id[8] != '-' || id[13] != '-' || id[14] != '7' {
			return 0
		}
		var ms uint64
		for _, c := range []byte(id[0:8] + id[9:13]) {
			v := hexValue(c)
			if v < 0 {
				return 0
			}
			ms = ms<<4 | uint64(v)
		}
		return ms
	}
	return 0
}

// crockfordValue is the value of a Crockford base32 digit (either case),
// -1 for any other byte.
func crockfordValue(c byte) int { return int(crockfordValues[c]) }

// crockfordValues maps each byte to its digit value or -1: a table,
// since every key of a ULID id decodes 36 digits (ulidLow32, idMillis).
var crockfordValues = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	for i := range len(alphabet) {
		t[alphabet[i]] = int8(i)
		if c := alphabet[i]; c >= 'A' && c <= 'Z' {
			t[c+'a'-'A'] = int8(i)
		}
	}
	return t
}()

func hexValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// Append durably appends events, gathering concurrent calls into one
// commit. See audit.EventStream for the contract.
func (s *Stream) Append(ctx context.Context, events []*audit.Event) ([]audit.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	req := &appendReq{events: events, keys: make([][16]byte, len(events)), done: make(chan struct{})}
	for i, ev := range events {
		if ev == nil || ev.Tenant == "" || ev.ID == "" {
			return nil, invalid("id", "event %d needs a tenant and an id to be appended", i)
		}
		req.keys[i] = dedupeKey(ev.Tenant, ev.ID)
	}
	if len(events) == 0 {
		return []audit.AppendResult{}, nil
	}
	s.mu.Lock()
	closed := s.closed
	backlog := int64(s.last - s.minAttachedLocked())
	s.mu.Unlock()
	if closed {
		return nil, audit.ErrStreamClosed
	}
	if s.maxBacklog > 0 && backlog >= s.maxBacklog {
		return nil, &audit.Error{Code: audit.EUNAVAILABLE,
			Message: fmt.Sprintf("ingest backlog is full (%d events waiting); retry later", backlog)}
	}
	select {
	case s.reqs <- req:
	case <-s.quit:
		return nil, audit.ErrStreamClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-req.done:
		return req.res, req.err
	case <-ctx.Done():
		if req.state.CompareAndSwap(reqPending, reqWithdrawn) {
			return nil, ctx.Err()
		}
	case <-s.done:
		// The committer stopped; a request it never saw is withdrawn.
		if req.state.CompareAndSwap(reqPending, reqWithdrawn) {
			return nil, audit.ErrStreamClosed
		}
	}
	// The committer has the request: its outcome is the truth.
	<-req.done
	return req.res, req.err
}

func (s *Stream) commitLoop() {
	defer close(s.done)
	for {
		var first *appendReq
		select {
		case first = <-s.reqs:
		case <-s.quit:
			s.failPending()
			return
		}
		batch := []*appendReq{first}
		n := len(first.events)
	gather:
		for n < s.maxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
				n += len(r.events)
			default:
				break gather
			}
		}
		s.commit(batch)
	}
}

func (s *Stream) failPending() {
	for {
		select {
		case r := <-s.reqs:
			if r.state.CompareAndSwap(reqPending, reqClaimed) {
				r.err = audit.ErrStreamClosed
				close(r.done)
			}
		default:
			return
		}
	}
}

// commit writes one group of requests in one transaction and answers each.
func (s *Stream) commit(batch []*appendReq) {
	live := batch[:0]
	for _, r := range batch {
		if r.state.CompareAndSwap(reqPending, reqClaimed) {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return
	}
	s.mu.Lock()
	start := s.last
	s.mu.Unlock()
	last, err := s.write(live, start)
	storageErr := err
	for _, r := range live {
		if storageErr == nil && r.err != nil {
			storageErr = r.err
		}
	}
	s.mu.Lock()
	switch {
	case storageErr != nil && audit.ErrorCode(storageErr) == audit.EUNAVAILABLE:
		s.failErr, s.failAt = storageErr, s.now()
	case err == nil:
		s.failErr = nil
	}
	if err == nil {
		s.last = last
		close(s.notify)
		s.notify = make(chan struct{})
	}
	s.mu.Unlock()
	for _, r := range live {
		if err != nil {
			r.res, r.err = nil, err
		}
		close(r.done)
	}
}

// appendChunk is how many events one multi-row statement carries: cgo and
// database/sql cost per statement, not per row, dominate small inserts.
const appendChunk = 256

// write runs the transaction of one group commit and returns the new last
// seq. Events are encoded before the transaction, so an event that cannot
// be encoded fails its own request alone; every request's events are then
// written together, appendChunk events per statement, whoever sent them —
// 64 single-event requests cost two statements, not 64 × 4. An error
// returned fails the whole group (it means the transaction failed: disk
// full, read-only, I/O).
func (s *Stream) write(live []*appendReq, seq uint64) (uint64, error) {
	ctx := context.Background() // callers' contexts must not abort a shared commit
	w := s.cw.reset(s.now().UTC().Unix()/86400, s.legacy.Load())
	defer w.done()
	seen := make(map[[16]byte]struct{})
	for _, r := range live {
		r.res = make([]audit.AppendResult, len(r.events))
		if err := w.encodeReq(r, seen); err != nil {
			r.res, r.err = nil, err
		}
	}
	if len(w.refs) == 0 {
		return seq, nil
	}
	tx, err := s.f.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, translate(err, "begin append")
	}
	defer func() { _ = tx.Rollback() }()
	w.tx = tx
	for refs := w.refs; len(refs) > 0; {
		n := min(len(refs), appendChunk)
		if seq, err = w.appendChunk(ctx, refs[:n], seq); err != nil {
			return 0, err
		}
		refs = refs[n:]
	}
	if err := tx.Commit(); err != nil {
		return 0, translate(err, "commit append")
	}
	return seq, nil
}

// evRef is one event of a group commit: event i of request r, encoded at
// enc[off:end] of the chunkWriter.
type evRef struct {
	r        *appendReq
	i        int
	off, end int
}

// chunkWriter appends the events of one group commit with multi-row
// statements. The committer keeps one and reuses its buffers from group to
// group (reset, done): growing fresh ones for every group was most of what
// the committer allocated.
type chunkWriter struct {
	tx     *sql.Tx
	day    int64
	legacy bool    // look keys up in dedupe_v1 too
	enc    []byte  // every event of the group, encoded
	refs   []evRef // the events to append, in order
	args   []any
	buf    []byte // the records row being built
	sb     []byte
}

// A chunkWriter keeps its buffers between groups up to these sizes (1 MiB
// of encoded events, 4,096 events' references); larger ones, grown by a
// group of big batches, are dropped rather than pinned.
const (
	maxKeptBytes  = 1 << 20
	maxKeptEvents = 4096
)

// reset prepares w for a group commit on day.
func (w *chunkWriter) reset(day int64, legacy bool) *chunkWriter {
	w.day, w.legacy = day, legacy
	w.enc, w.refs, w.args, w.buf, w.sb = w.enc[:0], w.refs[:0], w.args[:0], w.buf[:0], w.sb[:0]
	return w
}

// done ends a group commit: it lets go of the group's transaction and
// requests (which the reused slices would otherwise keep reachable) and
// drops buffers over maxKeptBuffer.
func (w *chunkWriter) done() {
	w.tx = nil
	clear(w.refs[:cap(w.refs)])
	clear(w.args[:cap(w.args)])
	if cap(w.enc) > maxKeptBytes {
		w.enc = nil
	}
	if cap(w.buf) > maxKeptBytes {
		w.buf = nil
	}
	if cap(w.refs) > maxKeptEvents {
		w.refs = nil
	}
	if cap(w.args) > 3*maxKeptEvents {
		w.args = nil
	}
}

// encodeReq encodes the events of r that are not repeats of an earlier
// event of the group (those are duplicates now) and queues them. If one
// cannot be encoded, none of r's events is queued.
func (w *chunkWriter) encodeReq(r *appendReq, seen map[[16]byte]struct{}) error {
	mark, refs := len(w.enc), len(w.refs)
	var added [][16]byte
	for i, ev := range r.events {
		k := r.keys[i]
		if _, ok := seen[k]; ok {
			r.res[i] = audit.AppendResult{Duplicate: true}
			continue
		}
		off := len(w.enc)
		var err error
		if w.enc, err = encodeEvent(w.enc, ev, encodeOpts{}); err != nil {
			w.enc, w.refs = w.enc[:mark], w.refs[:refs]
			for _, k := range added {
				delete(seen, k)
			}
			return err
		}
		seen[k] = struct{}{}
		added = append(added, k)
		w.refs = append(w.refs, evRef{r: r, i: i, off: off, end: len(w.enc)})
	}
	return nil
}

func (w *chunkWriter) values(n, cols int) string { return placeholders(n, cols) }

// placeholders is the parameter list of a multi-row statement: n rows of
// cols parameters, "(?,?),(?,?)"; placeholders(1, n) is an IN list.
func placeholders(n, cols int) string {
	var b strings.Builder
	b.Grow(n * (2*cols + 2))
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('?')
		}
		b.WriteByte(')')
	}
	return b.String()
}

// appendChunk inserts the idempotency keys of refs in one statement, learns
// from RETURNING which were new, and appends those as one records row.
func (w *chunkWriter) appendChunk(ctx context.Context, refs []evRef, seq uint64) (uint64, error) {
	if w.legacy {
		var err error
		if refs, err = w.dropLegacy(ctx, refs); err != nil || len(refs) == 0 {
			return seq, err
		}
	}
	w.args = w.args[:0]
	for _, ref := range refs {
		w.args = append(w.args, ref.r.keys[ref.i][:], int64(hash32(ref.r.events[ref.i].Tenant)), w.day)
	}
	rows, err := w.tx.QueryContext(ctx, `INSERT OR IGNORE INTO dedupe (k, th, day) VALUES `+w.values(len(refs), 3)+` RETURNING k`, w.args...)
	if err != nil {
		return 0, translate(err, "append idempotency keys")
	}
	fresh := make(map[[16]byte]bool, len(refs))
	for rows.Next() {
		var k []byte
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return 0, translate(err, "append idempotency keys")
		}
		fresh[[16]byte(k)] = true
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return 0, translate(err, "append idempotency keys")
	}
	// The fresh events of the chunk have consecutive seqs and go into one
	// row keyed by the last of them (stream schema version 3).
	size := 0
	for _, ref := range refs {
		size += binary.MaxVarintLen64 + ref.end - ref.off
	}
	w.buf = slices.Grow(w.buf[:0], size)
	fresh0 := seq
	var one []byte
	for _, ref := range refs {
		if !fresh[ref.r.keys[ref.i]] {
			ref.r.res[ref.i] = audit.AppendResult{Duplicate: true}
			continue
		}
		one = w.enc[ref.off:ref.end]
		w.buf = binary.AppendUvarint(w.buf, uint64(len(one)))
		w.buf = append(w.buf, one...)
		seq++
		ref.r.res[ref.i] = audit.AppendResult{Seq: seq}
	}
	n := seq - fresh0
	body := w.buf
	switch n {
	case 0:
		return seq, nil
	case 1: // a single event is stored bare, as versions 1 and 2 did
		body = one
	}
	if _, err := w.tx.ExecContext(ctx, `INSERT INTO records (seq, n, body) VALUES (?, ?, ?)`, int64(seq), int64(n), body); err != nil {
		return 0, translate(err, "append records")
	}
	return seq, nil
}

// dropLegacy marks as duplicates the events of refs whose version-1 key is
// in dedupe_v1 and returns the others.
func (w *chunkWriter) dropLegacy(ctx context.Context, refs []evRef) ([]evRef, error) {
	w.args = w.args[:0]
	w.sb = append(w.sb[:0], "SELECT k FROM dedupe_v1 WHERE k IN ("...)
	for j, ref := range refs {
		if j > 0 {
			w.sb = append(w.sb, ',')
		}
		w.sb = append(w.sb, '?')
		ev := ref.r.events[ref.i]
		k := legacyDedupeKey(ev.Tenant, ev.ID)
		w.args = append(w.args, k[:])
	}
	w.sb = append(w.sb, ')')
	rows, err := w.tx.QueryContext(ctx, string(w.sb), w.args...)
	if err != nil {
		return nil, translate(err, "look up legacy idempotency keys")
	}
	old := map[[16]byte]bool{}
	for rows.Next() {
		var k []byte
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return nil, translate(err, "look up legacy idempotency keys")
		}
		old[[16]byte(k)] = true
	}
	err = rows.Err()
	rows.Close()
	if err != nil || len(old) == 0 {
		return refs, translate(err, "look up legacy idempotency keys")
	}
	keep := refs[:0:0]
	for _, ref := range refs {
		ev := ref.r.events[ref.i]
		if old[legacyDedupeKey(ev.Tenant, ev.ID)] {
			ref.r.res[ref.i] = audit.AppendResult{Duplicate: true}
			continue
		}
		keep = append(keep, ref)
	}
	return keep, nil
}

// Read returns up to max records after the position, in Seq order, without
// blocking. max ≤ 0 means 1000; it is capped at 50,000.
func (s *Stream) Read(ctx context.Context, after uint64, max int) ([]audit.Record, error) {
	if s.isClosed() {
		return nil, audit.ErrStreamClosed
	}
	if max <= 0 {
		max = 1000
	}
	max = min(max, 50_000)
	// A row holds the n events ending at seq; the first row may start at or
	// before the position.
	rows, err := s.f.r.QueryContext(ctx, `SELECT seq, n, body FROM records WHERE seq > ? ORDER BY seq LIMIT ?`, int64(after), max)
	if err != nil {
		return nil, translate(err, "read stream")
	}
	defer rows.Close()
	out := make([]audit.Record, 0, min(max, 256))
	for len(out) < max && rows.Next() {
		var last, n int64
		var body []byte
		if err := rows.Scan(&last, &n, &body); err != nil {
			return nil, translate(err, "read stream")
		}
		if out, err = appendRecords(out, uint64(last), n, body, after, max); err != nil {
			return nil, err
		}
	}
	return out, translate(rows.Err(), "read stream")
}

// appendRecords decodes the events of one records row (n events ending at
// seq last) that come after the position, up to max records in out.
func appendRecords(out []audit.Record, last uint64, n int64, body []byte, after uint64, max int) ([]audit.Record, error) {
	if n < 1 || uint64(n) > last {
		return out, fmt.Errorf("read stream record %d: bad event count %d", last, n)
	}
	seq := last - uint64(n) + 1
	if n == 1 {
		rec := audit.Record{Seq: seq}
		if err := decodeEvent(body, &rec.Event, encodeOpts{}); err != nil {
			return out, fmt.Errorf("read stream record %d: %w", seq, err)
		}
		return append(out, rec), nil
	}
	for ; seq <= last && len(out) < max; seq++ {
		size, k := binary.Uvarint(body)
		if k <= 0 || size > uint64(len(body)-k) {
			return out, fmt.Errorf("read stream record %d: truncated block", seq)
		}
		ev := body[k : k+int(size)]
		body = body[k+int(size):]
		if seq <= after {
			continue
		}
		rec := audit.Record{Seq: seq}
		if err := decodeEvent(ev, &rec.Event, encodeOpts{}); err != nil {
			return out, fmt.Errorf("read stream record %d: %w", seq, err)
		}
		out = append(out, rec)
	}
	if seq > last && len(body) != 0 {
		return out, fmt.Errorf("read stream record %d: %d bytes after the block's last event", last, len(body))
	}
	return out, nil
}

// Wait blocks until a record after the position exists, ctx ends or the
// stream closes (ErrStreamClosed).
func (s *Stream) Wait(ctx context.Context, after uint64) error {
	for {
		s.mu.Lock()
		closed, last, ch := s.closed, s.last, s.notify
		s.mu.Unlock()
		switch {
		case closed:
			return audit.ErrStreamClosed
		case last > after:
			return nil
		}
		select {
		case <-ch:
		case <-s.quit:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Offset returns the consumer's committed position, 0 for a new consumer.
func (s *Stream) Offset(ctx context.Context, consumer string) (uint64, error) {
	if s.isClosed() {
		return 0, audit.ErrStreamClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.consumers[consumer], nil
}

// Commit durably records the consumer's position (seq may move backwards,
// to replay) and deletes the records every consumer has committed. A seq
// beyond the last appended record is EINVALID.
func (s *Stream) Commit(ctx context.Context, consumer string, seq uint64) error {
	if consumer == "" {
		return invalid("consumer", "consumer name is required")
	}
	s.mu.Lock()
	closed, last := s.closed, s.last
	s.mu.Unlock()
	if closed {
		return audit.ErrStreamClosed
	}
	if seq > last {
		return invalid("seq", "commit position %d is beyond the last record %d", seq, last)
	}
	if _, err := s.f.w.ExecContext(ctx, `INSERT INTO consumers (name, pos) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET pos = excluded.pos`, consumer, int64(seq)); err != nil {
		return translate(err, "commit consumer "+consumer)
	}
	s.mu.Lock()
	s.consumers[consumer] = seq
	low, trimmed, last := s.minCommittedLocked(), s.trimmed, s.last
	s.mu.Unlock()
	// Pages are given back only once the consumers have (nearly) caught
	// up: during a burst the pages a trim frees are the ones the next
	// appends need, and reclaiming them would compete with ingestion for
	// the writer and make the file grow again.
	caughtUp := last-low <= reclaimBacklog
	if low <= trimmed {
		if caughtUp {
			return s.reclaim(ctx)
		}
		return nil
	}
	if _, err := s.f.w.ExecContext(ctx, `DELETE FROM records WHERE seq <= ?`, int64(low)); err != nil {
		return translate(err, "trim stream")
	}
	s.mu.Lock()
	s.trimmed = max(s.trimmed, low)
	s.mu.Unlock()
	if !caughtUp {
		return nil
	}
	return s.reclaim(ctx)
}

// Free-page reclaim of stream.db. A backlog (a burst of ingest the
// pipeline works off, or a pipeline that was down) grows the file; once
// trimmed, its pages sit on the free list, and without reclaim the file
// never shrinks — after a 1M-event bulk load that was a quarter of a GiB,
// 290 bytes per stored event. Commit gives back reclaimStep pages per
// reclaimEvery since it last did (up to reclaimMaxSteps steps at once: the
// pipeline commits every few seconds), keeping reclaimSlack free pages so that the next burst
// does not have to grow the file again straight away, and only while the
// backlog is at most reclaimBacklog events. Each step moves at
// most reclaimStep pages inside one short write transaction, so appends
// wait for it no longer than for a large group commit.
const (
	reclaimEvery = time.Second
	reclaimStep  = 2048 // pages (8 MiB at 4 KiB)
	reclaimSlack = 4096 // pages (16 MiB at 4 KiB)
	// reclaimMaxSteps is the most steps one Commit takes, after a pause.
	reclaimMaxSteps = 10
	// reclaimBacklog is the most unconsumed events at which reclaim runs.
	reclaimBacklog = 20_000
)

// reclaim returns free pages beyond reclaimSlack to the file system:
// reclaimStep of them for each reclaimEvery since the last reclaim (one
// step the first time, at most reclaimMaxSteps), each step its own short
// transaction so that appends wait for no more than one.
func (s *Stream) reclaim(ctx context.Context) error {
	if !s.reclaimMu.TryLock() {
		return nil
	}
	defer s.reclaimMu.Unlock()
	now := s.now()
	if now.Sub(s.reclaimAt) < reclaimEvery {
		return nil
	}
	steps := 1
	if !s.reclaimAt.IsZero() {
		steps = int(min(now.Sub(s.reclaimAt)/reclaimEvery, reclaimMaxSteps))
	}
	s.reclaimAt = now
	for range steps {
		n, err := s.f.giveBack(ctx, reclaimSlack, reclaimStep)
		if err != nil || n == 0 {
			return err
		}
	}
	return nil
}

// ensureAutoVacuum converts a stream.db created before incremental
// auto-vacuum (the mode of every new file, see openFile) with one VACUUM.
// The stream holds only the backlog the pipeline has not consumed, so this
// is normally quick; it is logged because a large backlog makes it slow.
func (s *Stream) ensureAutoVacuum(ctx context.Context) error {
	return s.f.ensureIncrementalVacuum(ctx, s.log)
}

// minCommittedLocked is the lowest committed offset among consumers, 0 when
// there are none (so nothing is trimmed before a consumer exists).
func (s *Stream) minCommittedLocked() uint64 {
	first := true
	var low uint64
	for _, pos := range s.consumers {
		if first || pos < low {
			low, first = pos, false
		}
	}
	return low
}

// DetachedPrefix starts the name of a consumer that never holds ingestion
// back: it is left out of the backlog (backpressure, Backlog) though the
// records it has not committed are kept for it. Such a consumer bounds
// its own lag (a SIEM sink skips ahead and reports the gap) and is removed
// with RemoveConsumer when it goes away.
const DetachedPrefix = "siem:"

// minAttachedLocked is the lowest committed offset among the consumers
// that count for backpressure (all but the detached ones).
func (s *Stream) minAttachedLocked() uint64 {
	first := true
	var low uint64
	for name, pos := range s.consumers {
		if strings.HasPrefix(name, DetachedPrefix) {
			continue
		}
		if first || pos < low {
			low, first = pos, false
		}
	}
	return low
}

// Backlog returns the last appended Seq and the lowest committed offset
// among the consumers that are not detached.
func (s *Stream) Backlog(ctx context.Context) (last, committed uint64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.minAttachedLocked(), nil
}

// Consumers returns the names of the consumers that start with prefix.
func (s *Stream) Consumers(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name := range s.consumers {
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	return out
}

// RemoveConsumer forgets a consumer, so it no longer keeps records. The
// records the others have committed go at their next Commit.
func (s *Stream) RemoveConsumer(ctx context.Context, consumer string) error {
	if s.isClosed() {
		return audit.ErrStreamClosed
	}
	if _, err := s.f.w.ExecContext(ctx, `DELETE FROM consumers WHERE name = ?`, consumer); err != nil {
		return translate(err, "remove consumer "+consumer)
	}
	s.mu.Lock()
	delete(s.consumers, consumer)
	s.mu.Unlock()
	return nil
}

// Last returns the Seq of the last appended record.
func (s *Stream) Last() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Purge forgets tenant's idempotency keys appended on UTC days wholly
// before the cutoff, so the key table shrinks with retention. It returns
// how many keys it deleted (the stream holds no events past their
// consumption). Keys are matched on a 32-bit tenant hash: a colliding
// tenant may lose idempotency for already-expired days early, never data.
func (s *Stream) Purge(ctx context.Context, tenant string, before time.Time) (int64, error) {
	if tenant == "" {
		return 0, invalid("tenant", "purge needs a tenant")
	}
	if s.isClosed() {
		return 0, audit.ErrStreamClosed
	}
	day := before.UTC().Unix() / 86400
	res, err := s.f.w.ExecContext(ctx, `DELETE FROM dedupe WHERE th = ? AND day < ?`, int64(hash32(tenant)), day)
	if err != nil {
		return 0, translate(err, "purge idempotency keys")
	}
	n, _ := res.RowsAffected()
	if s.legacy.Load() {
		res, err := s.f.w.ExecContext(ctx, `DELETE FROM dedupe_v1 WHERE th = ? AND day < ?`, int64(hash32(tenant)), day)
		if err != nil {
			return n, translate(err, "purge legacy idempotency keys")
		}
		m, _ := res.RowsAffected()
		n += m
		if err := s.checkLegacy(ctx); err != nil {
			return n, err
		}
	}
	return n, nil
}

// failMemory is how long readiness reports a failed group commit when no
// commit has succeeded since: long enough for probes to see it, short
// enough that a node nobody sends to (because it is not ready) becomes
// ready again and lets clients find out whether space has returned.
const failMemory = 10 * time.Second

// writeFailure returns the storage error of the most recent group commit
// if it failed within failMemory and nothing has been committed since.
func (s *Stream) writeFailure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil && s.now().Sub(s.failAt) < failMemory {
		return s.failErr
	}
	return nil
}

func (s *Stream) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops the committer (pending Appends get ErrStreamClosed), wakes
// waiters and closes the file. Calling it again is a no-op.
func (s *Stream) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.quit)
		<-s.done
		err = s.f.close()
	})
	return err
}
