package audit

import (
	"context"
	"errors"
	"time"
)

// Response action types: what the SaaS is asked to do to an account.
const (
	RespRevokeSessions      = "revoke_sessions"
	RespForcePasswordReset  = "force_password_reset"
	RespRequireMFA          = "require_mfa"
	RespLockAccount         = "lock_account"
	KindAction              = "action" // the alert kind of a response action
	maxResponseReasonBytes  = 1024
	MaxResponseMessageBytes = 1024
)

// ResponseActionTypes lists the response actions.
var ResponseActionTypes = []string{RespRevokeSessions, RespForcePasswordReset, RespRequireMFA, RespLockAccount}

// ActionStatus is where a response action is: requested (sent to the
// SaaS), acknowledged (the SaaS received it), succeeded or failed (its
// outcome, as the SaaS reports it).
type ActionStatus string

// Action statuses.
const (
	ActionRequested    ActionStatus = "requested"
	ActionAcknowledged ActionStatus = "acknowledged"
	ActionSucceeded    ActionStatus = "succeeded"
	ActionFailed       ActionStatus = "failed"
)

// Audit-log actions of the response lifecycle, recorded in the tenant's
// own log.
const (
	ActionResponseRequested    = "vigil.response.requested"
	ActionResponseAcknowledged = "vigil.response.acknowledged"
	ActionResponseCompleted    = "vigil.response.completed"
)

// ResponseAction asks the SaaS to act on one of its accounts: delivered
// as a signed webhook (kind "action") to the tenant's webhooks that
// subscribe to actions; the SaaS reports back its acknowledgement and the
// outcome.
type ResponseAction struct {
	ID      string `json:"id"`
	Tenant  string `json:"tenant"`
	Type    string `json:"type"`
	ActorID string `json:"actor_id"`
	// FindingID and IncidentID name what prompted it, when something did.
	FindingID  string `json:"finding_id,omitempty"`
	IncidentID string `json:"incident_id,omitempty"`
	RuleID     string `json:"rule_id,omitempty"`
	Reason     string `json:"reason,omitempty"`
	// RequestedBy is "key:<key id>" for an analyst, "rule:<rule id>" for
	// an automatic action.
	RequestedBy string       `json:"requested_by"`
	Severity    Severity     `json:"severity"`
	Status      ActionStatus `json:"status"`
	// Message is the SaaS's last word on it (an error, a ticket id).
	Message   string    `json:"message,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Validate checks a new action, reporting every problem at once.
func (a ResponseAction) Validate() error {
	var errs []error
	ok := false
	for _, t := range ResponseActionTypes {
		ok = ok || a.Type == t
	}
	if !ok {
		errs = append(errs, FieldErrorf("type", "type must be one of revoke_sessions, force_password_reset, require_mfa, lock_account"))
	}
	if a.ActorID == "" || len(a.ActorID) > MaxIDBytes {
		errs = append(errs, FieldErrorf("actor", "actor must be the account's id, 1-%d bytes", MaxIDBytes))
	}
	if len(a.Reason) > maxResponseReasonBytes {
		errs = append(errs, FieldErrorf("reason", "reason is at most %d bytes", maxResponseReasonBytes))
	}
	if len(a.FindingID) > MaxIDBytes || len(a.IncidentID) > MaxIDBytes {
		errs = append(errs, FieldErrorf("finding_id", "finding_id and incident_id are at most %d bytes", MaxIDBytes))
	}
	return errors.Join(errs...)
}

// ActionStore keeps response actions.
//
// Contract: CreateAction stores a new action and, in the same transaction,
// records an alert change of kind KindAction (so webhooks deliver it);
// creating an existing (tenant, id) changes nothing and reports false.
// GetAction and UpdateAction return ENOTFOUND for an unknown id or one of
// another tenant. ListActions returns a tenant's newest first.
type ActionStore interface {
	CreateAction(ctx context.Context, a ResponseAction) (bool, error)
	GetAction(ctx context.Context, tenant, id string) (*ResponseAction, error)
	ListActions(ctx context.Context, tenant string, limit int) ([]ResponseAction, error)
	UpdateAction(ctx context.Context, tenant, id string, status ActionStatus, message string, at time.Time) (*ResponseAction, error)
}
