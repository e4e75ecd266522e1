package natsstream

import "testing"

// TestWakeConcernsTheNamedPartitions: an announcement wakes the waiters of
// the whole stream and of the partitions it names, not those of other
// partitions; one naming none (an earlier version's) wakes every waiter.
func TestWakeConcernsTheNamedPartitions(t *testing.T) {
	s := &Stream{changed: make(chan struct{}), partChanged: make([]chan struct{}, 4)}
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	whole, p1, p3 := s.changedChan(-1), s.changedChan(1), s.changedChan(3)
	s.wake([]byte("3,0"))
	if !closed(whole) || !closed(p3) || closed(p1) {
		t.Fatalf("an announcement of partitions 3 and 0 woke: whole %v, p1 %v, p3 %v; want whole and p3", closed(whole), closed(p1), closed(p3))
	}
	p3 = s.changedChan(3)
	s.wake(nil)
	if !closed(p1) || !closed(p3) {
		t.Fatal("an announcement naming no partition did not wake every partition's waiters")
	}
	p2 := s.changedChan(2)
	s.wake([]byte("garbage"))
	if !closed(p2) {
		t.Fatal("an announcement that cannot be read did not wake every waiter")
	}
}
