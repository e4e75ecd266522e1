// Package lru is a bounded, sharded least-recently-used cache for the
// enrichment hot path: per-IP and per-user-agent lookup results.
//
// The cache is safe for concurrent use. It is split into shards, each with
// its own lock, so that lookups from many ingest goroutines rarely contend.
// Entries live in a preallocated slice per shard; once a shard is full,
// adding evicts its least recently used entry and reuses the slot, so a
// warm cache does not allocate.
package lru

import "sync"

// shardCount is a power of two so the shard index is a mask of the hash.
const shardCount = 16

// Cache is a bounded LRU map from K to V. The zero value is not usable;
// call New.
type Cache[K comparable, V any] struct {
	hash   func(K) uint64
	shards [shardCount]shard[K, V]
}

type entry[K comparable, V any] struct {
	key        K
	val        V
	prev, next int32
}

type shard[K comparable, V any] struct {
	mu      sync.Mutex
	index   map[K]int32
	entries []entry[K, V]
	cap     int
	head    int32 // most recently used, -1 when empty
	tail    int32 // least recently used, -1 when empty
	hits    uint64
	misses  uint64
	_       [40]byte // keep neighbouring shards' locks off one cache line
}

// New returns a cache holding at most about size entries (rounded up to a
// multiple of the shard count). hash spreads keys over shards and must be
// deterministic for equal keys. A size below 1 is treated as 1 per shard.
func New[K comparable, V any](size int, hash func(K) uint64) *Cache[K, V] {
	per := (size + shardCount - 1) / shardCount
	if per < 1 {
		per = 1
	}
	c := &Cache[K, V]{hash: hash}
	for i := range c.shards {
		s := &c.shards[i]
		s.index = make(map[K]int32, per)
		s.cap = per
		s.head, s.tail = -1, -1
	}
	return c
}

func (c *Cache[K, V]) shard(k K) *shard[K, V] {
	h := c.hash(k)
	h ^= h >> 29 // fold high bits in: callers' hashes may vary only there
	return &c.shards[h&(shardCount-1)]
}

// Get returns the value cached for k and marks it most recently used.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	s := c.shard(k)
	s.mu.Lock()
	i, ok := s.index[k]
	if !ok {
		s.misses++
		s.mu.Unlock()
		var zero V
		return zero, false
	}
	s.hits++
	s.moveToFront(i)
	v := s.entries[i].val
	s.mu.Unlock()
	return v, true
}

// Add caches v under k, evicting the shard's least recently used entry
// when the shard is full.
func (c *Cache[K, V]) Add(k K, v V) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.index[k]; ok {
		s.entries[i].val = v
		s.moveToFront(i)
		return
	}
	var i int32
	if len(s.entries) < s.cap {
		s.entries = append(s.entries, entry[K, V]{prev: -1, next: -1})
		i = int32(len(s.entries) - 1)
	} else {
		i = s.tail
		s.unlink(i)
		delete(s.index, s.entries[i].key)
	}
	s.entries[i].key, s.entries[i].val = k, v
	s.index[k] = i
	s.pushFront(i)
}

// Len returns the number of cached entries.
func (c *Cache[K, V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.index)
		s.mu.Unlock()
	}
	return n
}

// Stats returns the number of Get calls that hit and missed since New.
func (c *Cache[K, V]) Stats() (hits, misses uint64) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		hits += s.hits
		misses += s.misses
		s.mu.Unlock()
	}
	return hits, misses
}

func (s *shard[K, V]) moveToFront(i int32) {
	if s.head == i {
		return
	}
	s.unlink(i)
	s.pushFront(i)
}

func (s *shard[K, V]) unlink(i int32) {
	e := &s.entries[i]
	if e.prev >= 0 {
		s.entries[e.prev].next = e.next
	} else {
		s.head = e.next
	}
	if e.next >= 0 {
		s.entries[e.next].prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

func (s *shard[K, V]) pushFront(i int32) {
	e := &s.entries[i]
	e.prev, e.next = -1, s.head
	if s.head >= 0 {
		s.entries[s.head].prev = i
	}
	s.head = i
	if s.tail < 0 {
		s.tail = i
	}
}
