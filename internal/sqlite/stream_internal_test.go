package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// TestDedupeKey checks the idempotency key layout: a pure function of
// (tenant, id), ordered like the ULIDs of a monotonic generator within one
// millisecond, distinct across tenants, and the version-1 layout for every
// id that is not a canonical ULID.
func TestDedupeKey(t *testing.T) {
	var gen audit.IDGenerator
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var prev [16]byte
	for i := range 2000 {
		id := gen.New(at) // same millisecond: the generator increments
		k := dedupeKey("acme", id)
		if k != dedupeKey("acme", id) {
			t.Fatal("key is not deterministic")
		}
		if k == dedupeKey("acme2", id) {
			t.Fatalf("tenants share the key of %s", id)
		}
		if ms := uint64(k[0])<<40 | uint64(k[1])<<32 | uint64(k[2])<<24 | uint64(k[3])<<16 | uint64(k[4])<<8 | uint64(k[5]); ms != uint64(at.UnixMilli()) {
			t.Fatalf("key time %d, want %d", ms, at.UnixMilli())
		}
		if i > 0 && bytes.Compare(prev[:], k[:]) >= 0 {
			t.Fatalf("key %d (%s) %x does not follow %x", i, id, k, prev)
		}
		prev = k
	}
	ulid := gen.New(at)
	for _, tc := range []struct {
		name, id string
	}{
		{"lower-case ULID", strings.ToLower(ulid)},
		{"UUIDv7", "01890a5d-ac96-774b-bcce-b302099a8057"},
		{"UUIDv4", "9b2e7c1a-4f3d-4e8a-9c2b-1d5e6f7a8b9c"},
		{"free text", "evt-42"},
		{"26 chars, not Crockford", "0123456789ABCDEFGHIJKLMNOP"},
		{"ULID above 2^128", "8ZZZZZZZZZZZZZZZZZZZZZZZZZ"},
	} {
		if dedupeKey("acme", tc.id) != legacyDedupeKey("acme", tc.id) {
			t.Errorf("%s %q: want the version-1 key", tc.name, tc.id)
		}
	}
	if dedupeKey("acme", ulid) == legacyDedupeKey("acme", ulid) {
		t.Error("canonical ULID kept the version-1 key")
	}
	for id, want := range map[string]uint32{"7ZZZZZZZZZZZZZZZZZZZZZZZZZ": 0xffffffff, "00000000000000000000000001": 1, "0000000000000000000000000Z": 31, "00000000000000000000001000": 1 << 15} {
		if got, ok := ulidLow32(id); !ok || got != want {
			t.Errorf("ulidLow32(%s) = %#x, %v; want %#x", id, got, ok, want)
		}
	}
}

