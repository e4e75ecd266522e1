package sqlite

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/integrity"
)

func TestULIDBytesRoundTrip(t *testing.T) {
	var gen audit.IDGenerator
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ids := []string{"00000000000000000000000000", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}
	for range 1000 {
		ids = append(ids, gen.New(at))
	}
	for _, id := range ids {
		b, ok := ulidBytes(id)
		if !ok {
			t.Fatalf("%s is not taken for a ULID", id)
		}
		if got := ulidString(b); got != id {
			t.Fatalf("ULID %s comes back as %s", id, got)
		}
	}
	for _, id := range []string{strings.ToLower(ids[3]), "8ZZZZZZZZZZZZZZZZZZZZZZZZZ", "0123456789ABCDEFGHIJKLMNOP", ids[3][:25], ids[3] + "0", ""} {
		if _, ok := ulidBytes(id); ok {
			t.Errorf("%q taken for a canonical ULID", id)
		}
	}
}

func TestChainIDEncoding(t *testing.T) {
	var gen audit.IDGenerator
	ulid := gen.New(time.Now())
	ids := []string{ulid, strings.ToLower(ulid), "evt-42", "", strings.Repeat("x", 300), "9b2e7c1a-4f3d-4e8a-9c2b-1d5e6f7a8b9c", "ünïcode"}
	var enc []byte
	for _, id := range ids {
		enc = appendChainID(enc, id)
	}
	if want := 17 + (2 + 26) + (2 + 6) + 2 + (3 + 300) + (2 + 36) + (2 + len("ünïcode")); len(enc) != want {
		t.Errorf("encoded ids: %d bytes, want %d (a ULID in 17)", len(enc), want)
	}
	b := &chainBlock{first: 1, n: len(ids), ids: enc}
	got, err := b.idList()
	if err != nil || !slices.Equal(got, ids) {
		t.Fatalf("decoded %q, %v; want %q", got, err, ids)
	}
	for _, bad := range [][]byte{{}, {idTagULID, 1, 2}, {idTagText, 5, 'a'}, {7}} {
		if _, _, err := nextChainID(bad); err == nil {
			t.Errorf("%x decoded without an error", bad)
		}
	}
}

// chainOf returns n entries continuing a chain from head h after seq
// (h nil: the genesis), with real links.
func chainOf(tenant, day string, after int64, h []byte, n int, id func(i int) string) []audit.ChainEntry {
	if h == nil {
		h = integrity.Genesis(tenant, day)
	}
	out := make([]audit.ChainEntry, n)
	for i := range out {
		leaf := integrity.Link([]byte(tenant), []byte(fmt.Sprint(after+int64(i)))) // any 32 bytes
		h = integrity.Link(h, leaf)
		out[i] = audit.ChainEntry{Tenant: tenant, Day: day, Seq: after + int64(i) + 1, EventID: id(i), Leaf: leaf, Hash: h}
	}
	return out
}

