package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// EventStore is audit.EventStore on time-partitioned SQLite files: the
// events whose Time falls in one partition period live in
// Dir/events/<YYYYMMDDHH>-<hours>h.db. Small files keep each commit's
// rewritten index pages few and cached however large the history grows,
// searches walk partitions newest first, and retention of a whole period is
// a file delete.
//
// Idempotency is checked within the event's partition, which the event's
// Time decides: a repeated event (same tenant, id and time) is always
// skipped; the stream in front guarantees that no id reaches the store
// twice with different times.
//
// Atomicity: SQLite in WAL mode cannot commit several files atomically, so
// InsertEvents is atomic per partition. A call that fails part-way may have
// stored the events of some partitions; because inserts are idempotent,
// retrying the call completes it without duplicates.
type EventStore struct {
	dir     string
	period  time.Duration
	log     *slog.Logger
	maxOpen int
	dictCap int

	mu sync.Mutex
	// known holds the period numbers of the partition files on disk,
	// ascending. It is read from the file names at open, so starting takes
	// the same time with ten partitions or ten thousand.
	known []int64
	// open holds the partitions with open connections (or being opened).
	// At most maxOpen of them are kept; beyond that the least recently
	// used idle one is closed. A partition in use (refs > 0) is never
	// closed, so while more than maxOpen are in use at once the set
	// exceeds the bound until they are released.
	open  map[int64]*partition
	tick  uint64 // use counter, for least-recently-used
	opens uint64 // partition files opened, for tests
	// tenantsIn holds, for each partition opened since the store opened,
	// the names of the tenants it holds, kept when the partition closes: a
	// tenant's search, scan, aggregation or retention pass skips the
	// partitions known not to hold the tenant without opening them. A
	// partition not opened since start is not in it and is opened to find
	// out. Inserts add to it; a purge may leave a name whose events are
	// gone, which costs an open, never a missed event.
	tenantsIn map[int64]map[string]struct{}
	closed    bool
	// sealTrack follows each partition's writes for the background seal
	// (seal.go).
	sealTrack map[int64]*sealTrack
	// sealOnInsert seals a partition after every insert (tests: every
	// read then goes through blocks).
	sealOnInsert bool
	// legacyLayout creates partitions with the indexes of earlier
	// versions, without time buckets (tests of such files; layout.go).
	legacyLayout bool
	// warm holds, most recent first, the partitions inserted into last
	// (at most warmPartitions), whose writers keep a larger page cache.
	warm []*partition
}

// The writer of a partition being filled keeps warmCacheKiB of page cache
// instead of openFile's pageCacheKiB. Every event inserts into seven
// indexes, and on a day of a million events most of their leaf pages no
// longer fit in 16 MiB: inserting batches of 20,000 into such a day cost
// 71–88 µs of CPU per event with 16 MiB and 56 µs with 64 MiB
// (docs/perf/storage.md); 256 MiB gained little more. Only the warmPartitions partitions inserted
// into last get it, so a tenant writing across many days cannot multiply
// it: memory stays within warmPartitions × warmCacheKiB beyond the rest.
const (
	warmPartitions = 2
	warmCacheKiB   = 64 << 10
)

var (
	_ audit.EventStore   = (*EventStore)(nil)
	_ audit.Retention    = (*EventStore)(nil)
	_ audit.Pinger       = (*EventStore)(nil)
	_ audit.SizeReporter = (*EventStore)(nil)
)

// partition is one events file and its in-memory dictionary cache. It is
// reached through EventStore.acquire, which counts the reference, and given
// back with EventStore.release.
type partition struct {
	idx    int64 // period number since the Unix epoch
	start  int64 // Unix nanoseconds of the period start
	period int64 // its length, nanoseconds
	path   string
	f      *file // set once ready is closed without err

	// Guarded by EventStore.mu.
	refs  int    // holders: acquire increments, release decrements
	used  uint64 // EventStore.tick at the last release
	ready chan struct{}
	err   error // the open failure, set before ready is closed
	done  bool  // ready is closed and err is nil

	wmu sync.Mutex // one InsertEvents/Purge transaction at a time

	warm      bool       // in EventStore.warm; guarded by EventStore.mu
	cooling   bool       // a background applyCache is pending; guarded by EventStore.mu
	cmu       sync.Mutex // one cache change at a time
	cacheWarm bool       // the writer's cache is warmCacheKiB; guarded by cmu

	dmu     sync.RWMutex
	dictCap int // entries beyond which optional strings are not interned
	ids     map[string]int64
	names   []string // names[id]; id 0 unused
	tenants map[int64]bool
	blocks  bool // the partition has sealed blocks (seal.go)
	// bucketNs is the width of the time buckets leading the
	// high-cardinality indexes (layout.go); 0 in a partition written by
	// an earlier version, whose indexes have none.
	bucketNs int64
}

