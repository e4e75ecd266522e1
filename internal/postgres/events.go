package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

// Events live in the table events, declaratively partitioned by range of
// time_ns, one partition per UTC day named events_YYYYMMDD (migration
// 0010). Reads never name the parent: they walk the day partitions newest
// first and query each BY NAME, bounded, stopping when they have enough, so
// that no search locks or sorts every partition at once. The table
// event_ids holds (tenant, id) → time_ns across partitions: it makes
// inserts idempotent on (tenant, id) and tells GetEvent which partition to
// read.

var (
	_ audit.EventStore       = (*Store)(nil)
	_ audit.Retention        = (*Store)(nil)
	_ audit.RetentionPlanner = (*Store)(nil)
	_ audit.EventRewriter    = (*Store)(nil)
)

// dayNanos is the width of one events partition.
const dayNanos = int64(24 * time.Hour)

// The event times a store accepts (as sqlite's): UnixNano must not
// overflow and a partition's name must have a four-digit year.
var (
	minEventTime = time.Unix(0, 0).Add(-200 * 365 * 24 * time.Hour)
	maxEventTime = time.Date(2260, 1, 1, 0, 0, 0, 0, time.UTC)
)

// dayOf is the day number (since the Unix epoch, floor division) of a Unix
// nanosecond time.
func dayOf(ns int64) int64 {
	q := ns / dayNanos
	if ns%dayNanos < 0 {
		q--
	}
	return q
}

// partName is the table of day's events.
func partName(day int64) string {
	return "events_" + time.Unix(0, day*dayNanos).UTC().Format("20060102")
}

// parsePartName is the inverse of partName; ok is false for other names.
func parsePartName(name string) (int64, bool) {
	digits, ok := strings.CutPrefix(name, "events_")
	if !ok || len(digits) != 8 {
		return 0, false
	}
	t, err := time.Parse("20060102", digits)
	if err != nil {
		return 0, false
	}
	return dayOf(t.UnixNano()), true
}

// partitions tracks the event partitions (days) that exist, ascending. It
// is loaded from the catalog at open and by every read (another node may
// have created a partition since), and added to as InsertEvents creates
// partitions, so an insert into a known day costs no DDL.
type partitions struct {
	mu     sync.Mutex
	days   []int64
	loaded time.Time // when days was last read from the catalog
	// added holds the days this store created, with when: a catalog read
	// that began before a creation may not show it, and must not drop it.
	added map[int64]time.Time
}

// stale reports whether the list was read from the catalog more than ttl
// ago (or never).
func (p *partitions) stale(now time.Time, ttl time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.loaded.IsZero() || now.Sub(p.loaded) >= ttl
}

func (p *partitions) has(day int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, found := slices.BinarySearch(p.days, day)
	return found
}

func (p *partitions) add(day int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.added == nil {
		p.added = map[int64]time.Time{}
	}
	p.added[day] = time.Now()
	if i, found := slices.BinarySearch(p.days, day); !found {
		p.days = slices.Insert(p.days, i, day)
	}
}

func (p *partitions) remove(day int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.added, day)
	if i, found := slices.BinarySearch(p.days, day); found {
		p.days = slices.Delete(p.days, i, i+1)
	}
}

// set replaces the list with a catalog read that began at at, keeping the
// days this store created since (the read may have missed them).
func (p *partitions) set(days []int64, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for day, when := range p.added {
		if !when.Before(at) {
			days = append(days, day)
		} else {
			delete(p.added, day) // the catalog has it, or it was dropped since
		}
	}
	slices.Sort(days)
	p.days, p.loaded = slices.Compact(days), at
}

// newestFirst returns the days overlapping [from, to) (Unix ns; 0 means
// unbounded), newest first.
func (p *partitions) newestFirst(from, to int64) []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]int64, 0, len(p.days))
	for i := len(p.days) - 1; i >= 0; i-- {
		day := p.days[i]
		start, end := day*dayNanos, (day+1)*dayNanos
		if (to != 0 && start >= to) || (from != 0 && end <= from) {
			continue
		}
		out = append(out, day)
	}
	return out
}

// count is the number of known partitions.
func (p *partitions) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.days)
}

// maxPartitionList bounds the catalog read of the partition list (a
// century of days).
const maxPartitionList = 40000

