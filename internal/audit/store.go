package audit

import (
	"context"
	"net/netip"
	"time"
)

// MaxPageSize is the hard cap on one page of search results.
const MaxPageSize = 1000

// DefaultPageSize is the page size when a filter gives none.
const DefaultPageSize = 100

// EventFilter selects events. Zero fields do not filter. Every filter is
// scoped: either to Tenant, or — only for operator callers, decided by the
// API layer — to all tenants with AllTenants set. A filter with neither is
// an error, so no code path reads across tenants by accident.
type EventFilter struct {
	Tenant     string
	AllTenants bool

	// Since is inclusive, Until exclusive.
	Since, Until time.Time
	// Action matches exactly, or as a prefix when it ends in ".*"
	// ("auth.*" matches auth.login.success).
	Action    string
	ActorID   string
	TargetID  string
	SessionID string
	// IP matches addresses within the prefix; a single address is a /32 or /128.
	IP      netip.Prefix
	Outcome Outcome
	// Country (ISO alpha-2), ASN, List (an IP-list name) and UAClass filter on enrichment.
	Country string
	ASN     uint32
	List    string
	UAClass string
	// Text is free text matched case-insensitively within metadata values.
	Text string

	// Limit is the page size, DefaultPageSize when 0, capped at MaxPageSize.
	Limit int
	// Cursor continues a previous page; it is opaque to callers.
	Cursor string
}

// EventPage is one page of search results, newest first. Next is the cursor
// of the following page, "" on the last.
type EventPage struct {
	Events []Event
	Next   string
}

// EventStore keeps accepted events for search.
//
// Contract:
//   - InsertEvents is idempotent on (Tenant, ID): a repeated event is
//     skipped, not an error, and not updated. It is atomic per call.
//   - SearchEvents returns events newest first, ordered by (Time, ID)
//     descending, with keyset pagination: a cursor stays valid while new
//     events arrive and never yields an event twice. A malformed cursor is
//     EINVALID. A filter without Tenant or AllTenants is EINVALID.
//   - GetEvent returns ENOTFOUND when no such event exists in that tenant.
//   - Safe for concurrent use.
type EventStore interface {
	InsertEvents(ctx context.Context, events []Event) error
	GetEvent(ctx context.Context, tenant, id string) (*Event, error)
	SearchEvents(ctx context.Context, f EventFilter) (*EventPage, error)
}

// EventKey names one event: ids are unique per tenant.
type EventKey struct{ Tenant, ID string }

// StoredReceipts is an optional capability of event stores: for those of
// keys whose events are stored, the ReceivedAt of the stored copy. A
// pipeline reading a WindowedDedupe stream uses it to tell a replay of
// the record it stored (same receipt) from a late duplicate the client
// sent again (another receipt), which it drops.
type StoredReceipts interface {
	StoredReceipts(ctx context.Context, keys []EventKey) (map[EventKey]time.Time, error)
}

// Pinger is an optional capability of stores: a cheap readiness check.
type Pinger interface {
	Ping(ctx context.Context) error
}

// SizeReporter is an optional capability of stores: bytes used on disk.
type SizeReporter interface {
	DiskBytes() (int64, error)
}
