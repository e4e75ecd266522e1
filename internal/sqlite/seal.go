package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Sealed partitions.
//
// A partition whose period ended a while ago (Options.SealAfter) receives
// few or no new events, so its event bodies are compressed together: the
// bodies of up to sealBlock consecutive events of one tenant, in time
// order, become one zstd block in the partition's blocks table, and each
// row's body is replaced by a short reference (bodyRef, the block's id, the
// slot). Compressing neighbours together is what pays: per-event
// compression cannot share a session id or an actor's repeated strings
// between events (see docs/perf/storage.md). The rows, their columns and
// every index stay as they are, so every search plan is unchanged; only
// decoding a body resolves the reference first.
//
// Rows stored after a seal (late events) keep inline bodies until the next
// seal. A purge deletes the blocks whose events are all gone and rewrites
// a block it cuts through; an erasure rewrites the block of the event it
// replaces. Either way, a block never keeps the body of an event whose row
// is gone or replaced: such a slot is emptied.

// bodyRef is the first byte of a body that refers to a block slot; the
// codec's bodies start with codecVersion, which never equals it.
const bodyRef = 0xB5

// sealBlock is how many events one block holds. Small blocks keep a point
// read (one event: decompress one block) cheap; larger ones compress
// little better (docs/perf/storage.md).
const sealBlock = 64

// sealBatch is how many rows a seal reads per query.
const sealBatch = 4096

var zstdCodec = sync.OnceValues(func() (*zstd.Encoder, *zstd.Decoder) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))
	if err != nil {
		panic(err) // only invalid options fail
	}
	// Blocks are small and trusted only as far as the file is: bound what
	// one can expand to anyway.
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		panic(err)
	}
	return enc, dec
})

// appendRef appends the reference to slot of block bid.
func appendRef(b []byte, bid int64, slot int) []byte {
	b = append(b, bodyRef)
	b = binary.AppendUvarint(b, uint64(bid))
	return binary.AppendUvarint(b, uint64(slot))
}

// parseRef reads a reference; ok is false when b is an inline body.
func parseRef(b []byte) (bid int64, slot int, ok bool, err error) {
	if len(b) == 0 || b[0] != bodyRef {
		return 0, 0, false, nil
	}
	v, n := binary.Uvarint(b[1:])
	if n <= 0 {
		return 0, 0, true, errors.New("bad block reference")
	}
	s, m := binary.Uvarint(b[1+n:])
	if m <= 0 || 1+n+m != len(b) || s >= sealBlock {
		return 0, 0, true, errors.New("bad block reference")
	}
	return int64(v), int(s), true, nil
}

// encodeBlock compresses bodies (an empty body is an emptied slot).
func encodeBlock(bodies [][]byte) []byte {
	var raw []byte
	for _, b := range bodies {
		raw = binary.AppendUvarint(raw, uint64(len(b)))
		raw = append(raw, b...)
	}
	enc, _ := zstdCodec()
	return enc.EncodeAll(raw, nil)
}

// decodeBlock returns the slots of a block.
func decodeBlock(z []byte) ([][]byte, error) {
	_, dec := zstdCodec()
	raw, err := dec.DecodeAll(z, nil)
	if err != nil {
		return nil, fmt.Errorf("decompress block: %w", err)
	}
	var slots [][]byte
	for len(raw) > 0 {
		n, k := binary.Uvarint(raw)
		if k <= 0 || n > uint64(len(raw)-k) || len(slots) == sealBlock {
			return nil, errors.New("corrupt block")
		}
		slots = append(slots, raw[k:k+int(n)])
		raw = raw[k+int(n):]
	}
	return slots, nil
}

// queryRower is what reads a block: the connection or transaction the
// row came from, so both come from one snapshot.
type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// bodies resolves block references for one read, keeping the last block
// decompressed: a time-ordered scan reads its neighbours next.
type bodies struct {
	q     queryRower
	path  string
	bid   int64
	slots [][]byte
}

// get returns the codec body of a row: body itself when inline, else the
// slot it refers to.
func (b *bodies) get(ctx context.Context, body []byte) ([]byte, error) {
	bid, slot, ok, err := parseRef(body)
	if !ok {
		return body, nil
	}
	if err != nil {
		return nil, err
	}
	if b.slots == nil || b.bid != bid {
		var z []byte
		if err := b.q.QueryRowContext(ctx, `SELECT z FROM blocks WHERE bid = ?`, bid).Scan(&z); err != nil {
			return nil, translate(err, fmt.Sprintf("read block %d of %s", bid, b.path))
		}
		slots, err := decodeBlock(z)
		if err != nil {
			return nil, fmt.Errorf("block %d of %s: %w", bid, b.path, err)
		}
		b.bid, b.slots = bid, slots
	}
	if slot >= len(b.slots) || len(b.slots[slot]) == 0 {
		return nil, fmt.Errorf("block %d of %s has no event in slot %d", bid, b.path, slot)
	}
	return b.slots[slot], nil
}

