package audit

import (
	"context"
	"time"
)

// Incident is one attack as the detection engine sees it: the findings of
// one tenant that overlap in time and share an address, a /24 network, a
// targeted account or a session, or that belong to one distributed wave,
// grouped so that a wave of hundreds of addresses is one thing to triage.
//
// ID is derived from the tenant and the id of the incident's first finding,
// so a replay of the same events yields the same incidents. FirstSeen and
// LastSeen are event times. The lists are capped (MaxIncidentItems); the
// counts are not.
type Incident struct {
	ID     string        `json:"id"`
	Tenant string        `json:"tenant"`
	Status FindingStatus `json:"status"`
	Note   string        `json:"note,omitempty"`
	// Severity and Score are the highest of the incident's findings.
	Severity Severity `json:"severity"`
	Score    int      `json:"score"`
	// Headline names the strongest finding's rule (highest severity; an
	// attack family before context rules such as new-location at equal
	// severity); Family is that rule's family (credential-stuffing-subnet
	// and -asn are credential-stuffing, for instance).
	Headline     string `json:"headline"`
	HeadlineRule string `json:"headline_rule"`
	Family       string `json:"family"`
	// Summary is the headline finding's explanation.
	Summary   string    `json:"summary"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Findings are the ids of the incident's findings, in the order they
	// joined; FindingCount counts all of them.
	Findings     []string `json:"findings"`
	FindingCount int      `json:"finding_count"`
	// Rules are the distinct rules that fired, sorted.
	Rules []string `json:"rules"`
	// IPs and Networks are the sources seen: the addresses, and their /24
	// (IPv6 /48) or, for findings about a whole network (stuffing from one
	// /24 or one provider), that network ("203.0.113.0/24", "AS64500").
	// IPCount counts all addresses.
	IPs      []string `json:"ips,omitempty"`
	IPCount  int      `json:"ip_count"`
	Networks []string `json:"networks,omitempty"`
	// Accounts are the accounts at risk.
	Accounts []AccountAtRisk `json:"accounts,omitempty"`
	// Timeline is one entry per finding, in event time.
	Timeline []TimelineEntry `json:"timeline"`
	// Evidence are event ids of the findings' evidence.
	Evidence []string `json:"evidence"`
	// MergedInto is set when a later finding joined this incident to an
	// older one: this incident is then part of that one and no longer
	// listed; its findings belong to MergedInto.
	MergedInto string `json:"merged_into,omitempty"`
	// Backfill is the backfill mark of the finding that last joined or
	// updated the incident ("" when that came from live events).
	Backfill  string    `json:"backfill,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// MaxIncidentItems caps each list of an incident (findings, addresses,
// networks, accounts, timeline); MaxIncidentEvidence its evidence ids.
const (
	MaxIncidentItems    = 500
	MaxIncidentEvidence = 1000
)

// AccountAtRisk is an account an incident touches, with the strongest
// reason: "takeover-change" (a change of credentials, privileges or data
// after a risky login), "hit" (a successful login or session use that is
// part of the attack), or "targeted" (failed attempts against it).
type AccountAtRisk struct {
	Actor    string    `json:"actor"`
	Reason   string    `json:"reason"`
	Severity Severity  `json:"severity"`
	Findings []string  `json:"findings"`
	LastSeen time.Time `json:"last_seen"`
}

// Reasons an account is at risk, strongest first.
const (
	RiskTakeoverChange = "takeover-change"
	RiskHit            = "hit"
	RiskTargeted       = "targeted"
)

// TimelineEntry is one finding on an incident's timeline.
type TimelineEntry struct {
	Time      time.Time `json:"time"`
	LastSeen  time.Time `json:"last_seen"`
	FindingID string    `json:"finding_id"`
	RuleID    string    `json:"rule_id"`
	Severity  Severity  `json:"severity"`
	Summary   string    `json:"summary"`
}

// IncidentFilter selects incidents of one tenant (or all, for an operator).
// Merged incidents are never listed.
type IncidentFilter struct {
	Tenant     string
	AllTenants bool
	Status     FindingStatus
	Severity   Severity // at least this severity
	Family     string
	Since      time.Time // LastSeen >= Since
	Until      time.Time // FirstSeen < Until
	Limit      int
	Cursor     string
}

// IncidentPage is one page of incidents, most recently seen first.
type IncidentPage struct {
	Incidents []Incident
	Next      string
}

// IncidentUpdate is a human's triage of an incident. With Cascade, the
// incident's findings that are still open take the same status and note.
type IncidentUpdate struct {
	Status  FindingStatus
	Note    string
	Cascade bool
	At      time.Time
}

// IncidentStore keeps incidents.
//
// Contract:
//   - UpsertIncidents inserts or replaces incidents by (Tenant, ID), keeping
//     the stored Status and Note once a human moved the incident out of open
//     (as UpsertFindings does) and CreatedAt. An incident with MergedInto
//     set moves its findings (their IncidentID) to MergedInto.
//   - GetIncident returns ENOTFOUND for an unknown id or one of another
//     tenant; for a merged id it returns the incident it was merged into.
//   - SearchIncidents orders by (LastSeen, ID) descending with keyset paging
//     and never returns merged incidents.
//   - UpdateIncident applies triage (ENOTFOUND as GetIncident, EINVALID for
//     an unknown status), cascading to open findings when asked, in one
//     transaction.
type IncidentStore interface {
	UpsertIncidents(ctx context.Context, is []Incident) error
	GetIncident(ctx context.Context, tenant, id string) (*Incident, error)
	SearchIncidents(ctx context.Context, f IncidentFilter) (*IncidentPage, error)
	UpdateIncident(ctx context.Context, tenant, id string, u IncidentUpdate) (*Incident, error)
}

// IncidentSource is an optional capability of a Detector that groups its
// findings into incidents: TakeIncidents returns the incidents opened,
// changed or merged since the last call (each once, latest form), for the
// consumer to store with the findings of the same Process, Advance or
// Flush call.
type IncidentSource interface {
	TakeIncidents() []Incident
}
