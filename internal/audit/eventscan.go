package audit

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// This file is the contract between the query engine (internal/query) and
// the stores it reads, in the way PromQL's engine reads storage.Querier:
// the engine asks a store to scan events with a pushed-down plan (scope,
// time range, the filter tree, the fields it needs, order and limit) and
// evaluates everything else itself — the filter terms the store cannot
// decide, stats, sort, head and fields. A store that can group and count
// natively says so by implementing EventGrouper; otherwise the engine
// groups in Go. Every backend therefore answers a query the same way, and
// none of them imports the engine.

// EventScan is what a query asks a store to read.
type EventScan struct {
	// Scope is whose events are read; a store refuses an invalid scope
	// with EINVALID.
	Scope QueryScope
	// Since (inclusive) and Until (exclusive) bound the event time.
	Since, Until time.Time
	// Filter is the predicate tree the rows must satisfy; nil matches every
	// event of the range. A store decides natively what it can (indexes,
	// columns) and asks Match about every row it cannot decide.
	Filter Expr
	// Match decides a row that the store's own evaluation of Filter admits
	// without proving it matches (a hashed id, a field outside the store's
	// columns, free text): the store drops the row when Match returns
	// false. The engine always sets it; nil means every admitted row
	// matches.
	Match func(row *EventRow) bool
	// Fields are the fields the caller reads (query field names, plus "id"
	// and "tenant"); nil means the whole event. A store may leave every
	// other field of the rows zero, which lets it decode less.
	Fields []string
	// Ordered asks for rows newest first: by time, then ID, descending,
	// then by tenant descending across the tenants of an all-tenant scope.
	// A store may meet the all-tenant order only when Limit is set (it
	// merges at most Limit rows per tenant); without a limit an all-tenant
	// scan may come tenant by tenant within each storage partition, the
	// partitions newest first. Unordered rows may come in any order.
	Ordered bool
	// Limit, when positive on an ordered scan, is the most rows the caller
	// will take: a store that merges several sources may read at most
	// Limit matching rows from each.
	Limit int
	// MaxScanned bounds the stored rows the scan may examine, 0 for no
	// bound; beyond it the scan fails with EINVALID saying so.
	MaxScanned int64
	// MaxPartitions bounds the storage partitions (days) the scan may
	// read, 0 for no bound; beyond it the scan fails with EINVALID before
	// reading any.
	MaxPartitions int
}

// ScanStats is the work of one scan or grouping: it adds into QueryStats.
type ScanStats struct {
	// Partitions is the number of storage partitions read.
	Partitions int
	// Scanned is the number of stored rows examined.
	Scanned int64
	// Matched is the number of rows that matched the filter.
	Matched int64
}

// EventRow is one event a scan hands to its caller. Event holds the fields
// the scan asked for (and ID, Tenant, Time, Action always). Metadata is
// decoded lazily, because most queries never read it and its JSON is the
// costliest part of an event: while RawMetadata is not nil it holds the
// metadata's JSON object and Event.Metadata is not yet set.
type EventRow struct {
	Event       Event
	RawMetadata []byte
}

// Metadata returns the event's metadata, decoding RawMetadata on first
// use. A metadata document that does not decode is treated as absent
// (stores write it with json.Marshal, so that only happens on corruption).
func (r *EventRow) Metadata() map[string]any {
	if r.RawMetadata != nil {
		r.Event.Metadata = nil
		if len(r.RawMetadata) > 0 {
			var m map[string]any
			if json.Unmarshal(r.RawMetadata, &m) == nil {
				r.Event.Metadata = m
			}
		}
		r.RawMetadata = nil
	}
	return r.Event.Metadata
}

// Own returns the whole event, safe to keep after the scan's callback
// returns (RawMetadata may alias the store's buffers; Event does not).
func (r *EventRow) Own() Event {
	r.Metadata()
	return r.Event
}

// EventScanner is a store the query engine can read.
//
// Contract:
//   - ScanEvents calls fn for each event of s.Scope in [s.Since, s.Until)
//     that matches s.Filter (deciding natively what it can and asking
//     s.Match about the rest), in the order s.Ordered asks for, and stops
//     when fn returns stop or an error, which it returns.
//   - The row passed to fn, and the memory its RawMetadata points to, are
//     valid only until fn returns; the caller keeps EventRow.Own.
//   - The returned ScanStats count the work done, also on error.
//   - A cancelled ctx stops the scan promptly with ctx's error.
//   - Safe for concurrent use.
type EventScanner interface {
	ScanEvents(ctx context.Context, s EventScan, fn func(row *EventRow) (stop bool, err error)) (ScanStats, error)
}

// EventGrouping asks a store to group the matching events by keys and count
// them natively.
type EventGrouping struct {
	// Scope, Since, Until and Filter select events as in EventScan.
	Scope        QueryScope
	Since, Until time.Time
	Filter       Expr
	// By are the group keys: fields, or time buckets of width Bin aligned
	// to the Unix epoch.
	By []GroupKey
	// MaxGroups bounds the groups one partition may hand out; the engine
	// enforces its own limit on the merged groups.
	MaxGroups int
	// MaxScanned and MaxPartitions are as in EventScan.
	MaxScanned    int64
	MaxPartitions int
}

// EventGroup is one group a store computed. Keys holds a value per key of
// EventGrouping.By, of the type the engine uses for that field (string,
// int64, netip.Addr; time.Time for a bucket's start), nil when the events
// lack it. Count is the number of events, MinTime and MaxTime their
// smallest and largest times. Groups with equal keys may come more than
// once (from different partitions); the caller merges them.
type EventGroup struct {
	Keys             []any
	Count            int64
	MinTime, MaxTime time.Time
}

// ErrNotGrouped is returned by GroupEvents when the store cannot compute a
// grouping exactly; the engine then groups the scanned events itself.
var ErrNotGrouped = errors.New("grouping not supported by the store")

// EventGrouper is an optional capability of an EventScanner: counting
// groups of events inside the store, without handing out each event.
//
// Contract: GroupEvents either answers exactly — every event of the scope
// and range that matches g.Filter is counted in exactly one group — or
// returns ErrNotGrouped before calling fn. Other errors, ScanStats and
// cancellation are as for ScanEvents.
type EventGrouper interface {
	GroupEvents(ctx context.Context, g EventGrouping, fn func(g EventGroup) error) (ScanStats, error)
}