func hash32(parts ...string) uint32 {
	h := fnv.New32a()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(p))
	}
	return h.Sum32()
}

// idKey is the ev_id index key of (tenant, id). For a ULID or UUIDv7 id it
// is the id's millisecond time shifted left 15 bits plus 15 bits of hash,
// so the ids Vigil assigns (ULIDs, in arrival order) append at the right
// edge of the index instead of dirtying a random page per insert; other ids
// get a 32-bit hash.
func idKey(tenant, id string) int64 {
	if ms := idMillis(id); ms != 0 {
		return int64(ms<<15 | uint64(hash32(tenant, id)&0x7fff))
	}
	return int64(int32(hash32(tenant, id)))
}

// key32 is the signed 32-bit index key of (tenant, value), NULL for "".
func key32(tenant, v string) any {
	if v == "" {
		return nil
	}
	return int64(int32(hash32(tenant, v)))
}

func openEventStore(opts Options, log *slog.Logger) (*EventStore, error) {
	s := &EventStore{dir: filepath.Join(opts.Dir, "events"), period: opts.PartitionPeriod,
		log: log.With("backend", "sqlite-events"), maxOpen: opts.MaxOpenPartitions,
		dictCap: opts.DictionaryCap, open: map[int64]*partition{}, tenantsIn: map[int64]map[string]struct{}{},
		sealTrack: map[int64]*sealTrack{}}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list partitions: %w", err)
	}
	suffix := fmt.Sprintf("-%dh.db", int(s.period/time.Hour))
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".db") {
			continue
		}
		if !strings.HasSuffix(name, suffix) {
			return nil, &audit.Error{Code: audit.EINVALID, Field: "partition_period",
				Message: fmt.Sprintf("sqlite: partition %s was made with another partition period than %s", name, s.period)}
		}
		start, err := time.Parse("2006010215", strings.TrimSuffix(name, suffix))
		if err != nil {
			return nil, fmt.Errorf("sqlite: partition file name %s: %w", name, err)
		}
		s.known = append(s.known, s.index(start.UnixNano()))
	}
	slices.Sort(s.known)
	s.known = slices.Compact(s.known)
	return s, nil
}

// index returns the period number of a Unix-nanosecond time (floor division).
func (s *EventStore) index(ns int64) int64 {
	p := int64(s.period)
	q := ns / p
	if ns%p < 0 {
		q--
	}
	return q
}

// path returns the file of partition idx.
func (s *EventStore) path(idx int64) string {
	start := idx * int64(s.period)
	name := fmt.Sprintf("%s-%dh.db", time.Unix(0, start).UTC().Format("2006010215"), int(s.period/time.Hour))
	return filepath.Join(s.dir, name)
}

// errStoreClosed is returned by operations on a closed event store.
var errStoreClosed = errors.New("sqlite: event store closed")

// acquire returns partition idx, opening its file (and, when create is set,
// creating it) if needed, with a reference the caller gives back with
// release; nil without error when the partition does not exist and create
// is false. Opening may close the least recently used idle partition.
func (s *EventStore) acquire(ctx context.Context, idx int64, create bool) (*partition, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errStoreClosed
	}
	if p := s.open[idx]; p != nil {
		p.refs++
		s.mu.Unlock()
		select {
		case <-p.ready:
		case <-ctx.Done():
			s.release(p)
			return nil, ctx.Err()
		}
		if p.err != nil {
			s.release(p)
			return nil, p.err
		}
		return p, nil
	}
	if _, found := slices.BinarySearch(s.known, idx); !found && !create {
		s.mu.Unlock()
		return nil, nil
	}
	p := &partition{idx: idx, start: idx * int64(s.period), period: int64(s.period), path: s.path(idx), refs: 1,
		ready: make(chan struct{}), dictCap: s.dictCap}
	s.open[idx] = p
	victims := s.evictLocked()
	s.mu.Unlock()
	s.closeAll(victims)

	// The open is not the caller's alone (others may wait for it), so a
	// cancelled caller does not make it fail for them.
	f, err := openFile(context.WithoutCancel(ctx), p.path, "events", 4)
	if err == nil {
		p.f = f
		p.ids, p.names, p.tenants = map[string]int64{}, []string{""}, map[int64]bool{}
		// The layout first, on the writer: a reader connection that had
		// read the schema before the indexes changed would explain its
		// plans from the old one (its queries re-prepare, EXPLAIN does not).
		err = p.loadLayout(context.WithoutCancel(ctx), s.legacyLayout)
		if err == nil {
			err = p.load(context.WithoutCancel(ctx))
		}
		if err == nil {
			err = p.loadSeal(context.WithoutCancel(ctx))
		}
		if err != nil {
			err = errors.Join(err, f.close())
		}
	}
	s.mu.Lock()
	if err != nil {
		p.err = err
		if s.open[idx] == p {
			delete(s.open, idx)
		}
	} else {
		p.done = true
		s.opens++
		if i, found := slices.BinarySearch(s.known, idx); !found {
			s.known = slices.Insert(s.known, i, idx)
		}
		set := make(map[string]struct{}, len(p.tenants))
		for t := range p.tenants {
			set[p.names[t]] = struct{}{}
		}
		s.tenantsIn[idx] = set
	}
	close(p.ready)
	closed := s.closed
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if closed {
		// Close ran while the file was opening and did not see it.
		return nil, errors.Join(errStoreClosed, f.close())
	}
	return p, nil
}

