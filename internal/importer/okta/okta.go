// Package okta imports the Okta System Log: one record of
// GET /api/v1/logs (or of an Okta log stream) becomes one audit.Event.
// docs/importers.md has the mapping table.
package okta

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer"
)

// Format is this importer's name in `vigil import` and /v1/import/{format}.
const Format = "okta"

type record struct {
	UUID      string `json:"uuid"`
	Published string `json:"published"`
	EventType string `json:"eventType"`
	Display   string `json:"displayMessage"`
	Severity  string `json:"severity"`
	Actor     entity `json:"actor"`
	Client    struct {
		IPAddress string `json:"ipAddress"`
		Device    string `json:"device"`
		ID        string `json:"id"`
		UserAgent struct {
			Raw string `json:"rawUserAgent"`
		} `json:"userAgent"`
		Geo struct {
			City    string `json:"city"`
			State   string `json:"state"`
			Country string `json:"country"`
			Geo     *struct {
				Lat *float64 `json:"lat"`
				Lon *float64 `json:"lon"`
			} `json:"geolocation"`
		} `json:"geographicalContext"`
	} `json:"client"`
	Outcome struct {
		Result string `json:"result"`
		Reason string `json:"reason"`
	} `json:"outcome"`
	Target  []entity `json:"target"`
	AuthCtx struct {
		CredentialType     string `json:"credentialType"`
		CredentialProvider string `json:"credentialProvider"`
		ExternalSessionID  string `json:"externalSessionId"`
	} `json:"authenticationContext"`
	Transaction struct {
		ID string `json:"id"`
	} `json:"transaction"`
	Debug struct {
		// Data is an object in the API; some pipelines store it as a
		// JSON string, which is then not read.
		Data json.RawMessage `json:"debugData"`
	} `json:"debugContext"`
	Security struct {
		IsProxy *bool `json:"isProxy"`
	} `json:"securityContext"`
}

type entity struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	AlternateID string `json:"alternateId"`
	DisplayName string `json:"displayName"`
}

// Decode turns one System Log record into an event. It requires uuid-less
// records to carry at least eventType and published; everything else is
// mapped when present.
func Decode(raw []byte) (*audit.Event, error) {
	var r record
	if err := importer.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	var ps importer.Problems
	if r.EventType == "" {
		ps.Add("eventType", "eventType is required")
	}
	t, ok := importer.Time(r.Published)
	switch {
	case r.Published == "":
		ps.Add("published", "published is required")
	case !ok:
		ps.Add("published", "published %q is not a timestamp such as 2024-04-02T19:17:37.621Z", clip(r.Published))
	}
	if r.Client.IPAddress != "" && !importer.IP(r.Client.IPAddress).IsValid() {
		ps.Add("client.ipAddress", "client.ipAddress %q is not an IP address", clip(r.Client.IPAddress))
	}
	if err := ps.Err(); err != nil {
		return nil, err
	}
	ev := &audit.Event{
		ID:   importer.ID("okta", r.UUID, raw),
		Time: t,
		Actor: audit.Actor{ID: r.Actor.AlternateID, Name: r.Actor.DisplayName,
			Type: actorType(r.Actor.Type)},
		Context: audit.Context{
			IP:        importer.IP(r.Client.IPAddress),
			UserAgent: r.Client.UserAgent.Raw,
			SessionID: r.AuthCtx.ExternalSessionID,
			RequestID: r.Transaction.ID,
			DeviceID:  r.Client.ID,
		},
		Metadata: map[string]any{"okta_event_type": r.EventType},
	}
	if ev.Actor.ID == "" || ev.Actor.ID == "unknown" {
		ev.Actor.ID = r.Actor.ID
	}
	if strings.Contains(ev.Actor.ID, "@") {
		ev.Actor.Email = ev.Actor.ID
	}
	if ev.Context.SessionID == "" || ev.Context.SessionID == "unknown" {
		ev.Context.SessionID = ""
	}
	if g := r.Client.Geo; g.City != "" || g.State != "" || g.Geo != nil || importer.CountryCode(g.Country) != "" {
		// Okta names the country ("United States"); context.geo
		// holds its ISO code.
		cg := &audit.ClientGeo{City: g.City, Region: g.State, Country: importer.CountryCode(g.Country)}
		if g.Geo != nil {
			cg.Latitude, cg.Longitude = importer.Coordinates(g.Geo.Lat, g.Geo.Lon)
		}
		ev.Context.Geo = cg
	}
	if r.Client.Geo.Country != "" {
		ev.Metadata["okta_country"] = importer.Text(r.Client.Geo.Country, 64)
	}
	switch strings.ToUpper(r.Outcome.Result) {
	case "SUCCESS", "ALLOW":
		ev.Outcome = audit.OutcomeSuccess
	case "FAILURE", "DENY":
		ev.Outcome = audit.OutcomeFailure
	}
	if r.Outcome.Reason != "" {
		ev.Metadata["okta_reason"] = importer.Text(r.Outcome.Reason, 256)
	}
	if r.Severity != "" {
		ev.Metadata["okta_severity"] = importer.Text(r.Severity, 16)
	}
	if r.Security.IsProxy != nil {
		ev.Metadata["okta_is_proxy"] = *r.Security.IsProxy
	}
	if b := behaviors(&r); b != "" {
		ev.Metadata["okta_behaviors"] = importer.Text(b, 256)
	}
	if len(r.Target) > 0 {
		tg := r.Target[0]
		ev.Target = audit.Target{Type: tg.Type, ID: first(tg.AlternateID, tg.ID), Name: tg.DisplayName}
		var names []string
		var users []any
		for _, t := range r.Target[:min(len(r.Target), maxTargets)] {
			if t.DisplayName != "" {
				names = append(names, t.DisplayName)
			}
			if strings.EqualFold(t.Type, "User") && t.AlternateID != "" {
				users = append(users, importer.Text(t.AlternateID, 128))
			}
		}
		if len(names) > 0 {
			ev.Metadata["okta_target_names"] = importer.Text(strings.Join(names, "; "), 256)
		}
		if len(users) > 0 {
			ev.Metadata["okta_target_users"] = users
		}
	}
	custom := importer.Action(Format, r.EventType)
	ev.Action = mapAction(&r, ev)
	if ev.Action == "" {
		ev.Action = custom
	}
	// A catalog action's suffix decides its outcome; Okta's own result is
	// kept for custom actions only.
	if audit.InCatalog(ev.Action) {
		ev.Outcome = audit.OutcomeUnknown
	}
	importer.Finish(ev, Format, custom, raw)
	return ev, nil
}

