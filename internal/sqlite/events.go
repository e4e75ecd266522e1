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
	dir    string
	period time.Duration
	log    *slog.Logger

	mu     sync.RWMutex
	parts  map[int64]*partition
	closed bool
}

var (
	_ audit.EventStore   = (*EventStore)(nil)
	_ audit.Retention    = (*EventStore)(nil)
	_ audit.Pinger       = (*EventStore)(nil)
	_ audit.SizeReporter = (*EventStore)(nil)
)

// partition is one events file and its in-memory dictionary cache.
type partition struct {
	idx   int64 // period number since the Unix epoch
	start int64 // Unix nanoseconds of the period start
	f     *file

	wmu sync.Mutex // one InsertEvents/Purge transaction at a time

	dmu     sync.RWMutex
	ids     map[string]int64
	names   []string // names[id]; id 0 unused
	tenants map[int64]bool
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

func openEventStore(ctx context.Context, opts Options, log *slog.Logger) (*EventStore, error) {
	s := &EventStore{dir: filepath.Join(opts.Dir, "events"), period: opts.PartitionPeriod,
		log: log.With("backend", "sqlite-events"), parts: map[int64]*partition{}}
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
			return nil, errors.Join(
				&audit.Error{Code: audit.EINVALID, Field: "partition_period",
					Message: fmt.Sprintf("sqlite: partition %s was made with another partition period than %s", name, s.period)},
				s.close())
		}
		start, err := time.Parse("2006010215", strings.TrimSuffix(name, suffix))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("sqlite: partition file name %s: %w", name, err), s.close())
		}
		if _, err := s.open(ctx, s.index(start.UnixNano())); err != nil {
			return nil, errors.Join(err, s.close())
		}
	}
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

// partition returns the partition of period idx, opening or, when create is
// set, creating its file; nil when it does not exist and create is false.
func (s *EventStore) partition(ctx context.Context, idx int64, create bool) (*partition, error) {
	s.mu.RLock()
	p, closed := s.parts[idx], s.closed
	s.mu.RUnlock()
	if closed {
		return nil, errors.New("sqlite: event store closed")
	}
	if p != nil || !create {
		return p, nil
	}
	return s.open(ctx, idx)
}