// TestStreamUpgradesVersion1Keys opens a stream.db written by schema
// version 1 (keys in the old layout, in table dedupe) and checks that its
// keys still make retries duplicates after the migration, within and across
// calls, until retention drains them.
func TestStreamUpgradesVersion1Keys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	day0 := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
	var gen audit.IDGenerator
	oldID, newID := gen.New(day0), gen.New(day0)
	// A version-1 file: migration 0001 only, one key in the old layout.
	raw, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "stream.db")+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations("stream")
	if err != nil {
		t.Fatal(err)
	}
	old := legacyDedupeKey("acme", oldID)
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
		ms[0].sql,
		`INSERT INTO schema_migrations VALUES (1, '` + ms[0].name + `', 0)`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.Exec(`INSERT INTO dedupe (k, th, day) VALUES (?, ?, ?)`, old[:], int64(hash32("acme")), day0.Unix()/86400); err != nil {
		t.Fatal(err)
	}
	// and its record, a bare event per row as version 1 wrote it.
	body, err := encodeEvent(nil, &audit.Event{Tenant: "acme", ID: oldID, Time: day0, Action: "custom.thing"}, encodeOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO records (seq, body) VALUES (1, ?)`, body); err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	now := day0.Add(time.Hour)
	db, err := Open(ctx, Options{Dir: dir, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := db.Stream()
	if !s.legacy.Load() {
		t.Fatal("version-1 keys not noticed")
	}
	// A file from before incremental auto-vacuum was converted on open.
	var mode int
	if err := s.f.w.QueryRow(`PRAGMA auto_vacuum`).Scan(&mode); err != nil || mode != 2 {
		t.Fatalf("auto_vacuum after open = %d, %v; want 2 (incremental)", mode, err)
	}
	ev := func(id string) *audit.Event {
		return &audit.Event{Tenant: "acme", ID: id, Time: day0, Action: "custom.thing"}
	}
	res, err := s.Append(ctx, []*audit.Event{ev(newID), ev(oldID), ev(newID)})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Duplicate || res[0].Seq != 2 || !res[1].Duplicate || !res[2].Duplicate {
		t.Fatalf("append after upgrade = %+v, want [seq 2, duplicate (version-1 key), duplicate]", res)
	}
	// Another tenant with the same id is not a duplicate.
	other := ev(oldID)
	other.Tenant = "globex"
	if res, err := s.Append(ctx, []*audit.Event{other}); err != nil || res[0].Duplicate {
		t.Fatalf("other tenant's append = %+v, %v", res, err)
	}
	// Retention drains dedupe_v1; afterwards the old id is new again.
	if _, err := s.Purge(ctx, "acme", day0.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if s.legacy.Load() {
		t.Fatal("legacy lookups still on after dedupe_v1 was drained")
	}
	if res, err := s.Append(ctx, []*audit.Event{ev(oldID)}); err != nil || res[0].Duplicate {
		t.Fatalf("append after retention = %+v, %v", res, err)
	}
	if res, err := s.Append(ctx, []*audit.Event{ev(oldID)}); err != nil || !res[0].Duplicate {
		t.Fatalf("retry after retention = %+v, %v", res, err)
	}
	recs, err := s.Read(ctx, 0, 10)
	if err != nil || len(recs) != 4 {
		t.Fatalf("read = %d records, %v; want 4", len(recs), err)
	}
	for i, want := range []string{oldID, newID, oldID, oldID} {
		if recs[i].Seq != uint64(i+1) || recs[i].Event.ID != want {
			t.Fatalf("record %d = seq %d id %s, want seq %d id %s", i, recs[i].Seq, recs[i].Event.ID, i+1, want)
		}
	}
}

// TestStreamBlocks checks that events stored as blocks (one row per append
// chunk) read back one record per event from any position and any max,
// that trimming keeps a partly consumed block, and that Seq is never
// reused across reopen after everything was trimmed.
func TestStreamBlocks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() *DB {
		db, err := Open(ctx, Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var evs []*audit.Event
	for i := range 700 {
		id := fmt.Sprintf("e%d", i)
		if i%7 == 3 {
			id = fmt.Sprintf("e%d", i-1) // a repeat within the call
		}
		evs = append(evs, &audit.Event{Tenant: "acme", ID: id, Time: at, Action: "custom.thing"})
	}
	res, err := db.Stream().Append(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string // ids by seq-1
	for i, r := range res {
		if !r.Duplicate {
			if r.Seq != uint64(len(ids)+1) {
				t.Fatalf("event %d seq %d, want %d", i, r.Seq, len(ids)+1)
			}
			ids = append(ids, evs[i].ID)
		}
	}
	// One single-event append between blocks.
	res, err = db.Stream().Append(ctx, []*audit.Event{{Tenant: "acme", ID: "single", Time: at, Action: "custom.thing"}})
	if err != nil || res[0].Seq != uint64(len(ids)+1) {
		t.Fatalf("single append = %+v, %v", res, err)
	}
	ids = append(ids, "single")
	last := uint64(len(ids))
	check := func(s *Stream) {
		t.Helper()
		for _, after := range []uint64{0, 1, 200, 219, 220, 221, 255, 256, 257, 400, last - 1, last} {
			for _, max := range []int{1, 7, 256, 1000} {
				recs, err := s.Read(ctx, after, max)
				if err != nil {
					t.Fatalf("Read(%d, %d): %v", after, max, err)
				}
				want := min(uint64(max), last-after)
				if uint64(len(recs)) != want {
					t.Fatalf("Read(%d, %d) = %d records, want %d", after, max, len(recs), want)
				}
				for j, rec := range recs {
					seq := after + uint64(j) + 1
					if rec.Seq != seq || rec.Event.ID != ids[seq-1] {
						t.Fatalf("Read(%d, %d)[%d] = seq %d id %s, want seq %d id %s", after, max, j, rec.Seq, rec.Event.ID, seq, ids[seq-1])
					}
				}
			}
		}
	}
	check(db.Stream())
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open()
	check(db.Stream())
	// Consuming into the middle of a block keeps that block readable.
	if err := db.Stream().Commit(ctx, "p", 300); err != nil {
		t.Fatal(err)
	}
	recs, err := db.Stream().Read(ctx, 300, 5)
	if err != nil || len(recs) != 5 || recs[0].Seq != 301 || recs[0].Event.ID != ids[300] {
		t.Fatalf("read after a partial commit = %+v, %v", recs, err)
	}
	if err := db.Stream().Commit(ctx, "p", last); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := db.Stream().f.r.QueryRowContext(ctx, `SELECT count(*) FROM records`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d rows left after every record was committed (%v)", rows, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open()
	defer db.Close()
	res, err = db.Stream().Append(ctx, []*audit.Event{{Tenant: "acme", ID: "after", Time: at, Action: "custom.thing"},
		{Tenant: "acme", ID: "after2", Time: at, Action: "custom.thing"}})
	if err != nil || res[0].Seq != last+1 || res[1].Seq != last+2 {
		t.Fatalf("append after trim and reopen = %+v, %v; want seqs %d, %d", res, err, last+1, last+2)
	}
}

// TestAppendRecordsRejectsBadBlocks checks the block decoder on damaged rows.
func TestAppendRecordsRejectsBadBlocks(t *testing.T) {
	ev, err := encodeEvent(nil, &audit.Event{Tenant: "a", ID: "1", Action: "custom.thing"}, encodeOpts{})
	if err != nil {
		t.Fatal(err)
	}
	good := binary.AppendUvarint(nil, uint64(len(ev)))
	good = append(good, ev...)
	good = append(good, good...)
	for name, tc := range map[string]struct {
		last uint64
		n    int64
		body []byte
	}{
		"zero count":        {5, 0, good},
		"count beyond seq":  {1, 2, good},
		"truncated":         {5, 2, good[:len(good)-3]},
		"trailing bytes":    {5, 2, append(append([]byte{}, good...), 1)},
		"length past end":   {5, 2, []byte{0xff, 0x01}},
		"bad length varint": {5, 2, []byte{0xff}},
	} {
		if _, err := appendRecords(nil, tc.last, tc.n, tc.body, 0, 10); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	recs, err := appendRecords(nil, 5, 2, good, 0, 10)
	if err != nil || len(recs) != 2 || recs[0].Seq != 4 || recs[1].Seq != 5 {
		t.Fatalf("good block = %+v, %v", recs, err)
	}
}

// TestStreamGivesBackTrimmedPages checks that a consumed backlog does not
// leave stream.db at its peak size: Commit returns free pages beyond the
// slack to the file system, a bounded step at a time.
func TestStreamGivesBackTrimmedPages(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	db, err := Open(ctx, Options{Dir: dir, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := db.Stream()
	// A backlog of ~100 MiB: 50,000 events with 2 KiB of metadata each.
	pad := strings.Repeat("x", 2048)
	var gen audit.IDGenerator
	for range 50 {
		evs := make([]*audit.Event, 1000)
		for i := range evs {
			evs[i] = &audit.Event{Tenant: "acme", ID: gen.New(now), Time: now, Action: "custom.thing",
				Metadata: map[string]any{"pad": pad}}
		}
		if _, err := s.Append(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	pragma := func(name string) int64 {
		var v int64
		if err := s.f.w.QueryRow(`PRAGMA ` + name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	peak := pragma("page_count")
	if peak < 3*(reclaimStep+reclaimSlack) {
		t.Fatalf("backlog made only %d pages; the test needs more than %d", peak, 3*(reclaimStep+reclaimSlack))
	}
	last, _, err := s.Backlog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// While the consumer is still far behind, trimmed pages stay free for
	// the appends that keep coming.
	if err := s.Commit(ctx, "pipeline", last-reclaimBacklog-10_000); err != nil {
		t.Fatal(err)
	}
	if got := pragma("page_count"); got != peak {
		t.Fatalf("pages after a commit with %d events still to consume = %d, want the peak %d (no reclaim during a backlog)", reclaimBacklog+10_000, got, peak)
	}
	if pragma("freelist_count") == 0 {
		t.Fatal("the trim freed no pages")
	}
	now = now.Add(reclaimEvery)
	if err := s.Commit(ctx, "pipeline", last); err != nil {
		t.Fatal(err)
	}
	// One step per reclaimEvery: the first Commit gave back reclaimStep
	// free pages (and the few pointer-map pages that covered them).
	first := pragma("page_count")
	if first > peak-reclaimStep || first < peak-reclaimStep-reclaimStep/100 {
		t.Fatalf("pages after the first reclaim = %d, want about %d (peak %d less one step)", first, peak-reclaimStep, peak)
	}
	// Within the same second nothing more is reclaimed.
	if err := s.Commit(ctx, "pipeline", last); err != nil {
		t.Fatal(err)
	}
	if got := pragma("page_count"); got != first {
		t.Fatalf("pages after a second Commit in the same second = %d, want %d", got, first)
	}
	// The pipeline commits every few seconds: a Commit gives back a step
	// for every second since the last reclaim.
	now = now.Add(3 * reclaimEvery)
	if err := s.Commit(ctx, "pipeline", last); err != nil {
		t.Fatal(err)
	}
	if got := pragma("page_count"); got > first-3*reclaimStep || got < first-3*reclaimStep-3*reclaimStep/100 {
		t.Fatalf("pages after a Commit 3s later = %d, want about %d (three steps)", got, first-3*reclaimStep)
	}
	for range 1000 {
		if pragma("freelist_count") <= reclaimSlack {
			break
		}
		now = now.Add(reclaimEvery)
		if err := s.Commit(ctx, "pipeline", last); err != nil {
			t.Fatal(err)
		}
	}
	if free := pragma("freelist_count"); free != reclaimSlack {
		t.Fatalf("free pages after reclaim = %d, want the slack %d", free, reclaimSlack)
	}
	if _, err := s.f.w.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "stream.db"))
	if err != nil {
		t.Fatal(err)
	}
	if limit := int64(2*reclaimSlack) * 4096; st.Size() > limit {
		t.Fatalf("stream.db is %d bytes after the backlog was consumed (peak %d pages); want ≤ %d", st.Size(), peak, limit)
	}
	// The stream still works: appends reuse the slack.
	if res, err := s.Append(ctx, []*audit.Event{{Tenant: "acme", ID: gen.New(now), Time: now, Action: "custom.thing"}}); err != nil || res[0].Seq != last+1 {
		t.Fatalf("append after reclaim = %+v, %v; want seq %d", res, err, last+1)
	}
}

// TestCommitterReusesBuffers appends groups of different sizes and
// contents one after another through the committer's reused chunkWriter
// and reads every event back unchanged; between groups the writer holds
// no request and no buffer over its bounds.
func TestCommitterReusesBuffers(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := db.Stream()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var want []*audit.Event // by seq-1
	group := func(name string, n, pad int) {
		t.Helper()
		var evs []*audit.Event
		for i := range n {
			evs = append(evs, &audit.Event{Tenant: "acme", ID: fmt.Sprintf("%s-%d", name, i), Time: at, Action: "custom." + name,
				Metadata: map[string]any{"pad": strings.Repeat(name[:1], pad+i%7)}})
		}
		res, err := s.Append(ctx, evs)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, r := range res {
			if r.Duplicate || r.Seq != uint64(len(want)+1) {
				t.Fatalf("%s: event %d = %+v, want seq %d", name, i, r, len(want)+1)
			}
			want = append(want, evs[i])
		}
		for i, ref := range s.cw.refs[:cap(s.cw.refs)] {
			if ref.r != nil {
				t.Fatalf("after %s: the writer still refers to a request at %d", name, i)
			}
		}
		if s.cw.tx != nil || cap(s.cw.enc) > maxKeptBytes || cap(s.cw.buf) > maxKeptBytes || cap(s.cw.refs) > maxKeptEvents || cap(s.cw.args) > 3*maxKeptEvents {
			t.Fatalf("after %s: the writer keeps tx %v, enc %d, buf %d, refs %d, args %d", name, s.cw.tx != nil,
				cap(s.cw.enc), cap(s.cw.buf), cap(s.cw.refs), cap(s.cw.args))
		}
	}
	group("large", 300, 200) // fills the buffers
	group("small", 1, 3)     // reuses them: shorter events over longer ones
	group("medium", 257, 40) // two chunks
	group("xl", 5000, 400)   // over the bounds: dropped afterwards
	group("tiny", 2, 0)      // after the drop
	recs, err := s.Read(ctx, 0, 50_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(want) {
		t.Fatalf("read %d records, want %d", len(recs), len(want))
	}
	for i, rec := range recs {
		w := want[i]
		if rec.Seq != uint64(i+1) || rec.Event.ID != w.ID || rec.Event.Action != w.Action || rec.Event.Metadata["pad"] != w.Metadata["pad"] {
			t.Fatalf("record %d = seq %d %s %s %v, want %s %s %v", i, rec.Seq, rec.Event.ID, rec.Event.Action, rec.Event.Metadata, w.ID, w.Action, w.Metadata)
		}
	}
}
