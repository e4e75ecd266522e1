package postgres_test

import (
	"testing"

	"github.com/vigilhq/vigil/internal/postgres"
	"github.com/vigilhq/vigil/internal/postgres/pgtest"
	"github.com/vigilhq/vigil/internal/query"
	"github.com/vigilhq/vigil/internal/storetest"
)

// TestConformance runs the whole storage conformance suite, the query
// language's included, on the PostgreSQL store: every contract the embedded
// store passes. (The ingest stream stays on the node's disk, so Stream is
// not part of this backend.)
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		url, schema := pgtest.Schema(t)
		var current *postgres.Store
		openStore := func(t *testing.T) storetest.Backend {
			s, err := postgres.Open(t.Context(), postgres.Options{URL: url, Schema: schema, Migrate: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			current = s
			return backend(s)
		}
		b := openStore(t)
		b.Reopen = func(t *testing.T) storetest.Backend {
			if err := current.Close(); err != nil {
				t.Fatal(err)
			}
			return openStore(t)
		}
		return b
	})
}

func backend(s *postgres.Store) storetest.Backend {
	return storetest.Backend{
		Events: s, Tenants: s, Keys: s, Findings: s, Incidents: s, State: s, Rules: s, Actions: s, Integrity: s,
		Viewers: s, Searches: s, Alerts: s, SIEM: s, Query: query.NewRunner(s, query.Options{}),
	}
}
