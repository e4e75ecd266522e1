package httpapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/vigilhq/vigil/internal/alert"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
)

func (a *API) actionStore() (audit.ActionStore, error) {
	if a.opts.Actions == nil {
		return nil, audit.Errorf(audit.EUNAVAILABLE, "response actions are not enabled on this server")
	}
	return a.opts.Actions, nil
}

type actionRequest struct {
	Type       string `json:"type"`
	Actor      string `json:"actor"`
	FindingID  string `json:"finding_id"`
	IncidentID string `json:"incident_id"`
	Reason     string `json:"reason"`
}

// postAction answers POST /v1/actions: an analyst asks the SaaS to act on
// one of its accounts. The action is stored, written to the tenant's audit
// log and delivered to the tenant's webhooks that take kind "action".
func (a *API) postAction(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	st, err := a.actionStore()
	if err != nil {
		return err
	}
	tenant, _, err := tenantScope(p, r.URL.Query().Get("tenant"), false)
	if err != nil {
		return err
	}
	var req actionRequest
	if err := httpx.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		return err
	}
	id := alert.NewActionID()
	key, keyed := r.Header["Idempotency-Key"]
	if keyed {
		if err := checkIdempotencyKey(key); err != nil {
			return err
		}
		id = alert.ActionIDFor(tenant, key[0])
	}
	now := a.now().UTC()
	act := audit.ResponseAction{ID: id, Tenant: tenant, Type: req.Type, ActorID: req.Actor,
		FindingID: req.FindingID, IncidentID: req.IncidentID, Reason: strings.TrimSpace(req.Reason),
		RequestedBy: "key:" + p.KeyID, Severity: audit.SeverityHigh, Status: audit.ActionRequested, CreatedAt: now, UpdatedAt: now}
	if err := act.Validate(); err != nil {
		return err
	}
	if req.FindingID != "" {
		fs, err := a.findingStore()
		if err != nil {
			return err
		}
		f, err := fs.GetFinding(r.Context(), tenant, req.FindingID)
		if audit.ErrorCode(err) == audit.ENOTFOUND {
			return audit.FieldErrorf("finding_id", "finding %q does not exist in this tenant", req.FindingID)
		}
		if err != nil {
			return err
		}
		act.Severity, act.RuleID = f.Severity, f.RuleID
		if act.IncidentID == "" {
			act.IncidentID = f.IncidentID
		}
	}
	created, err := st.CreateAction(r.Context(), act)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if !created {
		// Only a keyed request can name an existing action: it is a
		// retry, answered with what the first one stored, or a key
		// reused for another request.
		prev, err := st.GetAction(r.Context(), tenant, act.ID)
		if err != nil {
			return err
		}
		if !sameActionRequest(prev, act, req) {
			return audit.Errorf(audit.ECONFLICT, "the Idempotency-Key was already used for another action request (%s for %q): use a new key for a new request",
				prev.Type, prev.ActorID)
		}
		act, status = *prev, http.StatusOK
		w.Header().Set("Idempotent-Replayed", "true")
	}
	// Recorded again on a retry: the record's id makes the repeat harmless,
	// and a first request that failed here is completed.
	if err := a.recordAction(r, p, act, audit.ActionResponseRequested, nil); err != nil {
		return err
	}
	httpx.WriteJSON(w, status, map[string]any{"action": act})
	return nil
}

// maxIdempotencyKey is the longest Idempotency-Key accepted.
const maxIdempotencyKey = 255

// checkIdempotencyKey accepts one header value of 1 to 255 visible ASCII
// characters (a UUID, say).
func checkIdempotencyKey(vals []string) error {
	if len(vals) != 1 {
		return audit.FieldErrorf("Idempotency-Key", "send one Idempotency-Key header, not %d", len(vals))
	}
	k := vals[0]
	if k == "" || len(k) > maxIdempotencyKey {
		return audit.FieldErrorf("Idempotency-Key", "Idempotency-Key must be 1 to %d characters", maxIdempotencyKey)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return audit.FieldErrorf("Idempotency-Key", "Idempotency-Key may hold only visible ASCII characters (byte %d is not)", i)
		}
	}
	return nil
}

