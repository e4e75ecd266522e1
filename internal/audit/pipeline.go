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

// StagedCheckpointer is an optional capability of a Detector: it captures
// its state at once and makes it durable later, so a consumer can save the
// state after the events it covers are stored without pausing detection.
// PrepareCheckpoint returns the save; saves must run in the order they were
// prepared, each until it succeeds (a save holds only what changed since
// the one before), and a consumer that cannot complete one must not save
// or commit anything after it.
type StagedCheckpointer interface {
	PrepareCheckpoint(ctx context.Context) (save func(context.Context) error, err error)
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

// EvidenceReceipts is an optional capability of a Detector: for the
// findings of its last Process, Advance or Flush result, index for index,
// the receive time (Event.ReceivedAt) of the evidence event whose arrival
// last changed each finding. The pipeline measures finding latency from it
// per finding, however long the detector held the event back.
type EvidenceReceipts interface {
	EvidenceReceived() []time.Time
}

// ActionFilter is an optional capability of a Detector: Evaluates reports
// whether any of its rules looks at events of action. A pipeline whose
// events are stored elsewhere (partitioned detection's installation-wide
// pipeline) enriches only the events its detector evaluates: the others
// only move their tenant's clock, which enrichment does not change.
type ActionFilter interface {
	Evaluates(action string) bool
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
	Tenant   string         `json:"tenant"`
	RuleID   string         `json:"rule_id"`
	Disabled bool           `json:"disabled"`
	Params   map[string]any `json:"params,omitempty"`
	// Actions are the response actions (ResponseActionTypes) a new finding
	// of the rule that names an account triggers in this tenant.
	Actions   []string  `json:"actions,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
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

// Egress is one of a tenant's shared egresses as detection sees it: an
// address, /24 (IPv6 /48) or network through which many of the tenant's
// actors log in from far away from their usual places (a corporate VPN or
// SASE gateway). A relay egress does not move an actor for impossible
// travel or concurrent sessions and is no new location.
type Egress struct {
	Kind  string `json:"kind"`  // "ip", "net" or "asn"
	Value string `json:"value"` // 203.0.113.7, 203.0.113.0/24, AS64500
	// FarActors and NearActors count the actors who logged in through it
	// from far from, and near, their usual places (each capped at 64).
	FarActors  int `json:"far_actors"`
	NearActors int `json:"near_actors"`
	Successes  int `json:"successes"`
	Failures   int `json:"failures"`
	// FirstSeen is the event time of its first use from far away (zero for
	// state kept before it was recorded), LastSeen of its last use,
	// LearnedSince of the moment it was learned (zero: not learned).
	FirstSeen    time.Time `json:"first_seen,omitzero"`
	LastSeen     time.Time `json:"last_seen"`
	LearnedSince time.Time `json:"learned_since,omitzero"`
	// Learned: it meets the learning thresholds. Relay: detection treats
	// it as a relay now (learned and not forbidden, or pinned).
	Learned bool `json:"learned"`
	Relay   bool `json:"relay"`
	// Tuning is "pinned" or "forbidden" when one of the tenant's allowlist
	// entries of mode egress or not_egress covers it, else "".
	Tuning string `json:"tuning,omitempty"`
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
