// Package auth0 imports Auth0 log events: one record of the Management
// API's GET /api/v2/logs, or of a log stream (which wraps the same object
// as {"log_id", "data"}), becomes one audit.Event. docs/importers.md has
// the mapping table.
package auth0

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer"
)

// Format is this importer's name in `vigil import` and /v1/import/{format}.
const Format = "auth0"

type record struct {
	LogID        string `json:"log_id"`
	Date         string `json:"date"`
	Type         string `json:"type"`
	Description  string `json:"description"`
	IP           string `json:"ip"`
	UserAgent    string `json:"user_agent"`
	UserID       string `json:"user_id"`
	UserName     string `json:"user_name"`
	Connection   string `json:"connection"`
	Strategy     string `json:"strategy"`
	ClientID     string `json:"client_id"`
	ClientName   string `json:"client_name"`
	SessionID    string `json:"session_id"`
	LocationInfo *struct {
		CountryCode string   `json:"country_code"`
		City        string   `json:"city_name"`
		Latitude    *float64 `json:"latitude"`
		Longitude   *float64 `json:"longitude"`
	} `json:"location_info"`
	Details struct {
		SessionID     string `json:"session_id"`
		Authenticator *struct {
			Type string `json:"type"`
		} `json:"authenticator"`
		Request *struct {
			Channel string `json:"channel"`
			Method  string `json:"method"`
			Path    string `json:"path"`
			Auth    *struct {
				User *struct {
					Email  string `json:"email"`
					UserID string `json:"user_id"`
				} `json:"user"`
				Credentials *struct {
					Scopes json.RawMessage `json:"scopes"`
				} `json:"credentials"`
			} `json:"auth"`
			Body json.RawMessage `json:"body"`
		} `json:"request"`
		Response *struct {
			StatusCode importer.Flex   `json:"statusCode"`
			Body       json.RawMessage `json:"body"`
		} `json:"response"`
	} `json:"details"`
}

// Decode turns one Auth0 log event into an event.
func Decode(raw []byte) (*audit.Event, error) {
	raw = unwrap(raw)
	var r record
	if err := importer.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	var ps importer.Problems
	if r.Type == "" {
		ps.Add("type", "type is required")
	}
	t, ok := importer.Time(r.Date)
	switch {
	case r.Date == "":
		ps.Add("date", "date is required")
	case !ok:
		ps.Add("date", "date %q is not a timestamp such as 2024-10-29T18:52:51.953Z", importer.Text(r.Date, 64))
	}
	if r.IP != "" && !importer.IP(r.IP).IsValid() {
		ps.Add("ip", "ip %q is not an IP address", importer.Text(r.IP, 64))
	}
	if err := ps.Err(); err != nil {
		return nil, err
	}
	ev := &audit.Event{
		ID:    importer.ID("auth0", r.LogID, raw),
		Time:  t,
		Actor: audit.Actor{ID: first(r.UserID, r.UserName)},
		Context: audit.Context{
			IP:        importer.IP(r.IP),
			UserAgent: r.UserAgent,
			SessionID: first(r.SessionID, r.Details.SessionID),
		},
		Metadata: map[string]any{"auth0_type": r.Type},
	}
	if strings.Contains(r.UserName, "@") {
		ev.Actor.Email = r.UserName
	}
	if ev.Actor.ID == "" && r.Details.Request != nil && r.Details.Request.Auth != nil && r.Details.Request.Auth.User != nil {
		u := r.Details.Request.Auth.User // a Management API call: the admin who made it
		ev.Actor.ID, ev.Actor.Email = first(u.UserID, u.Email), u.Email
	}
	if r.ClientName != "" || r.ClientID != "" {
		ev.Target = audit.Target{Type: "application", ID: r.ClientID, Name: r.ClientName}
	}
	if r.Description != "" {
		ev.Metadata["description"] = importer.Text(r.Description, 256)
	}
	if r.Connection != "" {
		ev.Metadata["connection"] = importer.Text(r.Connection, 128)
	}
	keepRequest(&r, ev)
	if l := r.LocationInfo; l != nil {
		g := &audit.ClientGeo{City: l.City}
		if len(l.CountryCode) == 2 {
			g.Country = strings.ToUpper(l.CountryCode)
		}
		g.Latitude, g.Longitude = importer.Coordinates(l.Latitude, l.Longitude)
		ev.Context.Geo = g
	}
	custom := importer.Action(Format, r.Type)
	ev.Action = mapAction(&r, ev)
	if ev.Action == "" {
		ev.Action = custom
		ev.Outcome = outcome(r.Type)
	}
	importer.Finish(ev, Format, custom, raw)
	return ev, nil
}