// openEvents loads the event partitions from the catalog and creates
// today's and tomorrow's ahead, so that the day's first inserts need no
// DDL. A role without the right to create tables is logged, not fatal:
// inserts then fail on their own.
func (s *Store) openEvents(ctx context.Context) error {
	s.parts = &partitions{}
	if err := s.loadPartitions(ctx); err != nil {
		return err
	}
	today := dayOf(s.opts.Now().UnixNano())
	for _, day := range []int64{today, today + 1} {
		if err := s.ensurePartition(ctx, day); err != nil {
			if sqlState(err) == "42501" { // insufficient_privilege
				s.log.Warn("cannot create the events partition ahead", "partition", partName(day), "error", err)
				continue
			}
			return err
		}
	}
	return nil
}

// loadPartitions reads the partitions of events from the catalog.
func (s *Store) loadPartitions(ctx context.Context) error {
	at := time.Now()
	rows, err := s.pool.Query(ctx, `SELECT c.relname::text FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = to_regclass($1)
		LIMIT $2`, s.schema+".events", maxPartitionList)
	if err != nil {
		return translate(err, "list event partitions")
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return translate(err, "list event partitions")
	}
	days := make([]int64, 0, len(names))
	for _, n := range names {
		if day, ok := parsePartName(n); ok {
			days = append(days, day)
		}
	}
	s.parts.set(days, at)
	return nil
}

// partitionLockTimeout bounds the wait for the lock on events that
// creating or dropping a partition takes.
const partitionLockTimeout = "10s"

// ensurePartition creates day's partition unless it is known to exist. A
// concurrent creator (another node, another call) is tolerated.
func (s *Store) ensurePartition(ctx context.Context, day int64) error {
	if s.parts.has(day) {
		return nil
	}
	name := partName(day)
	// DDL takes no parameters: the name and bounds are made here from an
	// integer, never from input text.
	ddl := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF events FOR VALUES FROM (%d) TO (%d)`,
		pgx.Identifier{name}.Sanitize(), day*dayNanos, (day+1)*dayNanos)
	err := s.tryTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+partitionLockTimeout+`'`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, ddl)
		return err
	})
	if code := sqlState(err); code == "42P07" || code == "23505" {
		// A concurrent creator won; the partition exists.
		err = nil
	}
	if err != nil {
		return translate(err, "create events partition "+name)
	}
	s.parts.add(day)
	s.log.Debug("events partition ready", "partition", name)
	return nil
}

// partitionListTTL is how long a read uses the partition list before it
// reads the catalog again. This store adds the partitions it creates at
// once, and a partition dropped meanwhile reads as empty (every read
// tolerates undefined_table), so only a partition another process created
// can be missed, for at most this long.
const partitionListTTL = time.Second

// eventParts returns the days overlapping [from, to) newest first, from a
// partition list at most partitionListTTL old.
func (s *Store) eventParts(ctx context.Context, from, to int64) ([]int64, error) {
	if s.parts.stale(time.Now(), partitionListTTL) {
		if err := s.loadPartitions(ctx); err != nil {
			return nil, err
		}
	}
	return s.parts.newestFirst(from, to), nil
}

// Partitions returns how many event partitions (days) the store knows.
func (s *Store) Partitions() int { return s.parts.count() }

// clampNanos is t in Unix nanoseconds, within the accepted event times.
func clampNanos(t time.Time) int64 {
	switch {
	case t.Before(minEventTime):
		return minEventTime.UnixNano()
	case t.After(maxEventTime):
		return maxEventTime.UnixNano()
	}
	return t.UnixNano()
}

// optBytes is a client string for a bytea column: NULL when empty.
func optBytes(s string) any {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// eventIP is the inet value of an event's address: unmapped, without a
// zone, NULL when absent.
func eventIP(a netip.Addr) any {
	if !a.IsValid() {
		return nil
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen())
}

// safeText reports whether s can be a text parameter: PostgreSQL text holds
// valid UTF-8 without NUL.
func safeText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// eventColumns are the columns InsertEvents copies, in eventRow's order.
var eventColumns = []string{"tenant", "id", "time_ns", "action", "outcome", "actor_id", "session_id", "target_id", "ip", "body"}

// eventRow is ev as the values of eventColumns.
func eventRow(ev *audit.Event) ([]any, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, invalid("event", "event %s cannot be encoded: %v", ev.ID, err)
	}
	return []any{ev.Tenant, ev.ID, ev.Time.UnixNano(), ev.Action, string(ev.Outcome),
		optBytes(ev.Actor.ID), optBytes(ev.Context.SessionID), optBytes(ev.Target.ID),
		eventIP(ev.Context.IP), body}, nil
}

