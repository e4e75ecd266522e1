package lru_test

import (
	"hash/maphash"
	"strconv"
	"sync"
	"testing"

	"github.com/vigilhq/vigil/internal/enrich/lru"
)

func strHash() func(string) uint64 {
	seed := maphash.MakeSeed()
	return func(s string) uint64 { return maphash.String(seed, s) }
}

func TestGetAdd(t *testing.T) {
	c := lru.New[string, int](32, strHash())
	if _, ok := c.Get("a"); ok {
		t.Fatal("empty cache answered")
	}
	c.Add("a", 1)
	c.Add("a", 2)
	if v, ok := c.Get("a"); !ok || v != 2 {
		t.Fatalf("Get(a) = %d, %v; want 2, true", v, ok)
	}
	if h, m := c.Stats(); h != 1 || m != 1 {
		t.Fatalf("Stats = %d hits %d misses; want 1, 1", h, m)
	}
}

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	// One key space that all lands in one shard, capacity 2 per shard.
	c := lru.New[string, int](32, func(string) uint64 { return 0 })
	c.Add("a", 1)
	c.Add("b", 2)
	c.Get("a") // a is now more recent than b
	c.Add("c", 3)
	if _, ok := c.Get("b"); ok {
		t.Error("b survived; it was the least recently used")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := c.Get(k); !ok {
			t.Errorf("%s was evicted", k)
		}
	}
	if c.Len() != 2 {
		t.Errorf("Len = %d, want 2", c.Len())
	}
}

func TestBounded(t *testing.T) {
	c := lru.New[string, int](100, strHash())
	for i := range 10000 {
		c.Add(strconv.Itoa(i), i)
	}
	if n := c.Len(); n > 112 { // 16 shards × ceil(100/16)
		t.Fatalf("Len = %d, exceeds bound", n)
	}
	// The most recent key is always present.
	if v, ok := c.Get("9999"); !ok || v != 9999 {
		t.Fatalf("latest key missing")
	}
}

func TestConcurrent(t *testing.T) {
	c := lru.New[string, int](64, strHash())
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				k := strconv.Itoa((i * (g + 1)) % 200)
				if v, ok := c.Get(k); ok && strconv.Itoa(v) != k {
					t.Errorf("Get(%s) = %d", k, v)
					return
				}
				n, _ := strconv.Atoi(k)
				c.Add(k, n)
			}
		})
	}
	wg.Wait()
}

func BenchmarkGetHit(b *testing.B) {
	c := lru.New[string, int](1024, strHash())
	c.Add("Mozilla/5.0 (X11; Linux x86_64)", 1)
	b.ReportAllocs()
	for b.Loop() {
		c.Get("Mozilla/5.0 (X11; Linux x86_64)")
	}
}
