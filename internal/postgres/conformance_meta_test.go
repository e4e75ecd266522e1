package postgres_test

import (
	"testing"

	"github.com/vigilhq/vigil/internal/storetest"
)

// TestConformanceMeta runs the conformance suite over the metadata stores:
// tenants, keys, detection state, rules, integrity, viewer tokens and
// saved searches.
func TestConformanceMeta(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		s := open(t)
		return storetest.Backend{Tenants: s, Keys: s, State: s, Rules: s, Integrity: s, Viewers: s, Searches: s}
	})
}