// checkEvent is InsertEvents' validation of the i-th event.
func checkEvent(i int, ev *audit.Event) error {
	switch {
	case ev.Tenant == "":
		return invalid("tenant", "event %d has no tenant", i)
	case ev.ID == "":
		return invalid("id", "event %d has no id", i)
	case ev.Action == "":
		return invalid("action", "event %d has no action", i)
	case !safeText(ev.Tenant) || !safeText(ev.ID) || !safeText(ev.Action) || !safeText(string(ev.Outcome)):
		return invalid("id", "event %d has a tenant, id, action or outcome that is not valid UTF-8 text", i)
	case ev.Time.Before(minEventTime) || ev.Time.After(maxEventTime):
		return invalid("time", "event %s has a time out of range: %s", ev.ID, ev.Time)
	}
	return nil
}

type eventKey struct{ tenant, id string }

// InsertEvents stores events atomically: in one transaction it claims the
// batch's (tenant, id) pairs in event_ids (one statement) and copies only
// the events whose pair was new into their day partitions. A repeated event
// — within the batch (the first wins) or already stored, whatever its time —
// is skipped, never updated. Missing day partitions are created first.
func (s *Store) InsertEvents(ctx context.Context, events []audit.Event) error {
	batch := make([]*audit.Event, 0, len(events))
	seen := make(map[eventKey]bool, len(events))
	days := map[int64]bool{}
	for i := range events {
		ev := &events[i]
		if err := checkEvent(i, ev); err != nil {
			return err
		}
		k := eventKey{ev.Tenant, ev.ID}
		if seen[k] {
			continue
		}
		seen[k] = true
		batch = append(batch, ev)
		days[dayOf(ev.Time.UnixNano())] = true
	}
	if len(batch) == 0 {
		return nil
	}
	rows := make([][]any, len(batch))
	for i, ev := range batch {
		r, err := eventRow(ev)
		if err != nil {
			return err
		}
		rows[i] = r
	}
	// Claim ids in (tenant, id) order so that concurrent batches sharing
	// ids lock them in the same order.
	order := make([]int, len(batch))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(strings.Compare(batch[a].Tenant, batch[b].Tenant), strings.Compare(batch[a].ID, batch[b].ID))
	})
	tenants, ids, times := make([]string, len(batch)), make([]string, len(batch)), make([]int64, len(batch))
	for j, i := range order {
		tenants[j], ids[j], times[j] = batch[i].Tenant, batch[i].ID, batch[i].Time.UnixNano()
	}
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		for day := range days {
			if err := s.ensurePartition(ctx, day); err != nil {
				return err
			}
		}
		err = s.inTx(ctx, "insert events", func(tx pgx.Tx) error {
			return insertNew(ctx, tx, batch, rows, tenants, ids, times)
		})
		if sqlState(err) != "23514" {
			break
		}
		// No partition for a row: a purge dropped one this store still
		// knew. Forget the days and create them again.
		for day := range days {
			s.parts.remove(day)
		}
	}
	return err
}

// insertNew claims the ids and copies the events whose ids were new.
func insertNew(ctx context.Context, tx pgx.Tx, batch []*audit.Event, rows [][]any, tenants, ids []string, times []int64) error {
	claimed, err := tx.Query(ctx, `INSERT INTO event_ids (tenant, id, time_ns)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
		ON CONFLICT DO NOTHING RETURNING tenant, id`, tenants, ids, times)
	if err != nil {
		return err
	}
	fresh := make(map[eventKey]bool, len(batch))
	var k eventKey
	_, err = pgx.ForEachRow(claimed, []any{&k.tenant, &k.id}, func() error {
		fresh[k] = true
		return nil
	})
	if err != nil {
		return err
	}
	if len(fresh) == 0 {
		return nil
	}
	out := make([][]any, 0, len(fresh))
	for i, ev := range batch {
		if fresh[eventKey{ev.Tenant, ev.ID}] {
			out = append(out, rows[i])
		}
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumns, pgx.CopyFromRows(out))
	return err
}

