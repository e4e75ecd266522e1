package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Response action types.
const (
	ActionRevokeSessions     = "revoke_sessions"
	ActionForcePasswordReset = "force_password_reset"
	ActionRequireMFA         = "require_mfa"
	ActionLockAccount        = "lock_account"
)

// ResponseAction asks the SaaS to act on one of its accounts; Status is
// requested, acknowledged, succeeded or failed.
type ResponseAction struct {
	ID          string    `json:"id"`
	Tenant      string    `json:"tenant"`
	Type        string    `json:"type"`
	ActorID     string    `json:"actor_id"`
	FindingID   string    `json:"finding_id,omitempty"`
	IncidentID  string    `json:"incident_id,omitempty"`
	RuleID      string    `json:"rule_id,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	RequestedBy string    `json:"requested_by"`
	Severity    string    `json:"severity"`
	Status      string    `json:"status"`
	Message     string    `json:"message,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// ActionRequest is the body of RequestAction.
type ActionRequest struct {
	Type       string `json:"type"`
	Actor      string `json:"actor"`
	FindingID  string `json:"finding_id,omitempty"`
	IncidentID string `json:"incident_id,omitempty"`
	Reason     string `json:"reason,omitempty"`
	// IdempotencyKey makes the request safe to repeat: every request with
	// the same key (in the tenant) names one action, and a repeat is
	// answered with it. Empty: RequestAction makes a key for this call.
	IdempotencyKey string `json:"-"`
}

// RequestAction asks the SaaS to act on an account (POST /v1/actions,
// scope findings:write); the tenant's webhooks with kind "action" deliver
// it. The request carries an Idempotency-Key (r.IdempotencyKey, or one
// made for this call), so it is retried like a read: a lost answer never
// makes a second action. Reusing a key for a different request is
// ErrConflict.
func (c *Client) RequestAction(ctx context.Context, r ActionRequest) (*ResponseAction, error) {
	var out struct {
		Action ResponseAction `json:"action"`
	}
	key := r.IdempotencyKey
	if key == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		key = hex.EncodeToString(b[:])
	}
	k := call{method: http.MethodPost, path: "/v1/actions", query: c.scope(nil), idempotent: true,
		header: http.Header{"Idempotency-Key": {key}}}
	if err := c.sendJSON(ctx, k, r, &out); err != nil {
		return nil, err
	}
	return &out.Action, nil
}

// Actions lists the tenant's response actions, newest first (at most limit;
// the server's default when 0).
func (c *Client) Actions(ctx context.Context, limit int) ([]ResponseAction, error) {
	q := c.scope(nil)
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Actions []ResponseAction `json:"actions"`
	}
	if err := c.getJSON(ctx, "/v1/actions", q, &out); err != nil {
		return nil, err
	}
	return out.Actions, nil
}

// GetAction returns one response action.
func (c *Client) GetAction(ctx context.Context, id string) (*ResponseAction, error) {
	var out struct {
		Action ResponseAction `json:"action"`
	}
	if err := c.getJSON(ctx, "/v1/actions/"+url.PathEscape(id), c.scope(nil), &out); err != nil {
		return nil, err
	}
	return &out.Action, nil
}

// ReportActionResult is the SaaS's side: status "acknowledged" when it
// received an action, "succeeded" or "failed" with its outcome (POST
// /v1/actions/{id}/result, scope events:write). Each report is written to
// the tenant's audit log; reporting the same state again is harmless, so
// it is retried like a read.
func (c *Client) ReportActionResult(ctx context.Context, id, status, message string) (*ResponseAction, error) {
	var out struct {
		Action ResponseAction `json:"action"`
	}
	in := struct {
		Status  string `json:"status"`
		Message string `json:"message,omitempty"`
	}{status, message}
	k := call{method: http.MethodPost, path: "/v1/actions/" + url.PathEscape(id) + "/result", query: c.scope(nil), idempotent: true}
	if err := c.sendJSON(ctx, k, in, &out); err != nil {
		return nil, err
	}
	return &out.Action, nil
}