// release gives back a reference taken by acquire. The partition stays open
// for reuse until the bound makes it the least recently used one to close.
func (s *EventStore) release(p *partition) {
	s.mu.Lock()
	p.refs--
	s.tick++
	p.used = s.tick
	victims := s.evictLocked()
	s.mu.Unlock()
	s.closeAll(victims)
}

// evictLocked removes from the open set, least recently used first, idle
// partitions until at most maxOpen remain, and returns them for closing.
func (s *EventStore) evictLocked() []*partition {
	var victims []*partition
	for len(s.open) > s.maxOpen {
		var lru *partition
		for _, p := range s.open {
			if p.refs == 0 && p.done && (lru == nil || p.used < lru.used) {
				lru = p
			}
		}
		if lru == nil {
			break // every partition is in use
		}
		delete(s.open, lru.idx)
		if lru.warm {
			lru.warm = false
			s.warm = slices.DeleteFunc(s.warm, func(w *partition) bool { return w == lru })
		}
		victims = append(victims, lru)
	}
	return victims
}

// closeAll closes evicted partitions (outside EventStore.mu: closing
// checkpoints the WAL). A new acquire of the same period meanwhile opens
// the file anew, which SQLite allows; the evicted one has no writer.
func (s *EventStore) closeAll(ps []*partition) {
	for _, p := range ps {
		if err := p.f.close(); err != nil {
			s.log.Warn("close idle partition", slog.String("path", p.path), slog.Any("error", err))
		}
	}
}

// each calls fn for the partitions idxs in order, holding one at a time,
// until fn stops or fails. Partitions that no longer exist are skipped.
func (s *EventStore) each(ctx context.Context, idxs []int64, fn func(p *partition) (stop bool, err error)) error {
	for _, idx := range idxs {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := s.acquire(ctx, idx, false)
		if err != nil {
			return err
		}
		if p == nil {
			continue
		}
		stop, err := fn(p)
		s.release(p)
		if stop || err != nil {
			return err
		}
	}
	return nil
}

// load reads the dictionary and tenant list into memory.
func (p *partition) load(ctx context.Context) error {
	rows, err := p.f.r.QueryContext(ctx, `SELECT id, val FROM dict ORDER BY id`)
	if err != nil {
		return translate(err, "load dictionary")
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			return translate(err, "load dictionary")
		}
		if id != int64(len(p.names)) {
			return fmt.Errorf("sqlite: dictionary of %s has a gap at %d", p.f.path, id)
		}
		p.names = append(p.names, v)
		p.ids[v] = id
	}
	if err := rows.Err(); err != nil {
		return translate(err, "load dictionary")
	}
	trows, err := p.f.r.QueryContext(ctx, `SELECT t FROM tenants`)
	if err != nil {
		return translate(err, "load tenants")
	}
	defer trows.Close()
	for trows.Next() {
		var t int64
		if err := trows.Scan(&t); err != nil {
			return translate(err, "load tenants")
		}
		p.tenants[t] = true
	}
	return translate(trows.Err(), "load tenants")
}

// noteTenants records in tenantsIn the tenants of events just stored in
// partition idx.
func (s *EventStore) noteTenants(idx int64, evs []*audit.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.tenantsIn[idx]
	if set == nil {
		return // not known: the next open reads its tenants
	}
	last := ""
	for _, ev := range evs {
		if ev.Tenant != last {
			last = ev.Tenant
			set[last] = struct{}{}
		}
	}
}

// holding returns idxs (reusing it) without the partitions known not to
// hold tenant's events; every partition for "".
func (s *EventStore) holding(idxs []int64, tenant string) []int64 {
	if tenant == "" {
		return idxs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := idxs[:0]
	for _, idx := range idxs {
		if set, known := s.tenantsIn[idx]; known {
			if _, ok := set[tenant]; !ok {
				continue
			}
		}
		out = append(out, idx)
	}
	return out
}

// partitionsNewestFirst returns the period numbers of the partitions
// overlapping [from, to) (Unix ns; 0 means unbounded), newest first. They
// are not opened: callers go through acquire or each.
func (s *EventStore) partitionsNewestFirst(from, to int64) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int64, 0, len(s.known))
	for i := len(s.known) - 1; i >= 0; i-- {
		idx := s.known[i]
		start := idx * int64(s.period)
		end := start + int64(s.period)
		if (to != 0 && start >= to) || (from != 0 && end <= from) {
			continue
		}
		out = append(out, idx)
	}
	return out
}

