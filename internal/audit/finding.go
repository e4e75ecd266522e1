package audit

import (
	"context"
	"time"
)

// Severity of a finding.
type Severity string

// Severities, lowest first.
const (
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// Rank orders severities: low 1 … critical 4, unknown 0.
func (s Severity) Rank() int {
	switch s {
	case SeverityLow:
		return 1
	case SeverityMedium:
		return 2
	case SeverityHigh:
		return 3
	case SeverityCritical:
		return 4
	}
	return 0
}

// FindingStatus is where a finding is in its lifecycle.
type FindingStatus string

// Finding statuses.
const (
	StatusOpen         FindingStatus = "open"
	StatusAcknowledged FindingStatus = "acknowledged"
	StatusResolved     FindingStatus = "resolved"
)

// Finding is a rule's hit. One attack yields one finding that is updated
// (Count, LastSeen, more Evidence) while it lasts, not thousands.
//
// ID is derived deterministically from the tenant, rule, group key and the
// time the finding opened, so replaying the same events yields the same ids.
// FirstSeen/LastSeen are event times.
type Finding struct {
	ID          string         `json:"id"`
	Tenant      string         `json:"tenant"`
	RuleID      string         `json:"rule_id"`
	RuleName    string         `json:"rule_name,omitempty"`
	Severity    Severity       `json:"severity"`
	Score       int            `json:"score"` // 0–100
	Status      FindingStatus  `json:"status"`
	Note        string         `json:"note,omitempty"`
	GroupKey    string         `json:"group_key"`
	ActorID     string         `json:"actor_id,omitempty"`
	IP          string         `json:"ip,omitempty"`
	SessionID   string         `json:"session_id,omitempty"`
	Explanation string         `json:"explanation"`
	Evidence    []string       `json:"evidence"`
	Facts       map[string]any `json:"facts,omitempty"`
	Count       int            `json:"count"`
	// IncidentID is the incident the finding belongs to (see Incident).
	IncidentID string `json:"incident_id,omitempty"`
	// Degraded, when set, says why the tenant's detection was less than
	// complete around this finding (events evaluated late, detection state
	// evicted at the tenant's cap): other findings may be missing.
	Degraded string `json:"degraded,omitempty"`
	// Resolution, on a resolved finding, is what the team decided it was:
	// ResolutionBenign (normal activity, a tuning candidate) or
	// ResolutionMalicious; "" when not said.
	Resolution string `json:"resolution,omitempty"`
	// Backfill is the backfill mark (BackfillSilent, BackfillAlert) of the
	// event of the finding's latest hit: it was raised on imported
	// history. "" for live events.
	Backfill  string    `json:"backfill,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// MaxEvidence caps the event ids kept on one finding.
const MaxEvidence = 200

// FindingFilter selects findings; scoped like EventFilter.
type FindingFilter struct {
	Tenant     string
	AllTenants bool
	RuleID     string
	Severity   Severity // at least this severity
	Status     FindingStatus
	ActorID    string
	// IP selects the findings about an address: opened on it, or keyed on
	// its subnet (see AddrSubnet), or — when ASN is set — on its
	// autonomous system.
	IP string
	// ASN, with IP, is the address's autonomous system (from enrichment);
	// 0 when unknown.
	ASN        uint32
	IncidentID string
	Since      time.Time // LastSeen >= Since
	Until      time.Time // FirstSeen < Until
	Limit      int
	Cursor     string
}

// FindingPage is one page of findings, most recently seen first.
type FindingPage struct {
	Findings []Finding
	Next     string
}

// FindingUpdate is a human's change to a finding's lifecycle.
type FindingUpdate struct {
	Status FindingStatus
	Note   string
	// Resolution is ResolutionBenign, ResolutionMalicious or ""; only a
	// resolved finding has one (any other status clears it).
	Resolution string
	At         time.Time
}

// Resolutions of a resolved finding.
const (
	ResolutionBenign    = "benign"
	ResolutionMalicious = "malicious"
)

// FindingStore keeps findings.
//
// Contract:
//   - UpsertFindings inserts or replaces findings by (Tenant, ID), but keeps
//     the stored Status and Note when the stored status is not open, so a
//     detection update never undoes a human's triage; CreatedAt is kept.
//   - SearchFindings orders by (LastSeen, ID) descending with keyset paging.
//   - GetFinding / UpdateFinding return ENOTFOUND for an unknown id or one
//     in another tenant; tenant "" names the installation-wide findings
//     (which only operator keys may reach).
type FindingStore interface {
	UpsertFindings(ctx context.Context, fs []Finding) error
	GetFinding(ctx context.Context, tenant, id string) (*Finding, error)
	SearchFindings(ctx context.Context, f FindingFilter) (*FindingPage, error)
	UpdateFinding(ctx context.Context, tenant, id string, u FindingUpdate) (*Finding, error)
}

// DerivedRewriter is the optional capability of a store to rewrite stored
// findings and incidents in place, for an erasure: what detection derived
// from an actor's events (addresses, explanations, summaries) loses the
// values erased from them. It is not a lifecycle change.
//
// Contract:
//   - RewriteFindings and RewriteIncidents replace the stored document of
//     each given (Tenant, ID) that exists, and the columns derived from it
//     (a finding's IP); one not stored is skipped, never created.
//   - They keep the stored Status, Note, Resolution and CreatedAt, so a
//     human's triage made meanwhile is not undone.
//   - They record no change: no alert, webhook or change-feed entry follows.
//   - Each call is one transaction.
type DerivedRewriter interface {
	RewriteFindings(ctx context.Context, fs []Finding) error
	RewriteIncidents(ctx context.Context, is []Incident) error
}