// eventDoc decodes a body keeping its metadata as raw JSON (the shallower
// field shadows Event.Metadata).
type eventDoc struct {
	audit.Event
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// decodeBody rebuilds an event from its body and time column into ev,
// which it resets first. With raw set, metadata is left undecoded in *raw
// (nil when the event has none).
func decodeBody(body []byte, ns int64, ev *audit.Event, raw *[]byte) error {
	if raw != nil {
		var d eventDoc
		if err := json.Unmarshal(body, &d); err != nil {
			return err
		}
		*ev = d.Event
		ev.Metadata = nil
		*raw = nil
		if len(d.Metadata) > 0 && string(d.Metadata) != "null" {
			*raw = d.Metadata
		}
	} else {
		*ev = audit.Event{}
		if err := json.Unmarshal(body, ev); err != nil {
			return err
		}
	}
	ev.Time = time.Unix(0, ns).UTC()
	if !ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = ev.ReceivedAt.UTC()
	}
	return nil
}

// GetEvent returns one event of tenant; ENOTFOUND when there is none. It
// reads the event's time from event_ids, then the one partition that
// holds it.
func (s *Store) GetEvent(ctx context.Context, tenant, id string) (*audit.Event, error) {
	if tenant == "" || id == "" || !safeText(tenant) || !safeText(id) {
		return nil, notFound("event", id)
	}
	var ns int64
	err := s.pool.QueryRow(ctx, `SELECT time_ns FROM event_ids WHERE tenant = $1 AND id = $2`, tenant, id).Scan(&ns)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("event", id)
	}
	if err != nil {
		return nil, translate(err, "get event "+id)
	}
	part := pgx.Identifier{partName(dayOf(ns))}.Sanitize()
	var body []byte
	err = s.pool.QueryRow(ctx, `SELECT body FROM `+part+` WHERE tenant = $1 AND id = $2 AND time_ns = $3`,
		tenant, id, ns).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) || sqlState(err) == "42P01" {
		// Purged (or its partition dropped) since the id was read.
		return nil, notFound("event", id)
	}
	if err != nil {
		return nil, translate(err, "get event "+id)
	}
	ev := &audit.Event{}
	if err := decodeBody(body, ns, ev, nil); err != nil {
		return nil, fmt.Errorf("decode event %s: %w", id, err)
	}
	return ev, nil
}

// eventPurgeChunk is how many rows one purge statement deletes, so that no
// purge holds one long transaction over a large partition.
const eventPurgeChunk = 5000

// Purge deletes tenant's events dated before the cutoff, and their
// event_ids rows, partition by partition in chunks; a partition wholly
// before the cutoff that is left empty is dropped (a failed drop, on
// permissions or a lock that does not come, is logged and skipped).
func (s *Store) Purge(ctx context.Context, tenant string, before time.Time) (int64, error) {
	if tenant == "" {
		return 0, invalid("tenant", "purge needs a tenant")
	}
	cut := clampNanos(before)
	days, err := s.eventParts(ctx, 0, cut)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, day := range days {
		n, err := s.purgePartition(ctx, day, tenant, cut)
		total += n
		if err != nil {
			return total, err
		}
		if (day+1)*dayNanos <= cut {
			s.dropIfEmpty(ctx, day)
		}
	}
	if total > 0 {
		s.log.LogAttrs(ctx, slog.LevelInfo, "purged events", slog.String("tenant_id", tenant),
			slog.Int64("events", total), slog.Time("before", before))
	}
	return total, nil
}

// purgePartition deletes tenant's events before cut from one partition.
func (s *Store) purgePartition(ctx context.Context, day int64, tenant string, cut int64) (int64, error) {
	part := pgx.Identifier{partName(day)}.Sanitize()
	stmt := `WITH d AS (
			DELETE FROM ` + part + ` WHERE ctid IN (
				SELECT ctid FROM ` + part + ` WHERE tenant = $1 AND time_ns < $2 LIMIT $3)
			RETURNING id),
		e AS (DELETE FROM event_ids WHERE tenant = $1 AND id IN (SELECT id FROM d))
		SELECT count(*) FROM d`
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var n int64
		err := s.inTx(ctx, "purge "+partName(day), func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, stmt, tenant, cut, eventPurgeChunk).Scan(&n)
		})
		if sqlState(err) == "42P01" {
			return total, nil // dropped meanwhile
		}
		if err != nil {
			return total, err
		}
		total += n
		if n < eventPurgeChunk {
			return total, nil
		}
	}
}

