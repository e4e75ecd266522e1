package sqlite_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// BenchmarkAppendBatch1000IDs is BenchmarkAppendBatch1000 with other kinds
// of event ids, since the idempotency key's position in the dedupe b-tree
// follows the id: "ulid-16-clients" interleaves ULIDs of 16 independent
// generators (16 clients sending their own ids), "uuidv4" sends random ids,
// whose keys land on a random b-tree page each.
func BenchmarkAppendBatch1000IDs(b *testing.B) {
	for _, kind := range []string{"ulid-16-clients", "uuidv4"} {
		b.Run(kind, func(b *testing.B) {
			db := benchOpen(b, b.TempDir(), sqlite.Options{MaxBacklog: -1})
			pool := eventPool(20_000)
			gens := make([]audit.IDGenerator, 16)
			batch := make([]audit.Event, 1000)
			b.ReportAllocs()
			n := 0
			start, cpu0 := time.Now(), cpuTime()
			for b.Loop() {
				for i := range batch {
					batch[i] = pool[(n+i)%len(pool)]
					switch kind {
					case "uuidv4":
						var u [16]byte
						_, _ = rand.Read(u[:])
						u[6], u[8] = u[6]&0x0f|0x40, u[8]&0x3f|0x80
						batch[i].ID = fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
					default:
						batch[i].ID = gens[(n+i)%len(gens)].New(time.Now())
					}
				}
				if _, err := db.Stream().Append(context.Background(), ptrs(batch)); err != nil {
					b.Fatal(err)
				}
				n += len(batch)
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
			reportCPU(b, cpu0, n)
		})
	}
}