// maxBodyFields bounds the fields kept of a Management API call's request
// or response body.
const maxBodyFields = 8

// keepRequest keeps what a Management API call (type sapi and the like)
// did, which the catalog has no field for: details.request's channel,
// method and path, the caller's scopes, the response's status code, and
// the top-level scalar fields of the request and response bodies
// (metadata.auth0_request, auth0_response; a list of scalars is joined
// with ','; a body that is a list is auth0_request_list).
func keepRequest(r *record, ev *audit.Event) {
	if q := r.Details.Request; q != nil {
		for k, v := range map[string]string{"auth0_channel": q.Channel, "auth0_request_method": q.Method, "auth0_request_path": q.Path} {
			if v != "" {
				ev.Metadata[k] = importer.Text(v, 256)
			}
		}
		if q.Auth != nil && q.Auth.Credentials != nil {
			if s, ok := scalar(q.Auth.Credentials.Scopes); ok {
				ev.Metadata["auth0_scopes"] = importer.Text(fmt.Sprint(s), 512)
			}
		}
		if len(q.Body) > 0 && q.Body[0] == '[' {
			if s, ok := scalar(q.Body); ok {
				ev.Metadata["auth0_request_list"] = s
			}
		} else if m := bodyFields(q.Body); len(m) > 0 {
			ev.Metadata["auth0_request"] = m
		}
	}
	if p := r.Details.Response; p != nil {
		if p.StatusCode != "" {
			ev.Metadata["auth0_status_code"] = importer.Text(string(p.StatusCode), 8)
		}
		if m := bodyFields(p.Body); len(m) > 0 {
			ev.Metadata["auth0_response"] = m
		}
	}
}

// bodyFields returns the first maxBodyFields scalar fields of a JSON
// object, by name, with their names lower-cased (Auth0 writes both
// "enabled" and "Enabled").
func bodyFields(raw json.RawMessage) map[string]any {
	var m map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return nil
	}
	keys := slices.Sorted(maps.Keys(m))
	out := map[string]any{}
	for _, k := range keys {
		if len(out) == maxBodyFields {
			break
		}
		if v, ok := scalar(m[k]); ok && k != "" {
			out[strings.ToLower(importer.Text(k, 64))] = v
		}
	}
	return out
}

// scalar returns a JSON boolean as a bool, a string or number as a string
// (cut to 128 bytes), a list of those joined with ',', and false for
// anything else.
func scalar(raw json.RawMessage) (any, bool) {
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return nil, false
	}
	switch v := v.(type) {
	case bool:
		return v, true
	case string:
		return importer.Text(v, 128), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case []any:
		parts := make([]string, 0, len(v))
		for _, x := range v {
			switch x := x.(type) {
			case string:
				parts = append(parts, x)
			case bool, float64:
				parts = append(parts, fmt.Sprint(x))
			default:
				return nil, false
			}
		}
		return importer.Text(strings.Join(parts, ","), 256), true
	}
	return nil, false
}