// dropIfEmpty drops day's partition when it holds no row. It locks events
// and then the partition (the order inserts take them in) and checks again
// under the lock, so an insert that was writing to the partition either
// committed first (and the partition stays) or finds it gone and creates
// it anew.
func (s *Store) dropIfEmpty(ctx context.Context, day int64) {
	name := partName(day)
	part := pgx.Identifier{name}.Sanitize()
	var empty bool
	if err := s.pool.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM `+part+` LIMIT 1)`).Scan(&empty); err != nil || !empty {
		return
	}
	dropped := false
	err := s.tryTx(ctx, func(tx pgx.Tx) error {
		dropped = false
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+partitionLockTimeout+`'`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `LOCK TABLE events, `+part+` IN ACCESS EXCLUSIVE MODE`); err != nil {
			return err
		}
		var empty bool
		if err := tx.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM `+part+` LIMIT 1)`).Scan(&empty); err != nil || !empty {
			return err
		}
		if _, err := tx.Exec(ctx, `DROP TABLE `+part); err != nil {
			return err
		}
		dropped = true
		return nil
	})
	if err != nil {
		if sqlState(err) != "42P01" {
			s.log.Warn("cannot drop the emptied events partition; it stays", "partition", name, "error", err)
		}
		return
	}
	if dropped {
		s.parts.remove(day)
		s.log.Info("dropped empty events partition", "partition", name)
	}
}

// CountBefore counts tenant's events dated before the cutoff (a retention
// dry run), partition by partition.
func (s *Store) CountBefore(ctx context.Context, tenant string, before time.Time) (int64, error) {
	if tenant == "" {
		return 0, invalid("tenant", "a retention count needs a tenant")
	}
	cut := clampNanos(before)
	days, err := s.eventParts(ctx, 0, cut)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, day := range days {
		var n int64
		err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{partName(day)}.Sanitize()+
			` WHERE tenant = $1 AND time_ns < $2`, tenant, cut).Scan(&n)
		if sqlState(err) == "42P01" {
			continue
		}
		if err != nil {
			return total, translate(err, "count events before a cutoff")
		}
		total += n
	}
	return total, nil
}

// ReplaceEvents overwrites stored events (erasure): each is found by
// tenant, id and time in its day's partition, and its body and searched
// columns are rewritten. Events not stored are skipped. The whole call is
// one transaction.
func (s *Store) ReplaceEvents(ctx context.Context, events []audit.Event) (int, error) {
	type upd struct {
		part string
		row  []any
	}
	var upds []upd
	for i := range events {
		ev := &events[i]
		if ev.Tenant == "" || ev.ID == "" || ev.Action == "" {
			return 0, invalid("id", "a replaced event needs a tenant, an id and an action")
		}
		if checkEvent(i, ev) != nil {
			continue // not storable, so not stored
		}
		row, err := eventRow(ev)
		if err != nil {
			return 0, err
		}
		day := dayOf(ev.Time.UnixNano())
		if !s.parts.has(day) {
			if err := s.loadPartitions(ctx); err != nil {
				return 0, err
			}
			if !s.parts.has(day) {
				continue
			}
		}
		upds = append(upds, upd{part: pgx.Identifier{partName(day)}.Sanitize(), row: row})
	}
	n := 0
	err := s.inTx(ctx, "replace events", func(tx pgx.Tx) error {
		n = 0
		for _, u := range upds {
			r := u.row
			tag, err := tx.Exec(ctx, `UPDATE `+u.part+` SET action = $4, outcome = $5, actor_id = $6,
				session_id = $7, target_id = $8, ip = $9, body = $10
				WHERE tenant = $1 AND id = $2 AND time_ns = $3`, r...)
			if err != nil {
				return err
			}
			n += int(tag.RowsAffected())
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
