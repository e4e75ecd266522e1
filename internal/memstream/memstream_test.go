package memstream_test

import (
	"testing"

	"github.com/vigilhq/vigil/internal/memstream"
	"github.com/vigilhq/vigil/internal/storetest"
)

// TestConformance runs the stream part of the shared conformance suite (the
// durability tests are skipped: memstream keeps nothing across a restart).
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		s := memstream.New(memstream.Options{})
		t.Cleanup(func() { s.Close() })
		return storetest.Backend{Stream: s}
	})
}
