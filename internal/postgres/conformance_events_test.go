package postgres_test

import (
	"testing"

	"github.com/vigilhq/vigil/internal/query"
	"github.com/vigilhq/vigil/internal/storetest"
)

// TestConformanceEvents runs the conformance suite's event and query
// contracts against the PostgreSQL event store.
func TestConformanceEvents(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		s := open(t)
		return storetest.Backend{Events: s, Query: query.NewRunner(s, query.Options{})}
	})
}
