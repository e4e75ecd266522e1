package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/integrity"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// BenchmarkChainStorage measures what the tamper-evidence chains cost in
// meta.db: 200,000 events (CHAIN_EVENTS overrides) of 4 tenants over 5
// days, in time order with ULID ids, chained 1,000 per AppendChain call as
// the pipeline does, with real SHA-256 links. It reports meta.db's bytes
// per chained event (pages in use, after a checkpoint of the WAL), and the
// time of the operations that read the chains. Built with
// -tags sqlite_dbstat it also logs the bytes of each table and index.
//
//	go test ./internal/sqlite -run '^$' -bench ChainStorage -benchtime 1x
func BenchmarkChainStorage(b *testing.B) {
	n := 200_000
	if s := os.Getenv("CHAIN_EVENTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	const tenants, days, batch = 4, 5, 1000
	for range b.N {
		ctx := context.Background()
		dir := b.TempDir()
		db := benchOpen(b, dir, sqlite.Options{})
		rng := rand.New(rand.NewPCG(1, 2))
		var ids audit.IDGenerator
		type chainKey struct{ tenant, day string }
		heads := map[chainKey]audit.ChainHead{}
		var sample []string // ids of tenant t0, for Chained
		start := benchStart
		step := time.Duration(days) * 24 * time.Hour / time.Duration(n)
		b.ResetTimer()
		t0 := time.Now()
		for i := 0; i < n; i += batch {
			entries := make([]audit.ChainEntry, 0, batch)
			for j := i; j < min(i+batch, n); j++ {
				at := start.Add(time.Duration(j) * step)
				tenant := fmt.Sprintf("t%d", rng.IntN(tenants))
				k := chainKey{tenant, integrity.Day(at)}
				h, ok := heads[k]
				if !ok {
					h = audit.ChainHead{Tenant: k.tenant, Day: k.day, Head: integrity.Genesis(k.tenant, k.day)}
				}
				leaf := make([]byte, 32)
				for x := range leaf {
					leaf[x] = byte(rng.Uint32())
				}
				id := ids.New(at)
				h.Count++
				h.Head = integrity.Link(h.Head, leaf)
				heads[k] = h
				entries = append(entries, audit.ChainEntry{Tenant: tenant, Day: k.day, Seq: h.Count, EventID: id, Leaf: leaf, Hash: h.Head})
				if tenant == "t0" && len(sample) < batch {
					sample = append(sample, id)
				}
			}
			if err := db.AppendChain(ctx, entries); err != nil {
				b.Fatal(err)
			}
		}
		appendTook := time.Since(t0)
		b.StopTimer()
		b.ReportMetric(float64(appendTook.Nanoseconds())/float64(n), "append-ns/event")

		// The reader pool's connections open on first use: not measured.
		if _, err := db.Chained(ctx, "t0", sample[:1]); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		got, err := db.Chained(ctx, "t0", sample)
		if err != nil || len(got) != len(sample) {
			b.Fatalf("chained: %d of %d, %v", len(got), len(sample), err)
		}
		b.ReportMetric(float64(time.Since(t1).Microseconds()), "chained-1000-µs")
		// What the pipeline asks of every batch: ids not chained yet.
		fresh := make([]string, len(sample))
		for i := range fresh {
			fresh[i] = ids.New(start.Add(time.Duration(days) * 24 * time.Hour))
		}
		t1 = time.Now()
		if got, err := db.Chained(ctx, "t0", fresh); err != nil || len(got) != 0 {
			b.Fatalf("chained of new ids: %v %v", got, err)
		}
		b.ReportMetric(float64(time.Since(t1).Microseconds()), "unchained-1000-µs")

		day := integrity.Day(start)
		t2 := time.Now()
		var read int64
		for after := int64(0); ; {
			page, err := db.ChainEntries(ctx, "t1", day, after, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			read += int64(len(page))
			after = page[len(page)-1].Seq
		}
		if read != heads[chainKey{"t1", day}].Count {
			b.Fatalf("read %d entries of t1/%s, want %d", read, day, heads[chainKey{"t1", day}].Count)
		}
		b.ReportMetric(float64(time.Since(t2).Nanoseconds())/float64(read), "entries-ns/event")
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		reportMetaBytes(b, filepath.Join(dir, "meta.db"), n)
	}
}

// reportMetaBytes reports the bytes of meta.db's pages in use per event
// (the file without its free pages, after a full WAL checkpoint) and the
// file's size per event, and logs the bytes of each b-tree when SQLite was
// built with dbstat.
func reportMetaBytes(b *testing.B, path string, n int) {
	b.Helper()
	raw, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	var pages, free, size int64
	for q, v := range map[string]*int64{"page_count": &pages, "freelist_count": &free, "page_size": &size} {
		if err := raw.QueryRow(`PRAGMA ` + q).Scan(v); err != nil {
			b.Fatal(err)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((pages-free)*size)/float64(n), "meta-B/event")
	b.ReportMetric(float64(st.Size())/float64(n), "file-B/event")
	rows, err := raw.Query(`SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC`)
	if err != nil {
		b.Logf("no dbstat (build with -tags sqlite_dbstat for a breakdown): %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var bytes int64
		if err := rows.Scan(&name, &bytes); err != nil {
			b.Fatal(err)
		}
		if bytes >= 64<<10 {
			b.Logf("%-24s %10d bytes %7.1f B/event", name, bytes, float64(bytes)/float64(n))
		}
	}
}
