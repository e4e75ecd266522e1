package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/vigilhq/vigil/internal/integrity"
)

// Tamper-evidence chains are stored in blocks (migration 0150): a row of
// chain_blocks holds up to chainBlockSize consecutive links of one
// (tenant, day) chain — their event ids, compactly, their 32-byte leaves,
// and the hash of the block's first link; every later hash is recomputed
// on read as integrity.Link(previous, leaf). The first link's own hash,
// rather than the one before it, is what a block keeps: the store then
// needs neither the genesis hash nor a tombstone's head to start a block,
// and a block stays exactly what AppendChain was given. chain_ids finds
// the link of a chained event by a 16-byte, time-ordered key. One row per
// link with its own hash, and an index on (tenant, event_id), took 185
// bytes per event; blocks and keys take 80 (docs/perf/storage.md).

// chainBlockSize is the most links one chain_blocks row holds.
const chainBlockSize = 256

// chainDigest is the size of a leaf and a hash (SHA-256).
const chainDigest = 32

// Tags of an encoded event id in a block's ids.
const (
	idTagULID = 0 // 16 bytes: a canonical ULID
	idTagText = 1 // a uvarint length, then the id's bytes
)

// Forms of a block's leaves and hashes, the first byte of its leaves.
const (
	digestsPacked = 0 // every leaf and hash is chainDigest bytes, one after another
	digestsSized  = 1 // each is a uvarint length and its bytes
)

// chainBlock is one row of chain_blocks, its leaves and hashes decoded.
type chainBlock struct {
	first     int64
	n         int
	hashFirst []byte
	ids       []byte // encoded ids, see appendChainID
	leaves    [][]byte
	// hashes holds the n hashes when some hash of the block does not
	// follow from the one before; nil otherwise.
	hashes [][]byte
}

func (b *chainBlock) end() int64 { return b.first + int64(b.n) - 1 }

// hashList returns the hashes of the block's links.
func (b *chainBlock) hashList() [][]byte {
	if b.hashes != nil {
		return b.hashes
	}
	out := make([][]byte, b.n)
	if b.n > 0 {
		out[0] = b.hashFirst
	}
	for i := 1; i < b.n; i++ {
		out[i] = integrity.Link(out[i-1], b.leaves[i])
	}
	return out
}

// idList decodes the block's event ids.
func (b *chainBlock) idList() ([]string, error) {
	out := make([]string, 0, b.n)
	src := b.ids
	for range b.n {
		id, rest, err := nextChainID(src)
		if err != nil {
			return nil, fmt.Errorf("chain block at link %d: %w", b.first, err)
		}
		out = append(out, id)
		src = rest
	}
	if len(src) != 0 {
		return nil, fmt.Errorf("chain block at link %d: %d bytes after its %d ids", b.first, len(src), b.n)
	}
	return out, nil
}

// add appends a link to the block. last is the hash of the block's last
// link (ignored when the block is empty): a hash that is not
// integrity.Link(last, leaf) makes the block keep all its hashes.
func (b *chainBlock) add(id string, leaf, hash, last []byte) {
	if b.n == 0 {
		b.hashFirst = bytes.Clone(hash)
	} else if b.hashes == nil && !bytes.Equal(integrity.Link(last, leaf), hash) {
		b.hashes = b.hashList()
	}
	if b.hashes != nil {
		b.hashes = append(b.hashes, bytes.Clone(hash))
	}
	b.ids = appendChainID(b.ids, id)
	b.leaves = append(b.leaves, bytes.Clone(leaf))
	b.n++
}

// from returns the block of the links at index i and after.
func (b *chainBlock) from(i int) (*chainBlock, error) {
	src := b.ids
	for range i {
		_, rest, err := nextChainID(src)
		if err != nil {
			return nil, fmt.Errorf("chain block at link %d: %w", b.first, err)
		}
		src = rest
	}
	out := &chainBlock{first: b.first + int64(i), n: b.n - i, hashFirst: b.hashList()[i],
		ids: bytes.Clone(src), leaves: b.leaves[i:]}
	if b.hashes != nil {
		out.hashes = b.hashes[i:]
	}
	return out, nil
}

// encode returns the blobs of the block's leaves and hashes (nil when
// they are recomputed): packed when every one is chainDigest bytes.
func (b *chainBlock) encode() (leaves, hashes []byte) {
	form := byte(digestsPacked)
	for i := range b.n {
		if len(b.leaves[i]) != chainDigest || (b.hashes != nil && len(b.hashes[i]) != chainDigest) {
			form = digestsSized
			break
		}
	}
	put := func(dst []byte, ds [][]byte) []byte {
		for _, d := range ds {
			if form == digestsSized {
				dst = binary.AppendUvarint(dst, uint64(len(d)))
			}
			dst = append(dst, d...)
		}
		return dst
	}
	leaves = put(append(make([]byte, 0, 1+b.n*chainDigest), form), b.leaves)
	if b.hashes != nil {
		hashes = put(make([]byte, 0, b.n*chainDigest), b.hashes)
	}
	return leaves, hashes
}