// unwrap returns the inner object of a log-stream record
// {"log_id": …, "data": {…}}, or raw itself.
func unwrap(raw []byte) []byte {
	if !bytes.Contains(raw, []byte(`"data"`)) {
		return raw
	}
	var w struct {
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(raw, &w) != nil || len(w.Data) == 0 || w.Data[0] != '{' {
		return raw
	}
	var probe struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(w.Data, &probe) != nil || probe.Type == "" {
		return raw
	}
	return w.Data
}

// mapAction returns the catalog action for an Auth0 event type code,
// filling the fields it needs, or "" to keep it as a custom action.
func mapAction(r *record, ev *audit.Event) string {
	switch r.Type {
	case "s", "ssa":
		ev.Context.AuthMethod = authMethod(r)
		if ev.Context.SessionID == "" {
			// Auth0 gives no session id: the login's own log id stands for it.
			ev.Context.SessionID = r.LogID
		}
		return audit.ActionLoginSuccess
	case "f", "fp", "fu", "fcpro", "fsa", "limit_wc", "limit_sul", "limit_mu", "gd_auth_failed", "gd_auth_rejected", "gd_otp_rate_limit_exceed", "pwd_leak", "fcoa":
		ev.Reason = failReason(r.Type)
		return audit.ActionLoginFailure
	case "slo":
		ev.Reason = "user"
		return audit.ActionLogout
	case "scp", "sapi_pwd":
		return audit.ActionPasswordChanged
	case "scpr":
		ev.Metadata["stage"] = "requested"
		return audit.ActionPasswordReset
	case "sce":
		ev.Target = audit.Target{Type: "user", ID: ev.Actor.ID}
		return audit.ActionEmailChanged
	case "gd_enrollment_complete":
		ev.Metadata["factor"] = factor(r)
		return audit.ActionMFAEnrolled
	case "gd_unenroll":
		ev.Metadata["factor"] = factor(r)
		return audit.ActionMFARemoved
	}
	return ""
}

// failReason maps the code of a failed or blocked sign-in.
func failReason(code string) string {
	switch code {
	case "fp":
		return "invalid_password"
	case "fu":
		return "unknown_user"
	case "limit_wc", "limit_sul", "limit_mu":
		return "account_locked"
	case "gd_auth_failed", "gd_auth_rejected", "gd_otp_rate_limit_exceed":
		return "mfa_failed"
	}
	return "other"
}

// authMethod maps a login's connection strategy.
func authMethod(r *record) string {
	s := strings.ToLower(r.Strategy)
	if s == "" {
		if p, _, ok := strings.Cut(r.UserID, "|"); ok {
			s = strings.ToLower(p)
		}
	}
	switch {
	case s == "auth0" || strings.Contains(strings.ToLower(r.Connection), "username-password"):
		return "password"
	case s == "email" || s == "sms":
		return "magic_link"
	case s == "samlp" || s == "waad" || s == "adfs" || s == "oidc" || s == "okta" || s == "pingfederate" || s == "ad":
		return "sso"
	case s != "":
		return "oauth" // social connections: google-oauth2, github, …
	}
	return "other"
}

// factor maps a Guardian enrollment's authenticator or description.
func factor(r *record) string {
	s := strings.ToLower(r.Description)
	if a := r.Details.Authenticator; a != nil {
		s += " " + strings.ToLower(a.Type)
	}
	switch {
	case strings.Contains(s, "sms"), strings.Contains(s, "phone"):
		return "sms"
	case strings.Contains(s, "push"), strings.Contains(s, "guardian"):
		return "push"
	case strings.Contains(s, "otp"), strings.Contains(s, "totp"):
		return "totp"
	case strings.Contains(s, "webauthn"):
		return "webauthn"
	case strings.Contains(s, "email"):
		return "email"
	}
	return "other"
}

// outcome derives success or failure of a custom action from the code's
// first letter (Auth0's convention: s… success, f… failure).
func outcome(code string) audit.Outcome {
	switch {
	case strings.Contains(code, "_"):
		return audit.OutcomeUnknown // named codes (signup_pwd_leak) follow no convention
	case strings.HasPrefix(code, "s"):
		return audit.OutcomeSuccess
	case strings.HasPrefix(code, "f"):
		return audit.OutcomeFailure
	}
	return audit.OutcomeUnknown
}

func first(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
