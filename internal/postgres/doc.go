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
//
// Nodes on one schema run active/standby (nodelock.go): the node holding
// the schema's node lock is active, the others wait for it (WaitNodeLock).
// Taking over, a node begins a new epoch in the counters table
// (Store.BeginEpoch, epoch.go); its detection checkpoints go through
// Store.FencedState, which refuses them (ErrFenced) once another node has
// begun a later epoch, and its lock refuses to be taken back after one.
// Every node records a heartbeat in the nodes table (nodes.go) for `vigil
// cluster status`.
package postgres
