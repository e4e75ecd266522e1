// Package sqlite is Vigil's embedded single-node store on SQLite
// (github.com/mattn/go-sqlite3, cgo, WAL mode). One Open gives every
// storage contract of internal/audit:
//
//	db, err := sqlite.Open(ctx, sqlite.Options{Dir: "vigil-data", Logger: log})
//	db.Stream()  // audit.EventStream + StreamStats + Retention: stream.db
//	db.Events()  // audit.EventStore + EventScanner + EventGrouper + Retention + Pinger + SizeReporter: events/*.db
//	db           // Tenant/Key/Finding/State/Rule stores, Pinger, SizeReporter, Retention: meta.db
//
// Files, and why they are separate:
//
//   - stream.db is the acknowledgement point. One committer goroutine
//     gathers concurrent Appends into one transaction (group commit) with
//     synchronous=FULL, so acknowledged == fsynced and 64 clients share one
//     fsync. Idempotency keys live in the same file and transaction.
//   - events/<YYYYMMDDHH>-<N>h.db hold accepted events, one file per
//     partition period of event time (a UTC day by default). Each has small
//     integer-keyed indexes (hashed actor/session/target, action and tenant
//     dictionary ids, 4/16-byte IPs) ending in the time, so the hot indexes of
//     a file stay small, searches walk files newest first with keyset paging,
//     and retention of a whole period is a file delete. Partition files
//     are opened on first use and at most Options.MaxOpenPartitions stay
//     open (least recently used idle ones close; one in use never does), so
//     descriptors and memory do not grow with the length of the history,
//     and Open lists the file names without opening any.
//   - meta.db holds the small, mutable rest.
//
// Every file has embedded, versioned migrations (migrations/<kind>/NNNN_*.sql)
// recorded in its schema_migrations table; Open applies them and Migrate
// re-applies idempotently. Driver errors are translated by SQLite result
// code: unique violation → ECONFLICT, no rows → ENOTFOUND, full disk →
// EUNAVAILABLE; cancelled contexts stay context errors.
//
// Investigation queries run in internal/query, which this package never
// imports: EventStore implements audit.EventScanner (the filter tree
// compiled to each partition's columns and indexes, querysql.go) and
// audit.EventGrouper (GROUP BY on the covering indexes, group.go).
//
// docs/perf/storage.md has the measurements and the reasoning behind the
// layout.
package sqlite
