package postgres_test

import (
	"testing"

	"github.com/vigilhq/vigil/internal/postgres"
	"github.com/vigilhq/vigil/internal/postgres/pgtest"
	"github.com/vigilhq/vigil/internal/storetest"
)

// TestConformanceAlerts runs the conformance suite over the alerting slice:
// webhook subscriptions and outbox, SIEM cursors and response actions.
func TestConformanceAlerts(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		url, schema := pgtest.Schema(t)
		s, err := postgres.Open(t.Context(), postgres.Options{URL: url, Schema: schema, Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return storetest.Backend{Alerts: s, SIEM: s, Actions: s}
	})
}