// readConn returns what a read of p should query: one connection of the
// reader pool, held until done. A row and the block it refers to then come
// from one snapshot even while an erasure rewrites the block, because
// SQLite keeps a connection's read transaction, and its snapshot, while
// any statement on it is still stepping: the block is read while the row
// query is. This holds whether or not the partition had blocks when the
// read began (its first seal may commit during the read), and costs no
// BEGIN and ROLLBACK.
func (p *partition) readConn(ctx context.Context) (q interface {
	queryRower
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, done func(), err error) {
	conn, err := p.f.r.Conn(ctx)
	if err != nil {
		return nil, nil, translate(err, "read "+p.f.path)
	}
	return conn, func() { _ = conn.Close() }, nil
}

func (p *partition) hasBlocks() bool {
	p.dmu.RLock()
	defer p.dmu.RUnlock()
	return p.blocks
}

// loadSeal reads whether the partition has blocks and its seal mark.
func (p *partition) loadSeal(ctx context.Context) error {
	var blocks int
	if err := p.f.r.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM blocks LIMIT 1)`).Scan(&blocks); err != nil {
		return translate(err, "load blocks")
	}
	p.blocks = blocks > 0
	return nil
}

// sealCandidate is an inline row to seal.
type sealCandidate struct {
	rid, t, ts int64
	body       []byte
}

// seal compresses the bodies of the rows stored since the last seal into
// blocks, then rewrites the file so the space is given back, when there
// are at least min of them. It returns how many events it sealed.
//
// It runs as one transaction under the writer lock, so an erasure or a
// purge cannot change a row between its read and its seal: the rows are
// read tenant by tenant in time order and compressed, their references
// collected in a temporary table keyed by rid, and one UPDATE then
// rewrites the rows in rid order, which visits each table page once (an
// UPDATE per row, in time order, rewrote each page once per tenant and
// cost three times as much).
func (p *partition) seal(ctx context.Context, min int) (int64, error) {
	var mark, top int64
	var fresh int
	if err := p.f.r.QueryRowContext(ctx, `SELECT m.rid, (SELECT coalesce(max(rid), 0) FROM events),
		(SELECT count(*) FROM (SELECT 1 FROM events WHERE rid > m.rid LIMIT ?))
		FROM (SELECT coalesce(max(rid), 0) AS rid FROM seal_mark) AS m`, min).Scan(&mark, &top, &fresh); err != nil {
		return 0, translate(err, "read seal mark")
	}
	if fresh < min || top <= mark {
		return 0, nil
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	sealed, err := p.sealRows(ctx, mark, top)
	if err != nil {
		return 0, err
	}
	if sealed > 0 {
		p.dmu.Lock()
		p.blocks = true
		p.dmu.Unlock()
		// The rows shrank in place; VACUUM rewrites the file compactly
		// (readers keep reading their snapshot meanwhile), and the
		// checkpoint moves the rewritten pages out of the WAL.
		if _, err := p.f.w.ExecContext(ctx, `VACUUM`); err != nil {
			return sealed, translate(err, "vacuum "+p.f.path)
		}
		if _, err := p.f.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			return sealed, translate(err, "checkpoint "+p.f.path)
		}
	}
	return sealed, nil
}

// sealRows is seal's transaction (the caller holds wmu).
func (p *partition) sealRows(ctx context.Context, mark, top int64) (int64, error) {
	tx, err := p.f.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, translate(err, "begin seal")
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE IF NOT EXISTS seal_refs (rid INTEGER PRIMARY KEY, ref BLOB NOT NULL)`); err != nil {
		return 0, translate(err, "seal")
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM temp.seal_refs`); err != nil {
		return 0, translate(err, "seal")
	}
	var (
		sealed int64
		after  = [3]int64{-1 << 62, -1 << 62, -1 << 62}
		block  []sealCandidate // one tenant's rows, fewer than sealBlock
		refs   []any
	)
	flushRefs := func() error {
		if len(refs) == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO temp.seal_refs (rid, ref) VALUES `+placeholders(len(refs)/2, 2), refs...)
		refs = refs[:0]
		return translate(err, "seal")
	}
	writeBlock := func() error {
		if len(block) == 0 {
			return nil
		}
		slots := make([][]byte, len(block))
		for i := range block {
			slots[i] = block[i].body
		}
		var bid int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO blocks (t, lo, hi, z) VALUES (?, ?, ?, ?) RETURNING bid`,
			block[0].t, block[0].ts, block[len(block)-1].ts, encodeBlock(slots)).Scan(&bid); err != nil {
			return translate(err, "write block")
		}
		for i := range block {
			refs = append(refs, block[i].rid, appendRef(nil, bid, i))
		}
		sealed += int64(len(block))
		block = block[:0]
		if len(refs) >= 2*insertRowsPerStatement {
			return flushRefs()
		}
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		rows, err := tx.QueryContext(ctx, `SELECT rid, t, ts, body FROM events INDEXED BY ev_time
			WHERE (t, ts, rid) > (?, ?, ?) AND rid > ? AND rid <= ? ORDER BY t, ts, rid LIMIT ?`,
			after[0], after[1], after[2], mark, top, sealBatch)
		if err != nil {
			return 0, translate(err, "read rows to seal")
		}
		var batch []sealCandidate
		for rows.Next() {
			var c sealCandidate
			if err := rows.Scan(&c.rid, &c.t, &c.ts, &c.body); err != nil {
				rows.Close()
				return 0, translate(err, "read rows to seal")
			}
			batch = append(batch, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, translate(err, "read rows to seal")
		}
		for _, c := range batch {
			after = [3]int64{c.t, c.ts, c.rid}
			if _, _, ref, _ := parseRef(c.body); ref {
				continue
			}
			if len(block) == sealBlock || (len(block) > 0 && block[0].t != c.t) {
				if err := writeBlock(); err != nil {
					return 0, err
				}
			}
			block = append(block, c)
		}
		if len(batch) < sealBatch {
			break
		}
	}
	if err := writeBlock(); err != nil {
		return 0, err
	}
	if err := flushRefs(); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE events SET body = r.ref FROM temp.seal_refs AS r WHERE events.rid = r.rid`); err != nil {
		return 0, translate(err, "seal rows")
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM temp.seal_refs`); err != nil {
		return 0, translate(err, "seal")
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO seal_mark (rid) VALUES (?)`, top); err != nil {
		return 0, translate(err, "write seal mark")
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM seal_mark WHERE rid < ?`, top); err != nil {
		return 0, translate(err, "write seal mark")
	}
	return sealed, translate(tx.Commit(), "commit seal")
}

// pruneBlock empties the slots of block bid that no row refers to any more
// (their events were purged or replaced), and deletes the block when none
// is left.
func pruneBlock(ctx context.Context, tx *sql.Tx, bid int64) error {
	var t, lo, hi int64
	var z []byte
	err := tx.QueryRowContext(ctx, `SELECT t, lo, hi, z FROM blocks WHERE bid = ?`, bid).Scan(&t, &lo, &hi, &z)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return translate(err, "read block")
	}
	// The rows of a block are the tenant's rows in [lo, hi] that refer to it.
	rows, err := tx.QueryContext(ctx, `SELECT body FROM events INDEXED BY ev_time WHERE t = ? AND ts >= ? AND ts <= ?`, t, lo, hi)
	if err != nil {
		return translate(err, "read block rows")
	}
	live := map[int]bool{}
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			rows.Close()
			return translate(err, "read block rows")
		}
		if b, slot, ok, err := parseRef(body); ok && err == nil && b == bid {
			live[slot] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return translate(err, "read block rows")
	}
	if len(live) == 0 {
		_, err := tx.ExecContext(ctx, `DELETE FROM blocks WHERE bid = ?`, bid)
		return translate(err, "delete block")
	}
	slots, err := decodeBlock(z)
	if err != nil {
		return fmt.Errorf("block %d: %w", bid, err)
	}
	changed := false
	for i := range slots {
		if !live[i] && len(slots[i]) > 0 {
			slots[i], changed = nil, true
		}
	}
	if !changed {
		return nil
	}
	_, err = tx.ExecContext(ctx, `UPDATE blocks SET z = ? WHERE bid = ?`, encodeBlock(slots), bid)
	return translate(err, "rewrite block")
}

// pruneBlocksBefore drops tenant t's blocks wholly before cut (partition
// time) and prunes the one the cut goes through, after a purge.
func pruneBlocksBefore(ctx context.Context, tx *sql.Tx, t, cut int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM blocks WHERE t = ? AND hi < ?`, t, cut); err != nil {
		return translate(err, "delete purged blocks")
	}
	rows, err := tx.QueryContext(ctx, `SELECT bid FROM blocks WHERE t = ? AND lo < ?`, t, cut)
	if err != nil {
		return translate(err, "find purged blocks")
	}
	var bids []int64
	for rows.Next() {
		var bid int64
		if err := rows.Scan(&bid); err != nil {
			rows.Close()
			return translate(err, "find purged blocks")
		}
		bids = append(bids, bid)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return translate(err, "find purged blocks")
	}
	for _, bid := range bids {
		if err := pruneBlock(ctx, tx, bid); err != nil {
			return err
		}
	}
	return nil
}