// decodeDigests splits a blob of n leaves or hashes of the given form.
func decodeDigests(form byte, src []byte, n int) ([][]byte, error) {
	out := make([][]byte, n)
	for i := range out {
		size := chainDigest
		if form == digestsSized {
			v, w := binary.Uvarint(src)
			if w <= 0 || v > uint64(len(src)-w) {
				return nil, errors.New("malformed digest")
			}
			size, src = int(v), src[w:]
		}
		if len(src) < size {
			return nil, errors.New("digests shorter than their count")
		}
		out[i], src = src[:size:size], src[size:]
	}
	if len(src) != 0 {
		return nil, errors.New("bytes after the digests")
	}
	return out, nil
}

// appendChainID appends the encoding of an event id: a canonical ULID as
// its 16 bytes, anything else as its length and text.
func appendChainID(dst []byte, id string) []byte {
	if u, ok := ulidBytes(id); ok {
		dst = append(dst, idTagULID)
		return append(dst, u[:]...)
	}
	dst = append(dst, idTagText)
	dst = binary.AppendUvarint(dst, uint64(len(id)))
	return append(dst, id...)
}

var errChainID = errors.New("malformed event id")

// nextChainID decodes the first id of src and returns the rest.
func nextChainID(src []byte) (string, []byte, error) {
	if len(src) == 0 {
		return "", nil, errChainID
	}
	switch src[0] {
	case idTagULID:
		if len(src) < 17 {
			return "", nil, errChainID
		}
		return ulidString([16]byte(src[1:17])), src[17:], nil
	case idTagText:
		n, w := binary.Uvarint(src[1:])
		if w <= 0 || uint64(len(src)-1-w) < n {
			return "", nil, errChainID
		}
		start := 1 + w
		return string(src[start : start+int(n)]), src[start+int(n):], nil
	}
	return "", nil, errChainID
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// ulidBytes returns the 128 bits of a canonical ULID (26 upper-case
// Crockford digits, the first at most 7); ok is false for any other
// string, so that ulidString gives back exactly the string it was given.
func ulidBytes(id string) (out [16]byte, ok bool) {
	if len(id) != 26 {
		return out, false
	}
	var hi, lo uint64
	for i := 0; i < 26; i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' {
			return out, false
		}
		v := crockfordValue(c)
		if v < 0 || (i == 0 && v > 7) {
			return out, false
		}
		hi = hi<<5 | lo>>59
		lo = lo<<5 | uint64(v)
	}
	binary.BigEndian.PutUint64(out[:8], hi)
	binary.BigEndian.PutUint64(out[8:], lo)
	return out, true
}

