package sqlite

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// TestPartitionInUseNeverClosed holds more partitions than the open bound:
// none of them may be closed under its holder, and the set shrinks back to
// the bound as they are released, least recently used first.
func TestPartitionInUseNeverClosed(t *testing.T) {
	ctx := t.Context()
	db, err := Open(ctx, Options{Dir: t.TempDir(), MaxOpenPartitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := db.Events()
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var held []*partition
	for d := range 4 {
		idx := s.index(day.Add(time.Duration(d) * 24 * time.Hour).UnixNano())
		p, err := s.acquire(ctx, idx, true)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, p)
	}
	if n := s.OpenPartitions(); n != 4 {
		t.Fatalf("%d partitions open while 4 are held, want 4", n)
	}
	for _, p := range held {
		if err := p.f.r.PingContext(ctx); err != nil {
			t.Fatalf("held partition %s was closed: %v", p.path, err)
		}
	}
	for _, p := range held {
		s.release(p)
	}
	if n := s.OpenPartitions(); n != 2 {
		t.Fatalf("%d partitions open after release, want the bound 2", n)
	}
	// The two released last stay open; the first two were closed.
	s.mu.Lock()
	_, open2 := s.open[held[2].idx]
	_, open3 := s.open[held[3].idx]
	s.mu.Unlock()
	if !open2 || !open3 {
		t.Fatal("the most recently used partitions were closed")
	}
	if err := held[0].f.r.PingContext(ctx); err == nil {
		t.Fatal("the least recently used partition is still open")
	}
}

// TestDictionaryCap is issue 9's unbounded interning: every distinct user
// agent and client geo string used to join its partition's in-memory
// dictionary. Past the cap they are stored inline; the dictionary stays at
// the cap and every value reads back, before and after reopening.
func TestDictionaryCap(t *testing.T) {
	const dictCap, n = 100, 3000
	ctx := t.Context()
	dir := t.TempDir()
	db, err := Open(ctx, Options{Dir: dir, DictionaryCap: dictCap})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	ua := func(i int) string { return fmt.Sprintf("Mozilla/5.0 (X11; Linux) Agent/%d", i) }
	city := func(i int) string { return fmt.Sprintf("City %d", i) }
	evs := make([]audit.Event, n)
	for i := range evs {
		evs[i] = audit.Event{Tenant: "a", ID: fmt.Sprintf("e%04d", i), Action: audit.ActionLoginSuccess,
			Time: day.Add(time.Duration(i) * time.Second), Actor: audit.Actor{ID: "alice"},
			Context: audit.Context{UserAgent: ua(i), Geo: &audit.ClientGeo{Country: "DE", City: city(i)}}}
	}
	// Several transactions, so the cap holds across commits too.
	for i := 0; i < n; i += 500 {
		if err := db.Events().InsertEvents(ctx, evs[i:i+500]); err != nil {
			t.Fatal(err)
		}
	}
	dictSize := func(db *DB) (entries, bytes int) {
		p, err := db.Events().acquire(ctx, db.Events().index(day.UnixNano()), false)
		if err != nil || p == nil {
			t.Fatalf("acquire: %v", err)
		}
		defer db.Events().release(p)
		p.dmu.RLock()
		defer p.dmu.RUnlock()
		for _, s := range p.names[1:] {
			bytes += len(s)
		}
		return len(p.names) - 1, bytes
	}
	// The cap, plus the tenant and action, which are always interned.
	if got, b := dictSize(db); got > dictCap+2 {
		t.Fatalf("dictionary holds %d entries (%d bytes), cap %d", got, b, dictCap)
	}
	readBack := func(db *DB) {
		t.Helper()
		seen := 0
		cur := ""
		for {
			page, err := db.Events().SearchEvents(ctx, audit.EventFilter{Tenant: "a", Limit: audit.MaxPageSize, Cursor: cur})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page.Events {
				var i int
				if _, err := fmt.Sscanf(e.ID, "e%d", &i); err != nil {
					t.Fatal(err)
				}
				if e.Context.UserAgent != ua(i) || e.Context.Geo == nil || e.Context.Geo.City != city(i) || e.Context.Geo.Country != "DE" {
					t.Fatalf("event %s read back with %q, %+v", e.ID, e.Context.UserAgent, e.Context.Geo)
				}
				seen++
			}
			if page.Next == "" {
				break
			}
			cur = page.Next
		}
		if seen != n {
			t.Fatalf("read back %d events, want %d", seen, n)
		}
	}
	readBack(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(ctx, Options{Dir: dir, DictionaryCap: dictCap})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	readBack(db)
	if got, _ := dictSize(db); got > dictCap+2 {
		t.Fatalf("reloaded dictionary holds %d entries, cap %d", got, dictCap)
	}
}

// TestWarmPartitionCacheIsBounded: the writers of the two partitions
// inserted into last get the larger page cache; a third takes it from the
// least recent of them, and a closed partition leaves the warm set. So a
// tenant that writes across many days holds at most two large caches.
func TestWarmPartitionCacheIsBounded(t *testing.T) {
	ctx := t.Context()
	db, err := Open(ctx, Options{Dir: t.TempDir(), MaxOpenPartitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := db.Events()
	day := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	n := 0
	insert := func(d int) {
		t.Helper()
		n++
		ev := audit.Event{Tenant: "a", ID: fmt.Sprintf("e%04d", n), Action: audit.ActionLoginSuccess,
			Time: day.Add(time.Duration(d) * 24 * time.Hour)}
		if err := s.InsertEvents(ctx, []audit.Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	// caches returns the writer cache (KiB) of each open partition by day,
	// once the background changes have settled.
	caches := func(want map[int]int) {
		t.Helper()
		var got map[int]int
		for range 200 {
			got = map[int]int{}
			s.mu.Lock()
			open := make([]*partition, 0, len(s.open))
			for _, p := range s.open {
				open = append(open, p)
			}
			s.mu.Unlock()
			for _, p := range open {
				var size int
				if err := p.f.w.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&size); err != nil {
					t.Fatal(err)
				}
				got[int(p.idx-s.index(day.UnixNano()))] = -size
			}
			if fmt.Sprint(got) == fmt.Sprint(want) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("writer caches (KiB by day) %v, want %v", got, want)
	}
	const warm, cold = warmCacheKiB, pageCacheKiB
	insert(0)
	insert(1)
	caches(map[int]int{0: warm, 1: warm})
	insert(2)
	caches(map[int]int{0: cold, 1: warm, 2: warm})
	insert(0)
	caches(map[int]int{0: warm, 1: cold, 2: warm})
	// A fourth day closes the least recently used partition (day 1, the
	// bound is 3 open) and takes the warm cache from day 2.
	insert(3)
	caches(map[int]int{0: warm, 2: cold, 3: warm})
	s.mu.Lock()
	nw := len(s.warm)
	s.mu.Unlock()
	if nw != warmPartitions {
		t.Fatalf("%d partitions in the warm set, want %d", nw, warmPartitions)
	}
}