// Seal seals every partition whose period ended before the cutoff, that
// holds at least a block's worth of events (sealBlock) stored since its
// last seal and that took none since quiet, oldest first, and returns how
// many events it sealed. Fewer new events wait: a day with a handful of
// events, or a trickle of late ones, would pay a rewrite of the file to
// save next to nothing. It runs on its own (Options.SealAfter); tests and
// tools call it directly.
func (s *EventStore) Seal(ctx context.Context, before, quiet time.Time) (int64, error) {
	return s.sealOlder(ctx, before, quiet, sealBlock)
}

// sealOlder is Seal with the least number of new events worth a seal.
func (s *EventStore) sealOlder(ctx context.Context, before, quiet time.Time, min int) (int64, error) {
	cut := clampNanos(before)
	s.mu.Lock()
	var idxs []int64
	for _, idx := range s.known {
		// clean means "fewer than a block's worth of new events", which
		// only an insert changes; a forced seal (min < sealBlock) looks anyway.
		tr := s.sealTrack[idx]
		if (idx+1)*int64(s.period) <= cut && (tr == nil || !tr.clean || min < sealBlock) && (tr == nil || !tr.last.After(quiet)) {
			idxs = append(idxs, idx)
		}
	}
	s.mu.Unlock()
	var total int64
	for _, idx := range idxs {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		p, err := s.acquire(ctx, idx, false)
		if err != nil {
			return total, err
		}
		if p == nil {
			continue
		}
		gen := s.generation(idx)
		t0 := time.Now()
		n, err := p.seal(ctx, min)
		if n > 0 {
			s.log.LogAttrs(ctx, slog.LevelInfo, "sealed partition", slog.String("path", p.path),
				slog.Int64("events", n), slog.Duration("took", time.Since(t0)))
		}
		s.release(p)
		total += n
		if err != nil {
			return total, fmt.Errorf("seal %s: %w", p.path, err)
		}
		s.markClean(idx, gen)
	}
	return total, nil
}