// ulidString is the canonical text of a ULID's 128 bits.
func ulidString(b [16]byte) string {
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	var s [26]byte
	for i := 25; i >= 0; i-- {
		s[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(s[:])
}

// chainQuerier is what the chain reads and writes need of a *sql.DB or a
// *sql.Tx.
type chainQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

const blockColumns = `first_seq, n, hash_first, ids, leaves, hashes`

func scanBlock(row interface{ Scan(...any) error }) (*chainBlock, error) {
	b := &chainBlock{}
	var leaves, hashes []byte
	if err := row.Scan(&b.first, &b.n, &b.hashFirst, &b.ids, &leaves, &hashes); err != nil {
		return nil, err
	}
	if b.n < 1 || b.n > chainBlockSize || len(leaves) == 0 || leaves[0] > digestsSized {
		return nil, fmt.Errorf("chain block at link %d: malformed (%d links)", b.first, b.n)
	}
	var err error
	if b.leaves, err = decodeDigests(leaves[0], leaves[1:], b.n); err != nil {
		return nil, fmt.Errorf("chain block at link %d: leaves: %w", b.first, err)
	}
	if hashes != nil {
		if b.hashes, err = decodeDigests(leaves[0], hashes, b.n); err != nil {
			return nil, fmt.Errorf("chain block at link %d: hashes: %w", b.first, err)
		}
	}
	return b, nil
}

// putBlock stores a block of chain, replacing the one that starts at the
// same link.
func putBlock(ctx context.Context, q chainQuerier, chain int64, b *chainBlock) error {
	leaves, hashes := b.encode()
	var h any
	if hashes != nil {
		h = hashes
	}
	_, err := q.ExecContext(ctx, `INSERT INTO chain_blocks (chain, first_seq, n, hash_first, ids, leaves, hashes)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (chain, first_seq) DO UPDATE SET n = excluded.n,
		hash_first = excluded.hash_first, ids = excluded.ids, leaves = excluded.leaves, hashes = excluded.hashes`,
		chain, b.first, b.n, b.hashFirst, b.ids, leaves, h)
	return translate(err, "store chain block")
}

// chainIDWriter inserts chain_ids rows, chainBlockSize per statement.
type chainIDWriter struct {
	q    chainQuerier
	args []any
}

func (w *chainIDWriter) add(ctx context.Context, tenant, id string, chain, seq int64) error {
	k := dedupeKey(tenant, id)
	w.args = append(w.args, k[:], chain, seq)
	if len(w.args) >= 3*chainBlockSize {
		return w.flush(ctx)
	}
	return nil
}

func (w *chainIDWriter) flush(ctx context.Context) error {
	rows := len(w.args) / 3
	if rows == 0 {
		return nil
	}
	_, err := w.q.ExecContext(ctx, `INSERT INTO chain_ids (k, chain, seq) VALUES `+placeholders(rows, 3), w.args...)
	w.args = w.args[:0]
	return translate(err, "store chained event keys")
}

// chainedAt is where a chained event's link is.
type chainedAt struct {
	day string
	seq int64
}

// chainLookup finds the links of events through chain_ids, confirming
// each key it finds against the id stored in the link's block. It caches
// the blocks it decoded.
type chainLookup struct {
	q      chainQuerier
	blocks map[int64][]idBlock // by chain
	chains map[int64]chainName
}

type chainName struct{ tenant, day string }

type idBlock struct {
	first int64
	ids   []string
}

// find returns where each of ids of tenant is linked; ids without a link
// are absent. It checks ctx before each chunk of keys.
func (l *chainLookup) find(ctx context.Context, tenant string, ids []string) (map[string]chainedAt, error) {
	out := map[string]chainedAt{}
	const chunk = 500
	for len(ids) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(len(ids), chunk)
		part := ids[:n]
		ids = ids[n:]
		type ref struct {
			chain, seq int64
			day        string
		}
		// Two ids may share a key: each is checked against the link.
		byKey := make(map[[16]byte][]string, n)
		args := make([]any, 0, n)
		for _, id := range part {
			k := dedupeKey(tenant, id)
			if _, seen := byKey[k]; !seen {
				args = append(args, k[:])
			}
			byKey[k] = append(byKey[k], id)
		}
		rows, err := l.q.QueryContext(ctx, `SELECT k, chain, seq FROM chain_ids WHERE k IN `+placeholders(1, len(args)), args...)
		if err != nil {
			return nil, translate(err, "look up chained events")
		}
		var hits []ref
		var keys [][16]byte
		for rows.Next() {
			var k []byte
			var r ref
			if err := rows.Scan(&k, &r.chain, &r.seq); err != nil {
				rows.Close()
				return nil, translate(err, "look up chained events")
			}
			if len(k) != 16 {
				continue
			}
			hits = append(hits, r)
			keys = append(keys, [16]byte(k))
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, translate(err, "look up chained events")
		}
		// A key is a hash: the link it names must be of the tenant's
		// chains and hold the id itself.
		for i, r := range hits {
			c, err := l.chain(ctx, r.chain)
			if err != nil {
				return nil, err
			}
			if c.tenant != tenant {
				continue
			}
			r.day = c.day
			stored, err := l.idAt(ctx, r.chain, r.seq)
			if err != nil {
				return nil, err
			}
			for _, id := range byKey[keys[i]] {
				if stored == id {
					out[id] = chainedAt{day: r.day, seq: r.seq}
				}
			}
		}
	}
	return out, nil
}

// chain returns the tenant and day of a chain.
func (l *chainLookup) chain(ctx context.Context, id int64) (chainName, error) {
	if c, ok := l.chains[id]; ok {
		return c, nil
	}
	var c chainName
	err := l.q.QueryRowContext(ctx, `SELECT tenant, day FROM chains WHERE id = ?`, id).Scan(&c.tenant, &c.day)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return c, translate(err, "read chain")
	}
	if l.chains == nil {
		l.chains = map[int64]chainName{}
	}
	l.chains[id] = c
	return c, nil
}

