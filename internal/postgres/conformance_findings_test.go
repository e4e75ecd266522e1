package postgres_test

import (
	"testing"

	"github.com/vigilhq/vigil/internal/storetest"
)

// TestConformanceFindings runs the conformance suite's finding, incident,
// finding retention, resolution and derived-rewrite tests on PostgreSQL.
func TestConformanceFindings(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		s := open(t)
		return storetest.Backend{Findings: s, Incidents: s}
	})
}