func openTestDB(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(t.Context(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func allEntries(t *testing.T, db *DB, tenant, day string) []audit.ChainEntry {
	t.Helper()
	var out []audit.ChainEntry
	for after := int64(0); ; {
		page, err := db.ChainEntries(t.Context(), tenant, day, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Seq
	}
}

func sameEntries(t *testing.T, got, want []audit.ChainEntry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Tenant != w.Tenant || g.Day != w.Day || g.Seq != w.Seq || g.EventID != w.EventID || !bytes.Equal(g.Leaf, w.Leaf) || !bytes.Equal(g.Hash, w.Hash) {
			t.Fatalf("entry %d: %+v, want %+v", i, g, w)
		}
	}
}

type blockShape struct {
	first int64
	n     int
	exact bool
}

func blockShapes(t *testing.T, db *DB, tenant, day string) []blockShape {
	t.Helper()
	rows, err := db.meta.r.Query(`SELECT b.first_seq, b.n, b.hashes IS NULL FROM chain_blocks b JOIN chains c ON c.id = b.chain
		WHERE c.tenant = ? AND c.day = ? ORDER BY b.first_seq`, tenant, day)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []blockShape
	for rows.Next() {
		var s blockShape
		if err := rows.Scan(&s.first, &s.n, &s.exact); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// TestChainBlocks: links fill blocks of chainBlockSize, a call continues
// the last block, hashes come back as they were given (recomputed when
// they follow from each other, kept when they do not), and ChainEntries
// pages start anywhere in a block.
func TestChainBlocks(t *testing.T) {
	ctx := t.Context()
	db := openTestDB(t, t.TempDir())
	const day = "2026-03-01"
	var gen audit.IDGenerator
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var want []audit.ChainEntry
	for _, n := range []int{1, 29, 300, 7, 263} { // 600 links over five calls
		var h []byte
		if len(want) > 0 {
			h = want[len(want)-1].Hash
		}
		es := chainOf("acme", day, int64(len(want)), h, n, func(i int) string {
			if i%50 == 3 {
				return fmt.Sprintf("legacy-%d", len(want)+i)
			}
			return gen.New(at)
		})
		if err := db.AppendChain(ctx, es); err != nil {
			t.Fatal(err)
		}
		want = append(want, es...)
	}
	sameEntries(t, allEntries(t, db, "acme", day), want)
	if got := blockShapes(t, db, "acme", day); !slices.Equal(got, []blockShape{{1, 256, true}, {257, 256, true}, {513, 88, true}}) {
		t.Fatalf("blocks: %+v", got)
	}
	for _, after := range []int64{0, 1, 255, 256, 257, 300, 599, 600} {
		page, err := db.ChainEntries(ctx, "acme", day, after, 7)
		if err != nil {
			t.Fatal(err)
		}
		if wantN := min(7, 600-int(after)); len(page) != wantN || (wantN > 0 && page[0].Seq != after+1) {
			t.Fatalf("page after %d: %d entries from %+v", after, len(page), page)
		}
		if len(page) > 0 {
			sameEntries(t, page, want[after:after+int64(len(page))])
		}
	}
	h, err := db.ChainHead(ctx, "acme", day)
	if err != nil || h.Count != 600 || !bytes.Equal(h.Head, want[599].Hash) {
		t.Fatalf("head %+v %v", h, err)
	}
	ids := make([]string, 0, len(want)+1)
	for _, e := range want {
		ids = append(ids, e.EventID)
	}
	got, err := db.Chained(ctx, "acme", append(ids, "unknown"))
	if err != nil || len(got) != len(want) || got["unknown"] {
		t.Fatalf("chained: %d of %d, %v", len(got), len(want), err)
	}
	if got, _ := db.Chained(ctx, "other", ids); len(got) != 0 {
		t.Fatalf("another tenant's events chained: %v", got)
	}

	// Hashes that do not follow from the previous link (a store keeps
	// what it is given) come back unchanged, and so do the links after.
	odd := chainOf("odd", day, 0, nil, 5, func(i int) string { return fmt.Sprint("o", i) })
	odd[3].Hash = bytes.Repeat([]byte{9}, 32)
	if err := db.AppendChain(ctx, odd); err != nil {
		t.Fatal(err)
	}
	more := chainOf("odd", day, 5, odd[4].Hash, 3, func(i int) string { return fmt.Sprint("p", i) })
	if err := db.AppendChain(ctx, more); err != nil {
		t.Fatal(err)
	}
	sameEntries(t, allEntries(t, db, "odd", day), append(odd, more...))
	if got := blockShapes(t, db, "odd", day); !slices.Equal(got, []blockShape{{1, 8, false}}) {
		t.Fatalf("blocks of a chain with a stray hash: %+v", got)
	}

	// Leaves and hashes of other sizes than SHA-256's are kept as given
	// too, whether their hashes follow or not.
	sized := chainOf("sized", day, 0, nil, 300, func(i int) string { return fmt.Sprint("s", i) })
	for i := range sized {
		if i%3 == 0 {
			sized[i].Leaf = sized[i].Leaf[:i%32]
		}
		if i > 0 {
			sized[i].Hash = integrity.Link(sized[i-1].Hash, sized[i].Leaf)
		}
	}
	sized[270].Hash = []byte{1}
	if err := db.AppendChain(ctx, sized[:280]); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendChain(ctx, sized[280:]); err != nil {
		t.Fatal(err)
	}
	sameEntries(t, allEntries(t, db, "sized", day), sized)
	if got := blockShapes(t, db, "sized", day); !slices.Equal(got, []blockShape{{1, 256, true}, {257, 44, false}}) {
		t.Fatalf("blocks of a chain with leaves of other sizes: %+v", got)
	}
	// An event twice in one call is refused, named.
	twice := chainOf("acme", day, 600, want[599].Hash, 2, func(int) string { return "twice" })
	if err := db.AppendChain(ctx, twice); audit.ErrorCode(err) != audit.ECONFLICT || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("an event twice in one call: %v", err)
	}
}

// TestTrimChainStraddlingBlock trims a chain through a link in the middle
// of a block: the blocks before go, the straddling one keeps its later
// links with their hashes, the trimmed events are no longer chained (and
// may be chained again), and the chain goes on.
func TestTrimChainStraddlingBlock(t *testing.T) {
	ctx := t.Context()
	db := openTestDB(t, t.TempDir())
	const day = "2026-03-01"
	id := func(i int) string { return fmt.Sprintf("e%04d", i) }
	es := chainOf("acme", day, 0, nil, 700, id)
	if err := db.AppendChain(ctx, es); err != nil {
		t.Fatal(err)
	}
	st := audit.Statement{Tenant: "acme", Kind: audit.StatementErasure, ID: "er1/" + day, Day: day, Count: 2, KeyID: "k", Body: []byte("b"), Signature: []byte("s")}
	fields := []audit.ErasedField{
		{Tenant: "acme", Day: day, EventID: id(10), Field: "context.ip", Hash: bytes.Repeat([]byte{1}, 32), Erasure: st.ID},
		{Tenant: "acme", Day: day, EventID: id(500), Field: "context.ip", Hash: bytes.Repeat([]byte{2}, 32), Erasure: st.ID},
	}
	if err := db.PutErasure(ctx, st, fields); err != nil {
		t.Fatal(err)
	}
	if err := db.TrimChain(ctx, "acme", day, 300); err != nil {
		t.Fatal(err)
	}
	sameEntries(t, allEntries(t, db, "acme", day), es[300:])
	if got := blockShapes(t, db, "acme", day); !slices.Equal(got, []blockShape{{301, 212, true}, {513, 188, true}}) {
		t.Fatalf("blocks after the trim: %+v", got)
	}
	chained, err := db.Chained(ctx, "acme", []string{id(0), id(299), id(300), id(699)})
	if err != nil || len(chained) != 2 || !chained[id(300)] || !chained[id(699)] {
		t.Fatalf("chained after the trim: %v %v", chained, err)
	}
	var keys int
	if err := db.meta.r.QueryRow(`SELECT count(*) FROM chain_ids`).Scan(&keys); err != nil || keys != 400 {
		t.Fatalf("chain_ids rows after the trim: %d %v", keys, err)
	}
	if fs, _ := db.ErasedFields(ctx, "acme", day); len(fs) != 1 || fs[0].EventID != id(500) {
		t.Fatalf("erased fields after the trim: %+v", fs)
	}
	more := chainOf("acme", day, 700, es[699].Hash, 3, func(i int) string { return id(i) }) // e0000..e0002 again
	if err := db.AppendChain(ctx, more); err != nil {
		t.Fatal(err)
	}
	sameEntries(t, allEntries(t, db, "acme", day), append(es[300:], more...))
	// Through the end: every block goes, the head stays.
	if err := db.TrimChain(ctx, "acme", day, 703); err != nil {
		t.Fatal(err)
	}
	if got := blockShapes(t, db, "acme", day); len(got) != 0 {
		t.Fatalf("blocks after a trim of the whole chain: %+v", got)
	}
	if h, _ := db.ChainHead(ctx, "acme", day); h.Count != 703 || !bytes.Equal(h.Head, more[2].Hash) {
		t.Fatalf("head after the trim: %+v", h)
	}
	if err := db.meta.r.QueryRow(`SELECT count(*) FROM chain_ids`).Scan(&keys); err != nil || keys != 0 {
		t.Fatalf("chain_ids rows after the whole trim: %d %v", keys, err)
	}
}

// TestChainedConfirmsKeys: a chain_ids key is a hash, so a row whose key
// is an event's but whose link holds another event (what a collision
// would leave) does not make that event chained, nor keep it from being
// chained; neither does a key of another tenant.
func TestChainedConfirmsKeys(t *testing.T) {
	ctx := t.Context()
	db := openTestDB(t, t.TempDir())
	const day = "2026-03-01"
	es := chainOf("acme", day, 0, nil, 2, func(i int) string { return fmt.Sprint("e", i) })
	if err := db.AppendChain(ctx, es); err != nil {
		t.Fatal(err)
	}
	var chain int64
	if err := db.meta.r.QueryRow(`SELECT id FROM chains WHERE tenant = 'acme'`).Scan(&chain); err != nil {
		t.Fatal(err)
	}
	ghost, other := dedupeKey("acme", "ghost"), dedupeKey("beta", "e0")
	for _, k := range [][16]byte{ghost, other} {
		if _, err := db.meta.w.Exec(`INSERT INTO chain_ids (k, chain, seq) VALUES (?, ?, 1)`, k[:], chain); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := db.Chained(ctx, "acme", []string{"ghost", "e0", "e1"}); err != nil || got["ghost"] || !got["e0"] || !got["e1"] {
		t.Fatalf("chained: %v %v", got, err)
	}
	if got, err := db.Chained(ctx, "beta", []string{"e0"}); err != nil || len(got) != 0 {
		t.Fatalf("chained in beta: %v %v", got, err)
	}
	if err := db.AppendChain(ctx, chainOf("acme", day, 2, es[1].Hash, 1, func(int) string { return "ghost" })); err != nil {
		t.Fatalf("an event whose key another link's row has: %v", err)
	}
	if got, _ := db.Chained(ctx, "acme", []string{"ghost"}); !got["ghost"] {
		t.Fatal("ghost not chained after its append")
	}
	if err := db.AppendChain(ctx, chainOf("beta", day, 0, nil, 1, func(int) string { return "e0" })); err != nil {
		t.Fatalf("another tenant's event of the same id: %v", err)
	}
}

// TestMetaUpgradeConvertsChainEntries opens a meta.db written before chain
// blocks (migration 0140: one chain_entries row per link) and checks that
// the upgrade moved every link into blocks, unchanged, dropped
// chain_entries, and that the chains verify and go on.
func TestMetaUpgradeConvertsChainEntries(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var gen audit.IDGenerator
	// acme: real events over two days (600 and 3 links), a few ids that
	// are not ULIDs; odd: links whose hashes do not follow (kept as
	// they are), starting at link 101 as after a trim.
	var events []audit.Event
	for i := range 603 {
		day := at
		if i >= 600 {
			day = at.Add(24 * time.Hour)
		}
		id := gen.New(day.Add(time.Duration(i) * time.Second))
		if i%100 == 7 {
			id = fmt.Sprintf("legacy-%d", i)
		}
		events = append(events, audit.Event{Tenant: "acme", ID: id, Time: day.Add(time.Duration(i) * time.Second),
			Action: "user.login.succeeded", Actor: audit.Actor{ID: fmt.Sprint("u", i%7)}})
	}
	type key struct{ tenant, day string }
	var old []audit.ChainEntry
	heads := map[key]audit.ChainHead{}
	for i := range events {
		ev := &events[i]
		k := key{ev.Tenant, integrity.Day(ev.Time)}
		h, ok := heads[k]
		if !ok {
			h.Head = integrity.Genesis(k.tenant, k.day)
		}
		leaf := integrity.Leaf(ev, nil)
		h.Count++
		h.Head = integrity.Link(h.Head, leaf)
		heads[k] = h
		old = append(old, audit.ChainEntry{Tenant: ev.Tenant, Day: k.day, Seq: h.Count, EventID: ev.ID, Leaf: leaf, Hash: h.Head})
	}
	for i := range 300 {
		seq := int64(101 + i)
		old = append(old, audit.ChainEntry{Tenant: "odd", Day: "2026-03-01", Seq: seq, EventID: fmt.Sprint("o", seq),
			Leaf: bytes.Repeat([]byte{byte(seq)}, 32), Hash: bytes.Repeat([]byte{byte(seq + 100)}, 32)})
	}
	heads[key{"odd", "2026-03-01"}] = audit.ChainHead{Count: 400, Head: old[len(old)-1].Hash}

	var hs []audit.ChainHead
	for k, h := range heads {
		h.Tenant, h.Day = k.tenant, k.day
		hs = append(hs, h)
	}
	writeMeta0140(t, dir, old, hs)

	var logs bytes.Buffer
	db, err := Open(t.Context(), Options{Dir: dir, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	// The conversion says what it does, and when it is done.
	for _, want := range []string{`"msg":"converting the tamper-evidence chain to blocks (once, at the first start of this version)","component":"sqlite","links":903,"chains":3`,
		`"msg":"converted the tamper-evidence chain to blocks","component":"sqlite","links":903,"chains":3`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the upgrade's log lacks %s:\n%s", want, logs.String())
		}
	}
	var tables int
	if err := db.meta.r.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name IN ('chain_entries', 'chain_entries_event')`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("chain_entries after the upgrade: %d %v", tables, err)
	}
	byDay := map[key][]audit.ChainEntry{}
	for _, e := range old {
		k := key{e.Tenant, e.Day}
		byDay[k] = append(byDay[k], e)
	}
	for k, want := range byDay {
		sameEntries(t, allEntries(t, db, k.tenant, k.day), want)
	}
	if got := blockShapes(t, db, "acme", "2026-03-01"); !slices.Equal(got, []blockShape{{1, 256, true}, {257, 256, true}, {513, 88, true}}) {
		t.Fatalf("blocks of acme: %+v", got)
	}
	if got := blockShapes(t, db, "odd", "2026-03-01"); !slices.Equal(got, []blockShape{{101, 256, false}, {357, 44, false}}) {
		t.Fatalf("blocks of odd: %+v", got)
	}
	ids := make([]string, len(events))
	for i := range events {
		ids[i] = events[i].ID
	}
	if got, err := db.Chained(ctx, "acme", ids); err != nil || len(got) != len(ids) {
		t.Fatalf("chained after the upgrade: %d of %d, %v", len(got), len(ids), err)
	}

	// The events themselves, then verification: checkpoints signed now
	// cover the converted links, and new events continue the chains.
	if err := db.Events().InsertEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	signer := integrity.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)))
	rec, err := integrity.New(integrity.Options{Events: db.Events(), Store: db, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	verify := func(events int64) {
		t.Helper()
		rep, err := rec.Verifier().Verify(ctx, []string{"acme"}, "", "")
		if err != nil || !rep.OK || rep.Events != events || len(rep.Unsigned) != 0 {
			t.Fatalf("verify: %+v %v (broken %+v)", rep, err, rep.Broken)
		}
	}
	verify(603)
	var later []audit.Event
	for i := range 10 {
		later = append(later, audit.Event{Tenant: "acme", ID: gen.New(at.Add(time.Hour)), Time: at.Add(time.Hour + time.Duration(i)*time.Second),
			Action: "user.login.succeeded", Actor: audit.Actor{ID: "late"}})
	}
	if err := rec.InsertEvents(ctx, later); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	verify(613)
	if got := blockShapes(t, db, "acme", "2026-03-01"); !slices.Equal(got, []blockShape{{1, 256, true}, {257, 256, true}, {513, 98, true}}) {
		t.Fatalf("blocks of acme after 10 more: %+v", got)
	}
	// Opening again does not convert again.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTestDB(t, dir)
	sameEntries(t, allEntries(t, db, "odd", "2026-03-01"), byDay[key{"odd", "2026-03-01"}])
}

// writeMeta0140 writes dir/meta.db as version 0140 left it, with its own
// SQL: migrations up to 0140, then the links as chain_entries rows and
// the heads.
func writeMeta0140(t testing.TB, dir string, entries []audit.ChainEntry, heads []audit.ChainHead) {
	t.Helper()
	raw, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "meta.db")+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ms, err := migrations("meta")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.version > 140 {
			break
		}
		if _, err := tx.Exec(m.sql); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if _, err := tx.Exec(`INSERT INTO schema_migrations VALUES (?, ?, 0)`, m.version, m.name); err != nil {
			t.Fatal(err)
		}
	}
	ins, err := tx.Prepare(`INSERT INTO chain_entries (tenant, day, seq, event_id, leaf, hash) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		t.Fatal(err)
	}
	defer ins.Close()
	for _, e := range entries {
		if _, err := ins.Exec(e.Tenant, e.Day, e.Seq, e.EventID, e.Leaf, e.Hash); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range heads {
		if _, err := tx.Exec(`INSERT INTO chain_heads (tenant, day, count, head) VALUES (?, ?, ?, ?)`, h.Tenant, h.Day, h.Count, h.Head); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkMetaUpgrade measures the first open of a meta.db of version
// 0140 holding the links of 366,000 events (CHAIN_EVENTS overrides) of 4
// tenants over 10 days: the conversion of chain_entries into blocks, and
// the VACUUM that turns on incremental auto-vacuum. It reports both
// times and meta.db's size before and after.
//
//	go test ./internal/sqlite -run '^$' -bench MetaUpgrade -benchtime 1x
func BenchmarkMetaUpgrade(b *testing.B) {
	n := 366_000
	if s := os.Getenv("CHAIN_EVENTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		var gen audit.IDGenerator
		start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		step := 10 * 24 * time.Hour / time.Duration(n)
		type key struct{ tenant, day string }
		heads := map[key]audit.ChainHead{}
		entries := make([]audit.ChainEntry, 0, n)
		for i := range n {
			at := start.Add(time.Duration(i) * step)
			k := key{fmt.Sprint("t", i%4), integrity.Day(at)}
			h, ok := heads[k]
			if !ok {
				h = audit.ChainHead{Tenant: k.tenant, Day: k.day, Head: integrity.Genesis(k.tenant, k.day)}
			}
			leaf := integrity.Link([]byte(k.tenant), []byte(strconv.Itoa(i)))
			h.Count++
			h.Head = integrity.Link(h.Head, leaf)
			heads[k] = h
			entries = append(entries, audit.ChainEntry{Tenant: k.tenant, Day: k.day, Seq: h.Count, EventID: gen.New(at), Leaf: leaf, Hash: h.Head})
		}
		var hs []audit.ChainHead
		for _, h := range heads {
			hs = append(hs, h)
		}
		writeMeta0140(b, dir, entries, hs)
		path := filepath.Join(dir, "meta.db")
		size := func() int64 {
			var total int64
			for _, suffix := range []string{"", "-wal"} {
				if st, err := os.Stat(path + suffix); err == nil {
					total += st.Size()
				}
			}
			return total
		}
		before := size()
		ctx := context.Background()
		b.StartTimer()
		t0 := time.Now()
		w, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_synchronous=FULL")
		if err != nil {
			b.Fatal(err)
		}
		w.SetMaxOpenConns(1)
		if err := migrate(ctx, w, "meta"); err != nil {
			b.Fatal(err)
		}
		converted := time.Since(t0)
		f := &file{path: path, w: w, r: w}
		t1 := time.Now()
		if err := f.ensureIncrementalVacuum(ctx, slog.New(slog.DiscardHandler)); err != nil {
			b.Fatal(err)
		}
		vacuumed := time.Since(t1)
		if _, err := w.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(converted.Seconds(), "convert-s")
		b.ReportMetric(vacuumed.Seconds(), "vacuum-s")
		b.ReportMetric(float64(before)/float64(n), "before-B/event")
		b.ReportMetric(float64(size())/float64(n), "after-B/event")
	}
}

// TestCrockfordValues: the table gives every byte the value the digit
// search gave (either case; I, L, O and U are not digits).
func TestCrockfordValues(t *testing.T) {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	for c := range 256 {
		want := strings.IndexByte(alphabet, byte(c))
		if c >= 'a' && c <= 'z' {
			want = strings.IndexByte(alphabet, byte(c)-'a'+'A')
		}
		if got := crockfordValue(byte(c)); got != want {
			t.Errorf("crockfordValue(%q) = %d, want %d", rune(c), got, want)
		}
	}
}