// name returns the dictionary string of id (dictionary interface).
func (p *partition) name(id uint64) (string, bool) {
	p.dmu.RLock()
	defer p.dmu.RUnlock()
	if id == 0 || id >= uint64(len(p.names)) {
		return "", false
	}
	return p.names[id], true
}

// id returns the dictionary id of v without adding it.
func (p *partition) id(v string) (int64, bool) {
	p.dmu.RLock()
	defer p.dmu.RUnlock()
	id, ok := p.ids[v]
	return id, ok
}

func (p *partition) hasTenant(t int64) bool {
	p.dmu.RLock()
	defer p.dmu.RUnlock()
	return p.tenants[t]
}

// writer is the dictionary seen by an insert transaction: new strings get
// ids at once and are written with the transaction; rollback forgets them.
type writer struct {
	p          *partition
	firstNew   int
	newTenants []int64
}

// lookup implements dictionary for the encoder; dictionary ids in bodies
// start at 0 (= names[1]). Once the dictionary holds dictCap entries, new
// strings are not interned and the encoder writes them inline.
func (w *writer) lookup(s string) (uint64, bool) {
	id, ok := w.intern(s, false)
	if !ok {
		return 0, false
	}
	return uint64(id - 1), true
}

func (w *writer) name(id uint64) (string, bool) { return w.p.name(id + 1) }

// add returns the dictionary id of s, adding it whatever the cap: tenants
// and actions are columns that hold dictionary ids.
func (w *writer) add(s string) int64 {
	id, _ := w.intern(s, true)
	return id
}

func (w *writer) intern(s string, always bool) (int64, bool) {
	p := w.p
	p.dmu.Lock()
	defer p.dmu.Unlock()
	if id, ok := p.ids[s]; ok {
		return id, true
	}
	if !always && len(p.names) > p.dictCap {
		return 0, false
	}
	id := int64(len(p.names))
	p.names = append(p.names, s)
	p.ids[s] = id
	return id, true
}

func (w *writer) tenant(t int64) {
	if !w.p.hasTenant(t) && !slices.Contains(w.newTenants, t) {
		w.newTenants = append(w.newTenants, t)
	}
}

