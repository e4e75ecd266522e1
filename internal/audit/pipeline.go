package audit

import (
	"context"
	"time"
)

// Enricher adds context to an event (geo, network, user agent). It must not
// fail the event: a lookup that cannot answer leaves its fields empty and
// returns nil. An error means the enricher itself is broken (and is counted
// and logged by the caller); the event still proceeds.
type Enricher interface {
	Name() string
	Enrich(ctx context.Context, e *Event) error
}

// Detector evaluates accepted events, in stream order and in event time,
// and returns the findings they open or update. It may set Event.Risk on
// successful logins. Process must be deterministic: the same records in the
// same order from the same state give the same findings. Records whose Seq
// the detector has already processed are skipped, so a replay after a crash
// does not count an event twice.
type Detector interface {
	Process(ctx context.Context, recs []*Record) ([]Finding, error)
	// Checkpoint persists the detector's state (profiles, windows, position).
	Checkpoint(ctx context.Context) error
}

// Advancer is an optional capability of a Detector that holds events back
// to evaluate them in event-time order (see internal/detect). Advance
// evaluates what a consumer that has caught up with the stream at wall
// time now may evaluate (held events older than the detector's allowed
// lateness), so a tenant that went quiet still gets its findings; Flush
// evaluates everything held (the end of a drain or a replay). Both return
// the findings opened or changed, like Process, and change detector state
// that the next Checkpoint persists.
type Advancer interface {
	Advance(ctx context.Context, now time.Time) ([]Finding, error)
	Flush(ctx context.Context) ([]Finding, error)
}

// StateStore is a durable key/value store for detection state: profiles,
// windows, positions. Keys are namespaced.
//
// Contract: GetState returns ENOTFOUND for a missing key; SaveState applies
// all puts and deletes atomically; ScanState visits keys in ascending order
// and stops at the first error fn returns.
type StateStore interface {
	GetState(ctx context.Context, ns, key string) ([]byte, error)
	SaveState(ctx context.Context, ns string, puts map[string][]byte, deletes []string) error
	ScanState(ctx context.Context, ns string, fn func(key string, value []byte) error) error
}

// RuleSetting is one tenant's tuning of one rule.
type RuleSetting struct {
	Tenant    string         `json:"tenant"`
	RuleID    string         `json:"rule_id"`
	Disabled  bool           `json:"disabled"`
	Params    map[string]any `json:"params,omitempty"`
	UpdatedAt time.Time      `json:"updated_at"`
}

// AllowEntry is one allowlisted network of a tenant: an IP, a CIDR or an ASN
// (office egress, corporate VPN) that rules treat as trusted.
//
// Mode says how rules treat it: AllowTrust (the default; "" reads as it)
// trusts it, AllowEgress declares it a shared egress (a corporate gateway:
// its location is not the user's, other rules still apply), AllowNotEgress
// forbids learning it as a shared egress.
type AllowEntry struct {
	Tenant    string    `json:"tenant"`
	Kind      string    `json:"kind"` // "ip", "cidr" or "asn"
	Value     string    `json:"value"`
	Mode      string    `json:"mode"`
	Note      string    `json:"note,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Allowlist entry modes.
const (
	AllowTrust     = "trust"
	AllowEgress    = "egress"
	AllowNotEgress = "not_egress"
)

// RuleStore keeps per-tenant rule tuning.
//
// Contract: PutRuleSetting replaces by (Tenant, RuleID); DeleteRuleSetting
// and DeleteAllowEntry are idempotent; lists are ordered by rule id / value.
type RuleStore interface {
	ListRuleSettings(ctx context.Context, tenant string) ([]RuleSetting, error)
	PutRuleSetting(ctx context.Context, s RuleSetting) error
	DeleteRuleSetting(ctx context.Context, tenant, ruleID string) error
	ListAllowEntries(ctx context.Context, tenant string) ([]AllowEntry, error)
	PutAllowEntry(ctx context.Context, e AllowEntry) error
	DeleteAllowEntry(ctx context.Context, tenant, kind, value string) error
}
