package postgres

import (
	"testing"
	"time"
)

// TestPartitionListKeepsNewDays: a catalog read that began before this
// store created a day's partition does not drop it from the list; one that
// began after it is the truth.
func TestPartitionListKeepsNewDays(t *testing.T) {
	var p partitions
	readBegan := time.Now()
	time.Sleep(time.Millisecond)
	p.add(20_000) // created while the read ran
	p.set([]int64{19_998, 19_999}, readBegan)
	if !p.has(20_000) || !p.has(19_999) {
		t.Fatalf("after a read that began before the creation: %v", p.days)
	}
	time.Sleep(time.Millisecond)
	p.set([]int64{19_999}, time.Now()) // a later read: 20,000 was dropped by another node
	if p.has(20_000) || p.has(19_998) || !p.has(19_999) {
		t.Fatalf("after a later read: %v", p.days)
	}
	p.add(20_001)
	p.remove(20_001)
	p.set(nil, readBegan)
	if p.has(20_001) {
		t.Fatalf("a day this store dropped came back: %v", p.days)
	}
}
