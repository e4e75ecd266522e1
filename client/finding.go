package client

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Severities, lowest first.
const (
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// Finding statuses.
const (
	FindingOpen         = "open"
	FindingAcknowledged = "acknowledged"
	FindingResolved     = "resolved"
)

// Finding is a detection rule's hit. Evidence lists the ids of the events
// that made it fire; FirstSeen and LastSeen are event times.
type Finding struct {
	ID          string         `json:"id"`
	Tenant      string         `json:"tenant"`
	RuleID      string         `json:"rule_id"`
	RuleName    string         `json:"rule_name,omitempty"`
	Severity    string         `json:"severity"`
	Score       int            `json:"score"`
	Status      string         `json:"status"`
	Note        string         `json:"note,omitempty"`
	GroupKey    string         `json:"group_key"`
	ActorID     string         `json:"actor_id,omitempty"`
	IP          string         `json:"ip,omitempty"`
	SessionID   string         `json:"session_id,omitempty"`
	Explanation string         `json:"explanation"`
	Evidence    []string       `json:"evidence"`
	Facts       map[string]any `json:"facts,omitempty"`
	Count       int            `json:"count"`
	// Degraded, when set, says the tenant's detection was degraded around
	// this finding (events evaluated late, state evicted at its cap).
	Degraded string `json:"degraded,omitempty"`
	// Resolution, on a resolved finding: "benign" or "malicious" ("" when
	// not said).
	Resolution string `json:"resolution,omitempty"`
	// Backfill is "silent" or "alert" when the finding's latest evidence
	// is imported history (an import with backfill); "" for live events.
	Backfill string `json:"backfill,omitempty"`
	// IncidentID is the incident the finding belongs to.
	IncidentID string    `json:"incident_id,omitempty"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// FindingParams selects findings (GET /v1/findings); zero fields do not
// filter. The tenant comes from the client, as for SearchParams.
type FindingParams struct {
	Rule string
	// Severity is a minimum: "high" matches high and critical.
	Severity string
	Status   string
	Actor    string
	IP       string
	// Since and Until bound the time the finding was seen.
	Since, Until time.Time
	Limit        int
	Cursor       string
}

func (p FindingParams) values() url.Values {
	q := url.Values{}
	set(q, "rule", p.Rule)
	set(q, "severity", p.Severity)
	set(q, "status", p.Status)
	set(q, "actor", p.Actor)
	set(q, "ip", p.IP)
	setTime(q, "since", p.Since)
	setTime(q, "until", p.Until)
	if p.Limit != 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	set(q, "cursor", p.Cursor)
	return q
}

// FindingPage is one page of findings, most recently seen first.
type FindingPage struct {
	Findings   []Finding `json:"findings"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// FindingDetail is a finding with its evidence events.
type FindingDetail struct {
	Finding  Finding `json:"finding"`
	Evidence []Event `json:"evidence"`
}

// FindingUpdate changes a finding's lifecycle: Status is open,
// acknowledged or resolved; Note is kept with it.
type FindingUpdate struct {
	Status string `json:"status"`
	Note   string `json:"note,omitempty"`
	// Resolution, with Status resolved: "benign" (normal activity; such
	// findings feed tuning suggestions) or "malicious".
	Resolution string `json:"resolution,omitempty"`
}

// SearchFindings returns one page of findings matching p.
func (c *Client) SearchFindings(ctx context.Context, p FindingParams) (*FindingPage, error) {
	var page FindingPage
	if err := c.getJSON(ctx, "/v1/findings", c.scope(p.values()), &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// Findings iterates over every finding matching p, following cursors; it
// behaves like Events.
func (c *Client) Findings(ctx context.Context, p FindingParams) iter.Seq2[Finding, error] {
	return paginate(p.Cursor, func(cursor string) ([]Finding, string, error) {
		p.Cursor = cursor
		page, err := c.SearchFindings(ctx, p)
		if err != nil {
			return nil, "", err
		}
		return page.Findings, page.NextCursor, nil
	})
}

// GetFinding returns the finding with id and its evidence events, or an
// ErrNotFound *Error.
func (c *Client) GetFinding(ctx context.Context, id string) (*FindingDetail, error) {
	var d FindingDetail
	if err := c.getJSON(ctx, "/v1/findings/"+url.PathEscape(id), c.scope(nil), &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// UpdateFinding sets a finding's status and note (PATCH /v1/findings/{id})
// and returns the updated finding. Setting a state is idempotent, so it is
// retried like a read.
func (c *Client) UpdateFinding(ctx context.Context, id string, u FindingUpdate) (*Finding, error) {
	var f Finding
	k := call{method: http.MethodPatch, path: "/v1/findings/" + url.PathEscape(id), query: c.scope(nil), idempotent: true}
	if err := c.sendJSON(ctx, k, u, &f); err != nil {
		return nil, err
	}
	return &f, nil
}
