package client

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Incident groups the findings of one attack (same tenant, overlapping
// time, shared addresses, networks, accounts or one distributed wave).
// Lists are capped; the counts are not.
type Incident struct {
	ID           string          `json:"id"`
	Tenant       string          `json:"tenant"`
	Status       string          `json:"status"`
	Note         string          `json:"note,omitempty"`
	Severity     string          `json:"severity"`
	Score        int             `json:"score"`
	Headline     string          `json:"headline"`
	HeadlineRule string          `json:"headline_rule"`
	Family       string          `json:"family"`
	Summary      string          `json:"summary"`
	FirstSeen    time.Time       `json:"first_seen"`
	LastSeen     time.Time       `json:"last_seen"`
	Findings     []string        `json:"findings"`
	FindingCount int             `json:"finding_count"`
	Rules        []string        `json:"rules"`
	IPs          []string        `json:"ips,omitempty"`
	IPCount      int             `json:"ip_count"`
	Networks     []string        `json:"networks,omitempty"`
	Accounts     []AccountAtRisk `json:"accounts,omitempty"`
	Timeline     []TimelineEntry `json:"timeline"`
	Evidence     []string        `json:"evidence"`
	MergedInto   string          `json:"merged_into,omitempty"`
	Backfill     string          `json:"backfill,omitempty"` // as on Finding, of the finding that last joined
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
}

// AccountAtRisk is an account an incident touches; Reason is
// takeover-change, hit or targeted.
type AccountAtRisk struct {
	Actor    string    `json:"actor"`
	Reason   string    `json:"reason"`
	Severity string    `json:"severity"`
	Findings []string  `json:"findings"`
	LastSeen time.Time `json:"last_seen"`
}

// TimelineEntry is one finding on an incident's timeline.
type TimelineEntry struct {
	Time      time.Time `json:"time"`
	LastSeen  time.Time `json:"last_seen"`
	FindingID string    `json:"finding_id"`
	RuleID    string    `json:"rule_id"`
	Severity  string    `json:"severity"`
	Summary   string    `json:"summary"`
}

// IncidentParams selects incidents (GET /v1/incidents); zero fields do not
// filter.
type IncidentParams struct {
	// Severity is a minimum.
	Severity string
	Status   string
	// Family is the headline's family, e.g. distributed-credential-stuffing.
	Family       string
	Since, Until time.Time
	Limit        int
	Cursor       string
}

func (p IncidentParams) values() url.Values {
	q := url.Values{}
	set(q, "severity", p.Severity)
	set(q, "status", p.Status)
	set(q, "family", p.Family)
	setTime(q, "since", p.Since)
	setTime(q, "until", p.Until)
	if p.Limit != 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	set(q, "cursor", p.Cursor)
	return q
}

// IncidentPage is one page of incidents, most recently seen first.
type IncidentPage struct {
	Incidents  []Incident `json:"incidents"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// IncidentDetail is an incident with its findings.
type IncidentDetail struct {
	Incident Incident  `json:"incident"`
	Findings []Finding `json:"findings"`
}

// IncidentUpdate triages an incident. Cascade nil or true also gives its
// open findings the same status and note.
type IncidentUpdate struct {
	Status  string `json:"status"`
	Note    string `json:"note,omitempty"`
	Cascade *bool  `json:"cascade,omitempty"`
}

// SearchIncidents returns one page of incidents matching p.
func (c *Client) SearchIncidents(ctx context.Context, p IncidentParams) (*IncidentPage, error) {
	var page IncidentPage
	if err := c.getJSON(ctx, "/v1/incidents", c.scope(p.values()), &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// Incidents iterates over every incident matching p, following cursors.
func (c *Client) Incidents(ctx context.Context, p IncidentParams) iter.Seq2[Incident, error] {
	return paginate(p.Cursor, func(cursor string) ([]Incident, string, error) {
		p.Cursor = cursor
		page, err := c.SearchIncidents(ctx, p)
		if err != nil {
			return nil, "", err
		}
		return page.Incidents, page.NextCursor, nil
	})
}

// GetIncident returns the incident with id (or the one it was merged into)
// and its findings, or an ErrNotFound *Error.
func (c *Client) GetIncident(ctx context.Context, id string) (*IncidentDetail, error) {
	var d IncidentDetail
	if err := c.getJSON(ctx, "/v1/incidents/"+url.PathEscape(id), c.scope(nil), &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// UpdateIncident triages an incident (PATCH /v1/incidents/{id}) and returns
// it. Idempotent, so retried like a read.
func (c *Client) UpdateIncident(ctx context.Context, id string, u IncidentUpdate) (*Incident, error) {
	var inc Incident
	k := call{method: http.MethodPatch, path: "/v1/incidents/" + url.PathEscape(id), query: c.scope(nil), idempotent: true}
	if err := c.sendJSON(ctx, k, u, &inc); err != nil {
		return nil, err
	}
	return &inc, nil
}
