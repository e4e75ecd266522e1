package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMetaGivesBackFreePages: meta.db is in incremental auto-vacuum mode
// (a file made before it is converted on open), and the pages a large
// delete frees are given back to the file system metaReclaimStep at a
// time, down to metaReclaimSlack.
func TestMetaGivesBackFreePages(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "meta.db")
	// A meta.db from before: every migration, no auto-vacuum.
	db, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`PRAGMA auto_vacuum = NONE`, `VACUUM`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	var mode int
	if err := raw.QueryRow(`PRAGMA auto_vacuum`).Scan(&mode); err != nil || mode != 0 {
		t.Fatalf("auto_vacuum of the old file = %d, %v", mode, err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pragma := func(name string) int64 {
		t.Helper()
		var v int64
		if err := db.meta.w.QueryRow(`PRAGMA ` + name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if m := pragma("auto_vacuum"); m != 2 {
		t.Fatalf("auto_vacuum after open = %d, want 2 (incremental)", m)
	}
	// ~40 MiB of detection state, then deleted: its pages go free.
	puts := map[string][]byte{}
	var keys []string
	pad := strings.Repeat("x", 16<<10)
	for i := range 2600 {
		k := fmt.Sprintf("k%05d", i)
		puts[k] = []byte(pad + k)
		keys = append(keys, k)
	}
	if err := db.SaveState(ctx, "test", puts, nil); err != nil {
		t.Fatal(err)
	}
	peak := pragma("page_count")
	if err := db.SaveState(ctx, "test", nil, keys); err != nil {
		t.Fatal(err)
	}
	free := pragma("freelist_count")
	if free < metaReclaimSlack+2*metaReclaimStep {
		t.Fatalf("the delete freed %d pages; the test needs more than %d", free, metaReclaimSlack+2*metaReclaimStep)
	}
	n, err := db.reclaimMeta(ctx)
	if err != nil || n != metaReclaimStep {
		t.Fatalf("first reclaim gave back %d pages, %v; want %d", n, err, metaReclaimStep)
	}
	if got := pragma("page_count"); got > peak-metaReclaimStep || got < peak-metaReclaimStep-metaReclaimStep/100 {
		t.Fatalf("pages after the first reclaim = %d, want about %d (peak %d less one step)", got, peak-metaReclaimStep, peak)
	}
	for range 100 {
		if n, err := db.reclaimMeta(ctx); err != nil {
			t.Fatal(err)
		} else if n == 0 {
			break
		}
	}
	if free := pragma("freelist_count"); free != metaReclaimSlack {
		t.Fatalf("free pages after reclaim = %d, want the slack %d", free, metaReclaimSlack)
	}
	if _, err := db.meta.w.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if limit := int64(2*metaReclaimSlack) * 4096; st.Size() > limit {
		t.Fatalf("meta.db is %d bytes after the delete (peak %d pages); want ≤ %d", st.Size(), peak, limit)
	}
	// The store still writes, into the slack.
	if err := db.SaveState(ctx, "test", map[string][]byte{"after": []byte("v")}, nil); err != nil {
		t.Fatal(err)
	}
	if v, err := db.GetState(ctx, "test", "after"); err != nil || string(v) != "v" {
		t.Fatalf("state after reclaim: %q %v", v, err)
	}
}
