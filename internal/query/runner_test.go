package query_test

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/query"
	"github.com/vigilhq/vigil/internal/storetest"
)

// memStore is the simplest store the engine can read: a slice, with
// nothing pushed down. Every filter term is decided by the engine's Match,
// and every stats stage is grouped in Go.
type memStore struct {
	mu  sync.Mutex
	evs []audit.Event
}

var _ audit.EventScanner = (*memStore)(nil)

func (m *memStore) InsertEvents(_ context.Context, evs []audit.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.evs = append(m.evs, evs...)
	return nil
}

func (m *memStore) GetEvent(context.Context, string, string) (*audit.Event, error) {
	return nil, errors.New("memStore keeps events for queries only")
}

func (m *memStore) SearchEvents(context.Context, audit.EventFilter) (*audit.EventPage, error) {
	return nil, errors.New("memStore keeps events for queries only")
}

func (m *memStore) ScanEvents(ctx context.Context, s audit.EventScan, fn func(*audit.EventRow) (bool, error)) (audit.ScanStats, error) {
	var st audit.ScanStats
	if err := s.Scope.Validate(); err != nil {
		return st, err
	}
	m.mu.Lock()
	evs := slices.Clone(m.evs)
	m.mu.Unlock()
	if s.Ordered {
		slices.SortFunc(evs, func(x, y audit.Event) int {
			return cmp.Or(y.Time.Compare(x.Time), strings.Compare(y.ID, x.ID), strings.Compare(y.Tenant, x.Tenant))
		})
	}
	for i := range evs {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		e := evs[i]
		if (!s.Scope.AllTenants && e.Tenant != s.Scope.Tenant) || e.Time.Before(s.Since) || !e.Time.Before(s.Until) {
			continue
		}
		st.Scanned++
		if s.MaxScanned > 0 && st.Scanned > s.MaxScanned {
			return st, audit.FieldErrorf("q", "the query examined more than %d stored events, its limit", s.MaxScanned)
		}
		row := &audit.EventRow{Event: e}
		if s.Match != nil && !s.Match(row) {
			continue
		}
		st.Matched++
		if stop, err := fn(row); stop || err != nil {
			return st, err
		}
	}
	return st, nil
}

// TestConformance runs the storage conformance suite's query-language part
// on memStore: the engine alone, evaluating everything in Go, must give
// the answers the suite computes independently.
func TestConformance(t *testing.T) {
	storetest.RunQuery(t, func(t *testing.T) storetest.Backend {
		m := &memStore{}
		return storetest.Backend{Events: m, Query: query.NewRunner(m, query.Options{})}
	})
}
