package mock

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.StateStore = (*StateStore)(nil)

// StateStore is an in-memory audit.StateStore for tests. It honours the
// contract (ENOTFOUND for a missing key, atomic SaveState, ordered
// ScanState) and copies values in and out so callers cannot alias them.
// SaveErr, when set, makes SaveState fail with it (to test error paths).
// Safe for concurrent use.
type StateStore struct {
	mu      sync.Mutex
	data    map[string]map[string][]byte
	SaveErr error
	// Saves counts successful SaveState calls.
	Saves int
}

// NewStateStore returns an empty store.
func NewStateStore() *StateStore {
	return &StateStore{data: map[string]map[string][]byte{}}
}

// GetState implements audit.StateStore.
func (s *StateStore) GetState(_ context.Context, ns, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[ns][key]
	if !ok {
		return nil, audit.Errorf(audit.ENOTFOUND, "state %s/%s not found", ns, key)
	}
	return slices.Clone(v), nil
}

// SaveState implements audit.StateStore.
func (s *StateStore) SaveState(_ context.Context, ns string, puts map[string][]byte, deletes []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.SaveErr != nil {
		return s.SaveErr
	}
	if s.data == nil {
		s.data = map[string]map[string][]byte{}
	}
	m := s.data[ns]
	if m == nil {
		m = map[string][]byte{}
		s.data[ns] = m
	}
	for _, k := range deletes {
		delete(m, k)
	}
	for k, v := range puts {
		m[k] = slices.Clone(v)
	}
	s.Saves++
	return nil
}

// ScanState implements audit.StateStore.
func (s *StateStore) ScanState(_ context.Context, ns string, fn func(key string, value []byte) error) error {
	s.mu.Lock()
	m := maps.Clone(s.data[ns])
	s.mu.Unlock()
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if err := fn(k, slices.Clone(m[k])); err != nil {
			return err
		}
	}
	return nil
}

// Len returns the number of keys in a namespace.
func (s *StateStore) Len(ns string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.data[ns])
}

// Bytes returns the total size of a namespace's values.
func (s *StateStore) Bytes(ns string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.data[ns] {
		n += len(v)
	}
	return n
}