func (s *EventStore) open(ctx context.Context, idx int64) (*partition, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.parts[idx]; p != nil {
		return p, nil
	}
	start := idx * int64(s.period)
	name := fmt.Sprintf("%s-%dh.db", time.Unix(0, start).UTC().Format("2006010215"), int(s.period/time.Hour))
	f, err := openFile(ctx, filepath.Join(s.dir, name), "events", 4)
	if err != nil {
		return nil, err
	}
	p := &partition{idx: idx, start: start, f: f, ids: map[string]int64{}, names: []string{""}, tenants: map[int64]bool{}}
	if err := p.load(ctx); err != nil {
		return nil, errors.Join(err, f.close())
	}
	s.parts[idx] = p
	return p, nil
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

// partitionsNewestFirst returns the open partitions overlapping [from, to)
// (Unix ns; 0 means unbounded), newest first.
func (s *EventStore) partitionsNewestFirst(from, to int64) []*partition {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*partition, 0, len(s.parts))
	for _, p := range s.parts {
		end := p.start + int64(s.period)
		if (to != 0 && p.start >= to) || (from != 0 && end <= from) {
			continue
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *partition) int { return int(b.idx - a.idx) })
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
// start at 0 (= names[1]).
func (w *writer) lookup(s string) (uint64, bool) {
	return uint64(w.add(s) - 1), true
}

func (w *writer) name(id uint64) (string, bool) { return w.p.name(id + 1) }

func (w *writer) add(s string) int64 {
	p := w.p
	p.dmu.Lock()
	defer p.dmu.Unlock()
	if id, ok := p.ids[s]; ok {
		return id
	}
	id := int64(len(p.names))
	p.names = append(p.names, s)
	p.ids[s] = id
	return id
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
		p, err := s.partition(ctx, idx, true)
		if err != nil {
			return err
		}
		if err := p.insert(ctx, groups[idx]); err != nil {
			return err
		}
	}
	return nil
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
	// A repeat is found through the id-hash index: one b-tree probe, near
	// the right edge for Vigil's time-ordered ids. (Probing (t, ts) instead
	// scanned every event of the tenant sharing the timestamp — quadratic
	// for clients that stamp events to the second or share one time.)
	exists, err := tx.PrepareContext(ctx, `SELECT count(*) FROM events INDEXED BY ev_id WHERE idh = ? AND t = ? AND id = ?`)
	if err != nil {
		return translate(err, "prepare insert")
	}
	defer exists.Close()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO events (t, ts, id, idh, act, ah, ip, sh, gh, body)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return translate(err, "prepare insert")
	}
	defer ins.Close()

	type key struct{ tenant, id string }
	seen := make(map[key]bool, len(evs))
	var buf []byte
	for _, ev := range evs {
		k := key{ev.Tenant, ev.ID}
		if seen[k] {
			continue
		}
		seen[k] = true
		t := w.add(ev.Tenant)
		w.tenant(t)
		ts := ev.Time.UnixNano() - p.start
		var n int
		idh := idKey(ev.Tenant, ev.ID)
		if err := exists.QueryRowContext(ctx, idh, t, ev.ID).Scan(&n); err != nil {
			return translate(err, "check event "+ev.ID)
		}
		if n > 0 {
			continue
		}
		buf, err = encodeEvent(buf[:0], ev, encodeOpts{omitKey: true, dict: w})
		if err != nil {
			return err
		}
		var ip any
		if b := ipKey(ev.Context.IP); b != nil {
			ip = b
		}
		if _, err := ins.ExecContext(ctx, t, ts, ev.ID, idh, w.add(ev.Action),
			key32(ev.Tenant, ev.Actor.ID), ip, key32(ev.Tenant, ev.Context.SessionID),
			key32(ev.Tenant, ev.Target.ID), buf); err != nil {
			return translate(err, "insert event "+ev.ID)
		}
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
// newest first (one index probe each).
func (s *EventStore) GetEvent(ctx context.Context, tenant, id string) (*audit.Event, error) {
	if tenant == "" || id == "" {
		return nil, notFound("event", id)
	}
	parts := s.partitionsNewestFirst(0, 0)
	if ms := idMillis(id); ms != 0 {
		hint := s.index(int64(ms) * int64(time.Millisecond))
		slices.SortStableFunc(parts, func(a, b *partition) int {
			switch {
			case a.idx == hint && b.idx != hint:
				return -1
			case b.idx == hint && a.idx != hint:
				return 1
			}
			return 0
		})
	}
	idh := idKey(tenant, id)
	for _, p := range parts {
		t, ok := p.id(tenant)
		if !ok {
			continue
		}
		var ts, act int64
		var body []byte
		err := p.f.r.QueryRowContext(ctx, `SELECT ts, act, body FROM events INDEXED BY ev_id WHERE idh = ? AND t = ? AND id = ?`,
			idh, t, id).Scan(&ts, &act, &body)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, translate(err, "get event "+id)
		}
		ev := &audit.Event{}
		if err := p.decode(ev, tenant, id, ts, act, body); err != nil {
			return nil, err
		}
		return ev, nil
	}
	return nil, notFound("event", id)
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
	for _, p := range s.partitionsNewestFirst(0, cut) {
		t, ok := p.id(tenant)
		if !ok {
			continue
		}
		n, empty, err := p.purge(ctx, t, cut-p.start)
		total += n
		if err != nil {
			return total, err
		}
		if empty && p.start+int64(s.period) <= cut {
			if err := s.drop(p); err != nil {
				return total, err
			}
		}
	}
	if total > 0 {
		s.log.LogAttrs(ctx, slog.LevelInfo, "purged events", slog.String("tenant_id", tenant),
			slog.Int64("events", total), slog.Time("before", before))
	}
	return total, nil
}

func (p *partition) purge(ctx context.Context, t, cut int64) (n int64, empty bool, err error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	res, err := p.f.w.ExecContext(ctx, `DELETE FROM events INDEXED BY ev_time WHERE t = ? AND ts < ?`, t, cut)
	if err != nil {
		return 0, false, translate(err, "purge "+p.f.path)
	}
	n, _ = res.RowsAffected()
	var any int
	if err := p.f.w.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM events LIMIT 1)`).Scan(&any); err != nil {
		return n, false, translate(err, "purge "+p.f.path)
	}
	return n, any == 0, nil
}

// drop closes and deletes an empty partition file.
func (s *EventStore) drop(p *partition) error {
	s.mu.Lock()
	delete(s.parts, p.idx)
	s.mu.Unlock()
	p.wmu.Lock()
	defer p.wmu.Unlock()
	err := p.f.close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if rerr := os.Remove(p.f.path + suffix); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	if err != nil {
		return fmt.Errorf("sqlite: drop partition %s: %w", p.f.path, err)
	}
	s.log.Info("dropped empty partition", slog.String("path", p.f.path))
	return nil
}

// Ping checks every open partition.
func (s *EventStore) Ping(ctx context.Context) error {
	for _, p := range s.partitionsNewestFirst(0, 0) {
		if err := p.f.r.PingContext(ctx); err != nil {
			return translate(err, "ping "+p.f.path)
		}
	}
	return nil
}

// DiskBytes returns the bytes of every partition file, WAL included.
func (s *EventStore) DiskBytes() (int64, error) { return dirBytes(s.dir) }

// Partitions returns how many partition files are open.
func (s *EventStore) Partitions() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.parts)
}

func (s *EventStore) migrateAll(ctx context.Context) error {
	for _, p := range s.partitionsNewestFirst(0, 0) {
		if err := migrate(ctx, p.f.w, "events"); err != nil {
			return fmt.Errorf("migrate %s: %w", p.f.path, err)
		}
	}
	return nil
}

func (s *EventStore) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var err error
	for _, p := range s.parts {
		err = errors.Join(err, p.f.close())
	}
	s.parts = map[int64]*partition{}
	return err
}
