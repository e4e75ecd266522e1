package audit

import (
	"context"
	"time"
)

// This file holds the contract of running an investigation query (a parsed
// *Query) against stored events: the caller's scope, the result table and
// the streaming sink used by exports. The HTTP API depends on these types
// only; a storage adapter implements QueryRunner.

// QueryScope is whose events a query may read: exactly one tenant, or —
// only for operator callers, decided by the API layer — every tenant with
// AllTenants set. A scope with neither is EINVALID, so no code path reads
// across tenants by accident.
type QueryScope struct {
	Tenant     string
	AllTenants bool
}

// Validate checks that the scope names a tenant or is explicitly all-tenant.
func (s QueryScope) Validate() error {
	switch {
	case s.Tenant == "" && !s.AllTenants:
		return FieldErrorf("tenant", "a query needs a tenant")
	case s.Tenant != "" && s.AllTenants:
		return FieldErrorf("tenant", "a query scope is one tenant or all tenants, not both")
	case s.Tenant != "" && !ValidTenantID(s.Tenant):
		return FieldErrorf("tenant", "tenant must be 1-64 letters, digits, '-', '_' or '.'")
	}
	return nil
}

// QueryColumn is one output column of a query. Type is the type of its
// values: FieldText (string), FieldNumber (int64), FieldIP (netip.Addr) or
// FieldTime (time.Time). List-valued fields (list, risk.reason) are
// FieldText columns whose values are []string.
type QueryColumn struct {
	Name string    `json:"name"`
	Type FieldType `json:"type"`
}

// QueryStats says how much work a query did.
type QueryStats struct {
	// Partitions is the number of storage partitions (days) read.
	Partitions int `json:"partitions"`
	// Scanned is the number of stored rows examined.
	Scanned int64 `json:"scanned"`
	// Matched is the number of events that matched the filter.
	Matched int64 `json:"matched"`
	// Rows is the number of result rows.
	Rows int64 `json:"rows"`
	// Truncated reports that the result was cut at the row limit
	// (query.MaxRows) although more rows matched.
	Truncated bool `json:"truncated,omitempty"`
	// Elapsed is the wall time of the run.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// QueryResult is the table a query produced. Rows[i][j] is the value of
// Columns[j] (nil when the event has no such value). For a query whose rows
// are events and that has no fields stage, Events[i] is the whole event of
// Rows[i]; otherwise Events is nil.
type QueryResult struct {
	Columns []QueryColumn
	Rows    [][]any
	Events  []Event
	Stats   QueryStats
}

// QuerySink receives a query's rows one at a time, for exports. Columns is
// called once before the first Row. ev is the whole event when the row is
// an event (no stats stage), nil otherwise; the sink must not keep values
// or ev after Row returns, since the runner reuses them. An error stops the
// query and is returned by ExportQuery.
type QuerySink interface {
	Columns(cols []QueryColumn) error
	Row(values []any, ev *Event) error
}

// QueryRunner runs parsed queries on stored events.
//
// Contract:
//   - Every statement is scoped by QueryScope (EINVALID when invalid) and by
//     the query's [Since, Until) range; a query never sees another tenant's
//     events unless the scope is AllTenants.
//   - RunQuery returns at most query.MaxRows rows (setting
//     Stats.Truncated when more matched) and fails with EINVALID when a
//     stats stage exceeds its group limit or the query exceeds the runner's
//     scan, partition or time limits; the message says which and how to
//     narrow the query.
//   - ExportQuery streams rows to the sink in the same order as RunQuery
//     would, without the MaxRows cap on event rows (a head stage still
//     applies), in memory independent of the number of rows; except that
//     an all-tenant export of events with no head may come tenant by
//     tenant within each storage partition (EventScan.Ordered).
//   - Both stop promptly when ctx is cancelled and return its error.
//   - Safe for concurrent use.
type QueryRunner interface {
	RunQuery(ctx context.Context, scope QueryScope, q *Query) (*QueryResult, error)
	ExportQuery(ctx context.Context, scope QueryScope, q *Query, sink QuerySink) (QueryStats, error)
}
