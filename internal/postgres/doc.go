// Package postgres is the PostgreSQL storage adapter: events in
// time-partitioned tables written with COPY, and the findings, incidents,
// detection state, keys, settings and alerting tables beside them, all in
// one schema. It implements the same internal/audit store contracts as the
// embedded SQLite store and passes the same conformance suite
// (internal/storetest).
//
// Times are stored as int64 nanoseconds since the Unix epoch (columns named
// *_ns), so values round-trip exactly; tables that a Citus deployment would
// distribute carry tenant as the first column of their primary key.
//
// The schema is created and upgraded by numbered migrations embedded from
// migrations/, applied in order under an advisory lock so that several
// nodes starting together migrate once.
package postgres