// mapAction returns the catalog action for an event type, filling the
// fields that action needs, or "" to keep it as a custom action.
func mapAction(r *record, ev *audit.Event) string {
	failed := ev.Outcome == audit.OutcomeFailure
	switch r.EventType {
	case "user.session.start":
		if failed {
			ev.Reason = failReason(r.Outcome.Reason)
			return audit.ActionLoginFailure
		}
		ev.Context.AuthMethod = authMethod(r)
		if ev.Context.SessionID == "" {
			// No session id: the login's own transaction stands for
			// it, else the login itself (a log stream may drop both).
			ev.Context.SessionID = first(r.Transaction.ID, ev.ID)
		}
		return audit.ActionLoginSuccess
	case "user.session.end":
		ev.Reason = "user"
		return audit.ActionLogout
	case "user.mfa.factor.activate":
		if failed {
			return ""
		}
		ev.Metadata["factor"] = factor(r)
		return audit.ActionMFAEnrolled
	case "user.mfa.factor.deactivate", "system.mfa.factor.deactivate", "user.mfa.factor.reset_all":
		if failed {
			return ""
		}
		ev.Metadata["factor"] = factor(r)
		return audit.ActionMFARemoved
	case "user.account.update_password":
		if failed {
			return ""
		}
		return audit.ActionPasswordChanged
	case "user.account.reset_password", "user.credential.forgot_password":
		if failed {
			return ""
		}
		ev.Metadata["stage"] = "requested"
		return audit.ActionPasswordReset
	case "system.api_token.create":
		if failed {
			return ""
		}
		return audit.ActionAPIKeyCreated
	case "system.api_token.revoke":
		if failed {
			return ""
		}
		return audit.ActionAPIKeyRevoked
	case "user.account.privilege.grant":
		if failed {
			return ""
		}
		if p := debug(r, "privilegeGranted"); p != "" {
			ev.Metadata["new_role"] = adminRole(p)
			ev.Metadata["okta_privilege"] = importer.Text(p, 256)
		}
		return audit.ActionRoleChanged
	}
	return ""
}

// adminRole names the strongest of the Okta administrator roles a grant
// lists ("Organization administrator, Application administrator (all)")
// the way role rules compare roles: superadmin for Super administrator,
// admin for any other administrator role but a read-only one, else
// Okta's own text.
func adminRole(granted string) string {
	role := ""
	for p := range strings.SplitSeq(granted, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		switch {
		case strings.HasPrefix(p, "super admin"):
			return "superadmin"
		case strings.Contains(p, "admin") && !strings.HasPrefix(p, "read-only") && !strings.HasPrefix(p, "read only"):
			role = "admin"
		}
	}
	if role == "" {
		return importer.Text(granted, 256)
	}
	return role
}

