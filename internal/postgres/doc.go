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
//
// Partitioned detection fences per unit instead (units.go, unitstate.go):
// each detection unit (a stream partition "p0", "p1", …, or
// "installation") is processed by the node holding the unit's advisory
// lock (UnitLocks, one connection per node for all its units). Taking a
// unit increments its epoch in the units table, and the node's checkpoints
// for it go through Store.UnitState, which refuses them (ErrFenced) once
// another node has taken the unit since. Lock keys hash
// "vigil.node.<schema>", "vigil.unit.<schema>.<unit>" and
// "vigil.migrate.<schema>", so they never meet across schemas.
// Every node records a heartbeat in the nodes table (nodes.go) for `vigil
// cluster status`.
package postgres