// flush writes the dictionary entries and tenants added by this transaction.
func (w *writer) flush(ctx context.Context, tx *sql.Tx) error {
	w.p.dmu.RLock()
	added := slices.Clone(w.p.names[w.firstNew:])
	w.p.dmu.RUnlock()
	for i, v := range added {
		if _, err := tx.ExecContext(ctx, `INSERT INTO dict (id, val) VALUES (?, ?)`, w.firstNew+i, v); err != nil {
			return translate(err, "insert dictionary entry")
		}
	}
	for _, t := range w.newTenants {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO tenants (t) VALUES (?)`, t); err != nil {
			return translate(err, "insert partition tenant")
		}
	}
	return nil
}

// done publishes the transaction's dictionary changes, or forgets them.
func (w *writer) done(committed bool) {
	p := w.p
	p.dmu.Lock()
	defer p.dmu.Unlock()
	if committed {
		for _, t := range w.newTenants {
			p.tenants[t] = true
		}
		return
	}
	for _, v := range p.names[w.firstNew:] {
		delete(p.ids, v)
	}
	p.names = p.names[:w.firstNew]
}

// dictAdapter exposes a partition's committed dictionary to the decoder.
type dictAdapter struct{ p *partition }

func (d dictAdapter) lookup(string) (uint64, bool)  { return 0, false }
func (d dictAdapter) name(id uint64) (string, bool) { return d.p.name(id + 1) }

// Time bounds: UnixNano must not overflow.
var (
	minEventTime = time.Unix(0, 0).Add(-200 * 365 * 24 * time.Hour)
	maxEventTime = time.Date(2260, 1, 1, 0, 0, 0, 0, time.UTC)
)

// InsertEvents stores events, skipping those already stored (same tenant,
// id and time). Each partition's share is one transaction.
func (s *EventStore) InsertEvents(ctx context.Context, events []audit.Event) error {
	groups := map[int64][]*audit.Event{}
	for i := range events {
		ev := &events[i]
		switch {
		case ev.Tenant == "":
			return invalid("tenant", "event %d has no tenant", i)
		case ev.ID == "":
			return invalid("id", "event %d has no id", i)
		case ev.Action == "":
			return invalid("action", "event %d has no action", i)
		case ev.Time.Before(minEventTime) || ev.Time.After(maxEventTime):
			return invalid("time", "event %s has a time out of range: %s", ev.ID, ev.Time)
		}
		idx := s.index(ev.Time.UnixNano())
		groups[idx] = append(groups[idx], ev)
	}
	idxs := make([]int64, 0, len(groups))
	for idx := range groups {
		idxs = append(idxs, idx)
	}
	slices.Sort(idxs)
	for _, idx := range idxs {
		p, err := s.acquire(ctx, idx, true)
		if err != nil {
			return err
		}
		s.warmUp(ctx, p)
		err = p.insert(ctx, groups[idx])
		if err == nil {
			s.noteTenants(idx, groups[idx])
		}
		if err == nil && s.sealOnInsert {
			_, err = p.seal(ctx, 1)
		}
		s.release(p)
		s.inserted(idx)
		if err != nil {
			return err
		}
	}
	return nil
}

// warmUp makes p the most recently inserted partition, giving its writer
// the larger cache, and gives the partition it displaces from the warm set
// its ordinary cache back (in the background: its writer may be busy, with
// a seal for instance).
func (s *EventStore) warmUp(ctx context.Context, p *partition) {
	s.mu.Lock()
	if i := slices.Index(s.warm, p); i >= 0 {
		s.warm = slices.Delete(s.warm, i, i+1)
	}
	s.warm = slices.Insert(s.warm, 0, p)
	p.warm = true
	var cold *partition
	if len(s.warm) > warmPartitions {
		last := s.warm[len(s.warm)-1]
		s.warm = s.warm[:len(s.warm)-1]
		last.warm = false
		if !last.cooling {
			// One pending change per partition at most: it reads
			// the wanted size when it runs.
			last.cooling, cold = true, last
		}
	}
	s.mu.Unlock()
	if cold != nil {
		go s.applyCache(context.WithoutCancel(ctx), cold, true)
	}
	s.applyCache(ctx, p, false)
}

// applyCache sets p's writer cache to what its place in the warm set asks
// for now, so that changes applied out of order still end right; cooling
// says it is the partition's pending background change.
func (s *EventStore) applyCache(ctx context.Context, p *partition, cooling bool) {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	s.mu.Lock()
	if cooling {
		p.cooling = false // a change from here on starts another
	}
	want := p.warm
	s.mu.Unlock()
	if want == p.cacheWarm {
		return
	}
	kib := pageCacheKiB
	if want {
		kib = warmCacheKiB
	}
	if _, err := p.f.w.ExecContext(ctx, fmt.Sprintf("PRAGMA cache_size = -%d", kib)); err != nil {
		s.mu.Lock()
		closed := s.closed || s.open[p.idx] != p // closed meanwhile: nothing to change
		s.mu.Unlock()
		if !closed {
			s.log.Warn("set partition cache", slog.String("path", p.path), slog.Any("error", err))
		}
		return
	}
	p.cacheWarm = want
}

// insertRowsPerStatement is how many events one insert statement writes
// (insertColumns parameters each, well under SQLite's limit of 32,766).
const (
	insertRowsPerStatement = 256
	insertColumns          = 10
)

// insertStatement is the statement that inserts rows events.
func insertStatement(rows int) string {
	return `INSERT INTO events (t, ts, id, idh, act, ah, ip, sh, gh, body) VALUES ` + placeholders(rows, insertColumns)
}

// partKey is an event of a partition: its tenant's number and its id.
type partKey struct {
	t  int64
	id string
}

// storedIDs returns the events of the partition that have one of the id
// hashes; in a bucketed partition, among those in one of buckets (the
// buckets of the events probed: a repeat has the same time).
func (p *partition) storedIDs(ctx context.Context, tx *sql.Tx, idhs []any, buckets map[int64]bool) (map[partKey]bool, error) {
	q, args := `SELECT t, id FROM events INDEXED BY ev_id WHERE idh IN `+placeholders(1, len(idhs)), idhs
	if p.bucketNs > 0 {
		args = make([]any, 0, len(buckets)+len(idhs))
		for b := range buckets {
			args = append(args, b)
		}
		q = `SELECT t, id FROM events INDEXED BY ev_id WHERE ` + p.bucketExpr() + ` IN ` + placeholders(1, len(args)) +
			` AND idh IN ` + placeholders(1, len(idhs))
		args = append(args, idhs...)
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, translate(err, "look up stored events")
	}
	defer rows.Close()
	out := map[partKey]bool{}
	for rows.Next() {
		var k partKey
		if err := rows.Scan(&k.t, &k.id); err != nil {
			return nil, translate(err, "look up stored events")
		}
		out[k] = true
	}
	return out, translate(rows.Err(), "look up stored events")
}

func (p *partition) insert(ctx context.Context, evs []*audit.Event) (err error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.dmu.RLock()
	w := &writer{p: p, firstNew: len(p.names)}
	p.dmu.RUnlock()
	committed := false
	defer func() { w.done(committed) }()

	tx, err := p.f.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "begin insert")
	}
	defer func() { _ = tx.Rollback() }()
	// Rows go in chunks, each chunk one probe statement and one insert
	// statement: per-statement cgo and database/sql overhead costs more
	// than a row. A repeat is found through the id-hash index: one b-tree
	// probe per id, near the right edge for Vigil's time-ordered ids.
	// (Probing (t, ts) instead scanned every event of the tenant sharing
	// the timestamp — quadratic for clients that stamp events to the
	// second or share one time.)
	type cand struct {
		ev  *audit.Event
		t   int64
		idh int64
	}
	seen := make(map[partKey]bool, len(evs))
	var buf []byte
	rctx := rowContext(ctx)
	cands := make([]cand, 0, insertRowsPerStatement)
	probe := make([]any, 0, insertRowsPerStatement)
	buckets := map[int64]bool{}
	args := make([]any, 0, insertColumns*insertRowsPerStatement)
	for chunk := range slices.Chunk(evs, insertRowsPerStatement) {
		cands, probe = cands[:0], probe[:0]
		clear(buckets)
		for _, ev := range chunk {
			if err := ctx.Err(); err != nil { // per row, as rowContext asks
				return err
			}
			t := w.add(ev.Tenant)
			w.tenant(t)
			k := partKey{t, ev.ID}
			if seen[k] {
				continue
			}
			seen[k] = true
			idh := idKey(ev.Tenant, ev.ID)
			cands = append(cands, cand{ev, t, idh})
			probe = append(probe, idh)
			if p.bucketNs > 0 {
				buckets[(ev.Time.UnixNano()-p.start)/p.bucketNs] = true
			}
		}
		if len(cands) == 0 {
			continue
		}
		stored, err := p.storedIDs(rctx, tx, probe, buckets)
		if err != nil {
			return err
		}
		args = args[:0]
		rows := 0
		for _, c := range cands {
			if stored[partKey{c.t, c.ev.ID}] {
				continue
			}
			ev := c.ev
			start := len(buf)
			buf, err = encodeEvent(buf, ev, encodeOpts{omitKey: true, dict: w})
			if err != nil {
				return err
			}
			var ip any
			if b := ipKey(ev.Context.IP); b != nil {
				ip = b
			}
			args = append(args, c.t, ev.Time.UnixNano()-p.start, ev.ID, c.idh, w.add(ev.Action),
				key32(ev.Tenant, ev.Actor.ID), ip, key32(ev.Tenant, ev.Context.SessionID),
				key32(ev.Tenant, ev.Target.ID), buf[start:len(buf):len(buf)])
			rows++
		}
		if rows > 0 {
			if _, err := tx.ExecContext(rctx, insertStatement(rows), args...); err != nil {
				return translate(err, fmt.Sprintf("insert %d events", rows))
			}
		}
		buf = buf[:0]
	}
	if err := w.flush(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return translate(err, "commit insert")
	}
	committed = true
	return nil
}

// GetEvent returns one event of tenant; ENOTFOUND when there is none. It
// probes the partition a ULID/UUIDv7 id points at first, then the others
// newest first (one index probe each, one partition open at a time).
func (s *EventStore) GetEvent(ctx context.Context, tenant, id string) (*audit.Event, error) {
	if tenant == "" || id == "" {
		return nil, notFound("event", id)
	}
	idxs := s.partitionsNewestFirst(0, 0)
	if ms := idMillis(id); ms != 0 {
		hint := s.index(int64(ms) * int64(time.Millisecond))
		if i := slices.Index(idxs, hint); i > 0 {
			copy(idxs[1:i+1], idxs[:i])
			idxs[0] = hint
		}
	}
	idh := idKey(tenant, id)
	var found *audit.Event
	err := s.each(ctx, idxs, func(p *partition) (bool, error) {
		t, ok := p.id(tenant)
		if !ok {
			return false, nil
		}
		var ts, act int64
		var body []byte
		q, done, err := p.readConn(ctx)
		if err != nil {
			return false, err
		}
		defer done()
		stmt, args := `SELECT ts, act, body FROM events INDEXED BY ev_id WHERE idh = ? AND t = ? AND id = ?`, []any{idh, t, id}
		if p.bucketNs > 0 {
			cond, bs := p.bucketCond(0, p.period)
			stmt += " AND " + cond
			args = append(args, bs...)
		}
		err = q.QueryRowContext(ctx, stmt, args...).Scan(&ts, &act, &body)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		if err != nil {
			return false, translate(err, "get event "+id)
		}
		bs := bodies{q: q, path: p.f.path}
		if body, err = bs.get(ctx, body); err != nil {
			return false, fmt.Errorf("get event %s: %w", id, err)
		}
		ev := &audit.Event{}
		if err := p.decode(ev, tenant, id, ts, act, body); err != nil {
			return false, err
		}
		found = ev
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, notFound("event", id)
	}
	return found, nil
}

// decode rebuilds an event from its row.
func (p *partition) decode(ev *audit.Event, tenant, id string, ts, act int64, body []byte) error {
	if err := decodeEvent(body, ev, encodeOpts{omitKey: true, dict: dictAdapter{p}}); err != nil {
		return fmt.Errorf("decode event %s in %s: %w", id, p.f.path, err)
	}
	action, ok := p.name(uint64(act))
	if !ok {
		return fmt.Errorf("decode event %s in %s: unknown action id %d", id, p.f.path, act)
	}
	ev.ID, ev.Tenant, ev.Action = id, tenant, action
	ev.Time = time.Unix(0, p.start+ts).UTC()
	return nil
}

// Purge deletes tenant's events older than before and removes partition
// files that are left empty and wholly before the cutoff.
func (s *EventStore) Purge(ctx context.Context, tenant string, before time.Time) (int64, error) {
	if tenant == "" {
		return 0, invalid("tenant", "purge needs a tenant")
	}
	cut := before.UnixNano()
	var total int64
	for _, idx := range s.holding(s.partitionsNewestFirst(0, cut), tenant) {
		p, err := s.acquire(ctx, idx, false)
		if err != nil {
			return total, err
		}
		if p == nil {
			continue
		}
		n, err := s.purgePartition(ctx, p, tenant, cut)
		total += n
		if err != nil {
			return total, err
		}
	}
	if total > 0 {
		s.log.LogAttrs(ctx, slog.LevelInfo, "purged events", slog.String("tenant_id", tenant),
			slog.Int64("events", total), slog.Time("before", before))
	}
	return total, nil
}

// purgePartition purges one acquired partition and releases it, deleting
// its file when it is left empty and wholly before the cutoff.
func (s *EventStore) purgePartition(ctx context.Context, p *partition, tenant string, cut int64) (int64, error) {
	t, ok := p.id(tenant)
	if !ok {
		s.release(p)
		return 0, nil
	}
	n, empty, err := p.purge(ctx, t, cut-p.start)
	if err != nil || !empty || p.start+int64(s.period) > cut {
		s.release(p)
		return n, err
	}
	return n, s.drop(p)
}

// purgeChunk is how many rows one purge statement deletes: the partition's
// writer lock is released between chunks, so a late event for the same day
// waits for one chunk, not for the whole purge.
const purgeChunk = 5000

func (p *partition) purge(ctx context.Context, t, cut int64) (n int64, empty bool, err error) {
	for {
		m, err := p.purgeSome(ctx, t, cut)
		n += m
		if err != nil {
			return n, false, err
		}
		if m < purgeChunk {
			break
		}
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.hasBlocks() {
		if err := p.pruneAfterPurge(ctx, t, cut); err != nil {
			return n, false, err
		}
	}
	var any int
	if err := p.f.w.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM events LIMIT 1)`).Scan(&any); err != nil {
		return n, false, translate(err, "purge "+p.f.path)
	}
	return n, any == 0, nil
}