// failReason maps Okta's outcome.reason of a failed sign-in.
func failReason(reason string) string {
	switch r := strings.ToUpper(reason); {
	case strings.Contains(r, "INVALID_CREDENTIALS"), strings.Contains(r, "INVALID CREDENTIALS"):
		return "invalid_password"
	case strings.Contains(r, "LOCKED_OUT"), strings.Contains(r, "LOCKED OUT"):
		return "account_locked"
	case strings.Contains(r, "UNKNOWN_USER"), strings.Contains(r, "UNKNOWN USER"):
		return "unknown_user"
	case strings.Contains(r, "PASSWORD_EXPIRED"):
		return "expired_password"
	case strings.Contains(r, "MFA"), strings.Contains(r, "FACTOR"), strings.Contains(r, "VERIFICATION_ERROR"):
		return "mfa_failed"
	}
	return "other"
}

// authMethod maps authenticationContext.credentialType and
// credentialProvider.
func authMethod(r *record) string {
	switch strings.ToUpper(r.AuthCtx.CredentialType) {
	case "PASSWORD":
		return "password"
	case "ASSERTION", "IWA", "JWT":
		return "sso"
	case "EMAIL":
		return "magic_link"
	case "FIDO", "WEBAUTHN":
		return "passkey"
	}
	switch strings.ToUpper(r.AuthCtx.CredentialProvider) {
	case "OKTA_CREDENTIAL_PROVIDER", "OKTA_AUTHENTICATION_PROVIDER", "ACTIVE_DIRECTORY", "LDAP":
		return "password"
	case "SOCIAL", "FEDERATION", "SAML":
		return "sso"
	}
	return "other"
}

// factor maps the factor an MFA event names (the target's type or the
// debug context's factor).
func factor(r *record) string {
	s := debug(r, "factor")
	for _, t := range r.Target {
		s += " " + t.DisplayName + " " + t.Type
	}
	switch s = strings.ToLower(s); {
	case strings.Contains(s, "push"):
		return "push"
	case strings.Contains(s, "sms"):
		return "sms"
	case strings.Contains(s, "webauthn"), strings.Contains(s, "fido"), strings.Contains(s, "security key"):
		return "webauthn"
	case strings.Contains(s, "email"):
		return "email"
	case strings.Contains(s, "totp"), strings.Contains(s, "token:software"), strings.Contains(s, "authenticator"):
		return "totp"
	}
	return "other"
}

// maxTargets bounds the targets read into metadata.
const maxTargets = 4

// behaviors returns Okta's behaviour verdicts of a sign-in
// (debugContext.debugData.behaviors, a list of "New IP=POSITIVE", or
// logOnlySecurityData.behaviors, an object of the same, which some
// pipelines store as a JSON string) as "Name=VALUE" joined with ", ".
func behaviors(r *record) string {
	var d struct {
		Behaviors any             `json:"behaviors"`
		LogOnly   json.RawMessage `json:"logOnlySecurityData"`
	}
	if len(r.Debug.Data) == 0 || r.Debug.Data[0] != '{' || json.Unmarshal(r.Debug.Data, &d) != nil {
		return ""
	}
	b := d.Behaviors
	if b == nil && len(d.LogOnly) > 0 {
		lo := d.LogOnly
		var s string
		if lo[0] == '"' && json.Unmarshal(lo, &s) == nil {
			lo = []byte(s)
		}
		var l struct {
			Behaviors any `json:"behaviors"`
		}
		if json.Unmarshal(lo, &l) == nil {
			b = l.Behaviors
		}
	}
	var out []string
	switch b := b.(type) {
	case string:
		return b
	case []any:
		for _, x := range b {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	case map[string]any:
		for k, v := range b {
			if s, ok := v.(string); ok {
				out = append(out, k+"="+s)
			}
		}
		slices.Sort(out)
	}
	return strings.Join(out, ", ")
}

// debug returns a string of debugContext.debugData.
func debug(r *record, key string) string {
	var m map[string]any
	if len(r.Debug.Data) == 0 || r.Debug.Data[0] != '{' || json.Unmarshal(r.Debug.Data, &m) != nil {
		return ""
	}
	s, _ := m[key].(string)
	return s
}

func actorType(t string) string {
	switch strings.ToLower(t) {
	case "user":
		return audit.ActorUser
	case "publicclientapp", "app", "appinstance", "system principal", "systemprincipal":
		return audit.ActorService
	}
	return ""
}

func first(ss ...string) string {
	for _, s := range ss {
		if s != "" && s != "unknown" {
			return s
		}
	}
	return ""
}

func clip(s string) string { return importer.Text(s, 64) }