// sealTrack is what the store knows of a partition's writes since it
// opened, for the background seal (guarded by EventStore.mu).
type sealTrack struct {
	inserts uint64    // InsertEvents calls that touched it
	last    time.Time // wall clock of the last one
	// clean: a seal found fewer than a block's worth of new events, and
	// no insert came since.
	clean bool
}

// generation is how many inserts partition idx has had since the store
// opened; markClean records idx as sealed unless an insert came after gen.
func (s *EventStore) generation(idx int64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tr := s.sealTrack[idx]; tr != nil {
		return tr.inserts
	}
	return 0
}

func (s *EventStore) markClean(idx int64, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tr := s.trackLocked(idx)
	if tr.inserts == gen {
		tr.clean = true
	}
}

// trackLocked returns the sealTrack of idx, adding it (s.mu held).
func (s *EventStore) trackLocked(idx int64) *sealTrack {
	tr := s.sealTrack[idx]
	if tr == nil {
		tr = &sealTrack{}
		s.sealTrack[idx] = tr
	}
	return tr
}

// inserted records that partition idx took new rows: it needs sealing
// again once its period is over.
func (s *EventStore) inserted(idx int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tr := s.trackLocked(idx)
	tr.inserts++
	tr.last = time.Now()
	tr.clean = false
}

// runSeal seals the partitions that ended more than after ago and took no
// events for quiet, every quiet, until ctx ends.
func (s *EventStore) runSeal(ctx context.Context, after, quiet time.Duration, now func() time.Time) {
	t := time.NewTicker(quiet)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := now()
		if _, err := s.Seal(ctx, n.Add(-after), time.Now().Add(-quiet)); err != nil && ctx.Err() == nil {
			s.log.Warn("seal partitions", slog.Any("error", err))
		}
	}
}

// pruneAfterPurge drops the blocks a purge of tenant t before cut emptied
// (the caller holds wmu).
func (p *partition) pruneAfterPurge(ctx context.Context, t, cut int64) error {
	tx, err := p.f.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "begin purge blocks")
	}
	defer func() { _ = tx.Rollback() }()
	if err := pruneBlocksBefore(ctx, tx, t, cut); err != nil {
		return err
	}
	return translate(tx.Commit(), "commit purge blocks")
}