func (p *partition) purgeSome(ctx context.Context, t, cut int64) (int64, error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	res, err := p.f.w.ExecContext(ctx, `DELETE FROM events WHERE rid IN
		(SELECT rid FROM events INDEXED BY ev_time WHERE t = ? AND ts < ? LIMIT ?)`, t, cut, purgeChunk)
	if err != nil {
		return 0, translate(err, "purge "+p.f.path)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// CountBefore counts tenant's events dated before the cutoff (a retention
// dry run).
func (s *EventStore) CountBefore(ctx context.Context, tenant string, before time.Time) (int64, error) {
	if tenant == "" {
		return 0, invalid("tenant", "a retention count needs a tenant")
	}
	cut := before.UnixNano()
	var total int64
	for _, idx := range s.holding(s.partitionsNewestFirst(0, cut), tenant) {
		p, err := s.acquire(ctx, idx, false)
		if err != nil {
			return total, err
		}
		if p == nil {
			continue
		}
		var n int64
		if t, ok := p.id(tenant); ok {
			err = p.f.r.QueryRowContext(ctx, `SELECT count(*) FROM events INDEXED BY ev_time WHERE t = ? AND ts < ?`,
				t, cut-p.start).Scan(&n)
		}
		s.release(p)
		if err != nil {
			return total, translate(err, "count events before a cutoff")
		}
		total += n
	}
	return total, nil
}

// drop closes and deletes an empty partition file, taking over the
// caller's reference. A partition someone else is using is left for a
// later purge. The store's lock is held throughout, so no acquire can
// reopen the file while it is being removed.
func (s *EventStore) drop(p *partition) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.refs > 1 || s.open[p.idx] != p {
		p.refs--
		return nil
	}
	delete(s.open, p.idx)
	delete(s.tenantsIn, p.idx)
	if i, found := slices.BinarySearch(s.known, p.idx); found {
		s.known = slices.Delete(s.known, i, i+1)
	}
	err := p.f.close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if rerr := os.Remove(p.path + suffix); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	if err != nil {
		return fmt.Errorf("sqlite: drop partition %s: %w", p.path, err)
	}
	s.log.Info("dropped empty partition", slog.String("path", p.path))
	return nil
}

// Ping checks the partitions that are open (at most the open bound): a
// check that opened every file would cost as much as the history is long.
func (s *EventStore) Ping(ctx context.Context) error {
	s.mu.Lock()
	var ps []*partition
	for _, p := range s.open {
		if p.done {
			p.refs++
			ps = append(ps, p)
		}
	}
	s.mu.Unlock()
	var err error
	for _, p := range ps {
		if err == nil {
			if perr := p.f.r.PingContext(ctx); perr != nil {
				err = translate(perr, "ping "+p.path)
			}
		}
		s.release(p)
	}
	return err
}

// DiskBytes returns the bytes of every partition file, WAL included.
func (s *EventStore) DiskBytes() (int64, error) { return dirBytes(s.dir) }

// Partitions returns how many partition files exist.
func (s *EventStore) Partitions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.known)
}