// idAt returns the event id of link seq of chain ("" when no block holds
// it).
func (l *chainLookup) idAt(ctx context.Context, chain, seq int64) (string, error) {
	for _, b := range l.blocks[chain] {
		if seq >= b.first && seq < b.first+int64(len(b.ids)) {
			return b.ids[seq-b.first], nil
		}
	}
	b, err := scanBlock(l.q.QueryRowContext(ctx, `SELECT `+blockColumns+` FROM chain_blocks
		WHERE chain = ? AND first_seq <= ? ORDER BY first_seq DESC LIMIT 1`, chain, seq))
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", translate(err, "read chain block")
	}
	ids, err := b.idList()
	if err != nil {
		return "", err
	}
	if l.blocks == nil {
		l.blocks = map[int64][]idBlock{}
	}
	l.blocks[chain] = append(l.blocks[chain], idBlock{first: b.first, ids: ids})
	if seq > b.end() {
		return "", nil
	}
	return ids[seq-b.first], nil
}

// convertChainEntries is the Go step of meta migration 0150: it moves the
// links of chain_entries (one row per link) into chains, chain_blocks and
// chain_ids, then drops chain_entries, in the migration's transaction.
func convertChainEntries(ctx context.Context, tx *sql.Tx) error {
	var found int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'chain_entries'`).Scan(&found); err != nil {
		return translate(err, "look for chain_entries")
	}
	if found == 0 {
		return nil
	}
	type day struct{ tenant, day string }
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT tenant, day FROM chain_entries ORDER BY tenant, day`)
	if err != nil {
		return translate(err, "list chains")
	}
	var days []day
	for rows.Next() {
		var d day
		if err := rows.Scan(&d.tenant, &d.day); err != nil {
			rows.Close()
			return translate(err, "list chains")
		}
		days = append(days, d)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return translate(err, "list chains")
	}
	// At the first start of this version a store of millions of events
	// converts for a minute or more: say so, and how far it has come.
	var total int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM chain_entries`).Scan(&total); err != nil {
		return translate(err, "count chain entries")
	}
	log := stepLog(ctx)
	start, lastLog := time.Now(), time.Now()
	var done int64
	log.LogAttrs(ctx, slog.LevelInfo, "converting the tamper-evidence chain to blocks (once, at the first start of this version)",
		slog.Int64("links", total), slog.Int("chains", len(days)))
	ids := &chainIDWriter{q: tx}
	type link struct {
		seq        int64
		id         string
		leaf, hash []byte
	}
	for _, d := range days {
		var chain int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO chains (tenant, day) VALUES (?, ?) RETURNING id`, d.tenant, d.day).Scan(&chain); err != nil {
			return translate(err, "number chain")
		}
		var b *chainBlock
		var last []byte
		for after := int64(-1 << 62); ; {
			if err := ctx.Err(); err != nil {
				return err
			}
			rows, err := tx.QueryContext(ctx, `SELECT seq, event_id, leaf, hash FROM chain_entries
				WHERE tenant = ? AND day = ? AND seq > ? ORDER BY seq LIMIT 4096`, d.tenant, d.day, after)
			if err != nil {
				return translate(err, "read chain entries")
			}
			var page []link
			for rows.Next() {
				var l link
				if err := rows.Scan(&l.seq, &l.id, &l.leaf, &l.hash); err != nil {
					rows.Close()
					return translate(err, "read chain entries")
				}
				page = append(page, l)
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return translate(err, "read chain entries")
			}
			if len(page) == 0 {
				break
			}
			after = page[len(page)-1].seq
			done += int64(len(page))
			if time.Since(lastLog) >= 5*time.Second {
				lastLog = time.Now()
				log.LogAttrs(ctx, slog.LevelInfo, "converting the tamper-evidence chain", slog.Int64("links_done", done),
					slog.Int64("links", total), slog.Float64("percent", math.Round(1000*float64(done)/float64(max(total, 1)))/10),
					slog.Duration("elapsed", time.Since(start).Round(time.Second)))
			}
			for _, l := range page {
				if b != nil && (b.n == chainBlockSize || l.seq != b.end()+1) {
					if err := putBlock(ctx, tx, chain, b); err != nil {
						return err
					}
					b = nil
				}
				if b == nil {
					b = &chainBlock{first: l.seq}
				}
				b.add(l.id, l.leaf, l.hash, last)
				last = l.hash
				if err := ids.add(ctx, d.tenant, l.id, chain, l.seq); err != nil {
					return err
				}
			}
		}
		if b != nil {
			if err := putBlock(ctx, tx, chain, b); err != nil {
				return err
			}
		}
	}
	if err := ids.flush(ctx); err != nil {
		return err
	}
	if _, err = tx.ExecContext(ctx, `DROP TABLE chain_entries`); err != nil {
		return translate(err, "drop chain_entries")
	}
	log.LogAttrs(ctx, slog.LevelInfo, "converted the tamper-evidence chain to blocks", slog.Int64("links", done),
		slog.Int("chains", len(days)), slog.Duration("took", time.Since(start).Round(time.Millisecond)))
	return nil
}