// sameActionRequest reports whether a stored action answers the request
// that would have made next: the same type, account, finding and reason,
// and the same incident when the request named one.
func sameActionRequest(prev *audit.ResponseAction, next audit.ResponseAction, req actionRequest) bool {
	return prev.Type == next.Type && prev.ActorID == next.ActorID && prev.FindingID == next.FindingID &&
		prev.Reason == next.Reason && (req.IncidentID == "" || prev.IncidentID == req.IncidentID)
}

// recordAction writes an action's step to its tenant's audit log, with an
// event id that makes a repeated record harmless.
func (a *API) recordAction(r *http.Request, p audit.Principal, act audit.ResponseAction, action string, extra map[string]any) error {
	meta := map[string]any{"action_id": act.ID, "type": act.Type, "status": string(act.Status), "requested_by": act.RequestedBy}
	if act.FindingID != "" {
		meta["finding_id"] = act.FindingID
	}
	if act.Reason != "" {
		meta["reason"] = act.Reason
	}
	for k, v := range extra {
		meta[k] = v
	}
	ev := &audit.Event{Tenant: act.Tenant, Action: action, Actor: audit.Actor{ID: p.KeyID, Type: audit.ActorAPIKey},
		Target: audit.Target{Type: "user", ID: act.ActorID}, Metadata: meta}
	if action == audit.ActionResponseRequested {
		ev.ID = act.ID + ".requested"
	}
	return a.opts.Ingest.RecordBatch(serverWrite(r.Context()), p, []*audit.Event{ev})
}

func (a *API) listActions(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	st, err := a.actionStore()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	for k := range q {
		if k != "tenant" && k != "limit" {
			return audit.FieldErrorf(k, "unknown query parameter %q", k)
		}
	}
	tenant, _, err := tenantScope(p, q.Get("tenant"), false)
	if err != nil {
		return err
	}
	limit := 0
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > audit.MaxPageSize {
			return audit.FieldErrorf("limit", "limit must be between 1 and %d", audit.MaxPageSize)
		}
	}
	out, err := st.ListActions(r.Context(), tenant, limit)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"actions": out})
	return nil
}

func (a *API) getAction(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	st, err := a.actionStore()
	if err != nil {
		return err
	}
	tenant, _, err := tenantScope(p, r.URL.Query().Get("tenant"), false)
	if err != nil {
		return err
	}
	act, err := st.GetAction(r.Context(), tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"action": act})
	return nil
}

type actionResult struct {
	Status  audit.ActionStatus `json:"status"`
	Message string             `json:"message"`
}

// postActionResult answers POST /v1/actions/{id}/result: the SaaS reports
// that it received an action (acknowledged) or what came of it (succeeded,
// failed). Each report is written to the tenant's audit log.
func (a *API) postActionResult(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	st, err := a.actionStore()
	if err != nil {
		return err
	}
	tenant, _, err := tenantScope(p, r.URL.Query().Get("tenant"), false)
	if err != nil {
		return err
	}
	var req actionResult
	if err := httpx.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		return err
	}
	switch req.Status {
	case audit.ActionAcknowledged, audit.ActionSucceeded, audit.ActionFailed:
	default:
		return audit.FieldErrorf("status", "status must be acknowledged, succeeded or failed")
	}
	if len(req.Message) > audit.MaxResponseMessageBytes {
		return audit.FieldErrorf("message", "message is at most %d bytes", audit.MaxResponseMessageBytes)
	}
	act, err := st.UpdateAction(r.Context(), tenant, r.PathValue("id"), req.Status, req.Message, a.now())
	if err != nil {
		return err
	}
	step := audit.ActionResponseCompleted
	if req.Status == audit.ActionAcknowledged {
		step = audit.ActionResponseAcknowledged
	}
	extra := map[string]any{"reported": string(req.Status)}
	if req.Message != "" {
		extra["message"] = req.Message
	}
	if err := a.recordAction(r, p, *act, step, extra); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"action": act})
	return nil
}