// OpenPartitions returns how many partition files are open now: at most
// Options.MaxOpenPartitions, more only while that many are in use at once.
func (s *EventStore) OpenPartitions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// migrateAll brings every partition to the current schema, one open at a
// time (opening a partition migrates it).
func (s *EventStore) migrateAll(ctx context.Context) error {
	return s.each(ctx, s.partitionsNewestFirst(0, 0), func(*partition) (bool, error) { return false, nil })
}

func (s *EventStore) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var err error
	for _, p := range s.open {
		if p.done {
			err = errors.Join(err, p.f.close())
		}
	}
	s.open = map[int64]*partition{}
	return err
}

var _ audit.EventRewriter = (*EventStore)(nil)

// ReplaceEvents overwrites stored events (erasure): each is found by
// tenant, id and time, and its body and indexed columns are rewritten.
// Events not stored are skipped. Each partition's share is one
// transaction.
func (s *EventStore) ReplaceEvents(ctx context.Context, events []audit.Event) (int, error) {
	groups := map[int64][]*audit.Event{}
	for i := range events {
		ev := &events[i]
		if ev.Tenant == "" || ev.ID == "" || ev.Action == "" {
			return 0, invalid("id", "a replaced event needs a tenant, an id and an action")
		}
		idx := s.index(ev.Time.UnixNano())
		groups[idx] = append(groups[idx], ev)
	}
	total := 0
	for idx, evs := range groups {
		p, err := s.acquire(ctx, idx, false)
		if err != nil {
			return total, err
		}
		if p == nil {
			continue
		}
		n, err := p.replace(ctx, evs)
		s.release(p)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (p *partition) replace(ctx context.Context, evs []*audit.Event) (n int, err error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.dmu.RLock()
	w := &writer{p: p, firstNew: len(p.names)}
	p.dmu.RUnlock()
	committed := false
	defer func() { w.done(committed) }()
	tx, err := p.f.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, translate(err, "begin replace")
	}
	defer func() { _ = tx.Rollback() }()
	var buf []byte
	for _, ev := range evs {
		t, ok := p.id(ev.Tenant)
		if !ok {
			continue
		}
		buf, err = encodeEvent(buf[:0], ev, encodeOpts{omitKey: true, dict: w})
		if err != nil {
			return 0, err
		}
		var ip any
		if b := ipKey(ev.Context.IP); b != nil {
			ip = b
		}
		var rid int64
		var old []byte
		ts := ev.Time.UnixNano() - p.start
		stmt, args := `SELECT rid, body FROM events INDEXED BY ev_id WHERE idh = ? AND t = ? AND id = ? AND ts = ?`, []any{idKey(ev.Tenant, ev.ID), t, ev.ID, ts}
		if p.bucketNs > 0 {
			stmt += " AND " + p.bucketExpr() + " = ?"
			args = append(args, ts/p.bucketNs)
		}
		err = tx.QueryRowContext(ctx, stmt, args...).Scan(&rid, &old)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return 0, translate(err, "replace event "+ev.ID)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE events SET act = ?, ah = ?, ip = ?, sh = ?, gh = ?, body = ? WHERE rid = ?`,
			w.add(ev.Action), key32(ev.Tenant, ev.Actor.ID), ip, key32(ev.Tenant, ev.Context.SessionID),
			key32(ev.Tenant, ev.Target.ID), buf, rid); err != nil {
			return 0, translate(err, "replace event "+ev.ID)
		}
		n++
		// The replaced body must not live on in its sealed block.
		if bid, _, ref, _ := parseRef(old); ref {
			if err := pruneBlock(ctx, tx, bid); err != nil {
				return 0, err
			}
		}
	}
	if err := w.flush(ctx, tx); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, translate(err, "commit replace")
	}
	committed = true
	return n, nil
}
