// Package gws imports Google Workspace audit activities: one activity of
// the Admin SDK Reports API (activities.list, such as the login and
// user_accounts applications) becomes one audit.Event. Both the API's own
// form (events[] with parameters[] of name/value pairs) and the flattened
// form log pipelines write (type, name and a parameters object at the top)
// are read. docs/importers.md has the mapping table.
package gws

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer"
)

// Format is this importer's name in `vigil import` and /v1/import/{format}.
const Format = "gws"

type record struct {
	ID struct {
		Time            string        `json:"time"`
		UniqueQualifier importer.Flex `json:"uniqueQualifier"`
		ApplicationName string        `json:"applicationName"`
		CustomerID      string        `json:"customerId"`
	} `json:"id"`
	Actor struct {
		Email      string `json:"email"`
		ProfileID  string `json:"profileId"`
		CallerType string `json:"callerType"`
	} `json:"actor"`
	IPAddress  string          `json:"ipAddress"`
	Events     []event         `json:"events"`
	Type       string          `json:"type"`
	Name       string          `json:"name"`
	Parameters json.RawMessage `json:"parameters"`
}

type event struct {
	Type       string          `json:"type"`
	Name       string          `json:"name"`
	Parameters json.RawMessage `json:"parameters"`
}

type param struct {
	Name       string   `json:"name"`
	Value      *string  `json:"value"`
	IntValue   *string  `json:"intValue"`
	BoolValue  *bool    `json:"boolValue"`
	MultiValue []string `json:"multiValue"`
}

// Decode turns one Reports API activity into an event. An activity with
// several events is imported as its first; the other events' names are
// kept in metadata.gws_other_events.
func Decode(raw []byte) (*audit.Event, error) {
	var r record
	if err := importer.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	ev0 := event{Type: r.Type, Name: r.Name, Parameters: r.Parameters}
	if len(r.Events) > 0 {
		ev0 = r.Events[0]
	}
	var ps importer.Problems
	if r.ID.ApplicationName == "" {
		ps.Add("id.applicationName", "id.applicationName is required")
	}
	if ev0.Name == "" {
		ps.Add("events[0].name", "the activity's event name (events[0].name, or name) is required")
	}
	t, ok := importer.Time(r.ID.Time)
	switch {
	case r.ID.Time == "":
		ps.Add("id.time", "id.time is required")
	case !ok:
		ps.Add("id.time", "id.time %q is not a timestamp such as 2022-12-11T02:57:48.693Z", importer.Text(r.ID.Time, 64))
	}
	if r.IPAddress != "" && !importer.IP(r.IPAddress).IsValid() {
		ps.Add("ipAddress", "ipAddress %q is not an IP address", importer.Text(r.IPAddress, 64))
	}
	params, err := parameters(ev0.Parameters)
	if err != nil {
		ps.Add("parameters", "%s", err.Error())
	}
	if err := ps.Err(); err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s|%s|%s|%s|%s", r.ID.ApplicationName, r.ID.CustomerID, r.ID.Time, r.ID.UniqueQualifier, ev0.Name)
	ev := &audit.Event{
		ID:       importer.ID("gws", "", []byte(key)),
		Time:     t,
		Actor:    audit.Actor{ID: first(r.Actor.Email, r.Actor.ProfileID), Email: r.Actor.Email},
		Context:  audit.Context{IP: importer.IP(r.IPAddress)},
		Metadata: map[string]any{"gws_application": r.ID.ApplicationName},
	}
	if r.Actor.CallerType != "" && !strings.EqualFold(r.Actor.CallerType, "USER") {
		ev.Actor.Type = audit.ActorService
	}
	if len(r.Events) > 1 {
		var names []string
		for _, e := range r.Events[1:min(len(r.Events), 9)] {
			names = append(names, importer.Text(e.Name, 64))
		}
		ev.Metadata["gws_other_events"] = strings.Join(names, ",")
	}
	keepParameters(ev0.Type, params, ev)
	custom := importer.Action(Format, r.ID.ApplicationName, ev0.Name)
	ev.Action = mapAction(r.ID.ApplicationName, ev0.Name, params, ev)
	if ev.Action == "" {
		ev.Action = custom
	}
	importer.Finish(ev, Format, custom, raw)
	return ev, nil
}

// maxScopes bounds the OAuth scopes kept of one authorisation.
const maxScopes = 16

// keepParameters keeps the facts of an activity that rules read and the
// catalog has no field for: the event's type (DELEGATED_ADMIN_SETTINGS,
// APPLICATION_SETTINGS, account_warning…), Google's is_suspicious flag,
// the account an account warning is about, an admin setting's name and
// new value, and the OAuth scopes an authorisation granted (the last
// segment of each scope URL, lower-cased).
func keepParameters(typ string, p map[string]string, ev *audit.Event) {
	if typ != "" {
		ev.Metadata["gws_event_type"] = importer.Text(typ, 64)
	}
	if v := p["SETTING_NAME"]; v != "" {
		ev.Metadata["gws_setting"] = importer.Text(v, 256)
	}
	if v, ok := p["is_suspicious"]; ok {
		ev.Metadata["gws_is_suspicious"] = v == "true"
	}
	if v := p["affected_email_address"]; v != "" {
		ev.Metadata["gws_affected_email"] = importer.Text(v, 256)
	}
	if v, ok := p["NEW_VALUE"]; ok {
		ev.Metadata["gws_new_value"] = importer.Text(v, 128)
	}
	if v := p["scope"]; v != "" {
		var scopes []any
		for sc := range strings.SplitSeq(v, ",") {
			sc = strings.ToLower(strings.TrimSpace(sc[strings.LastIndexByte(sc, '/')+1:]))
			if sc != "" && len(scopes) < maxScopes {
				scopes = append(scopes, importer.Text(sc, 64))
			}
		}
		if len(scopes) > 0 {
			ev.Metadata["gws_scopes"] = scopes
		}
	}
}

// parameters reads an event's parameters in either form into strings
// (multi-values joined with ',').
func parameters(raw json.RawMessage) (map[string]string, error) {
	out := map[string]string{}
	if len(raw) == 0 || string(raw) == "null" {
		return out, nil
	}
	if raw[0] == '[' {
		var ps []param
		if err := json.Unmarshal(raw, &ps); err != nil {
			return nil, fmt.Errorf("parameters must be a list of name/value pairs")
		}
		for _, p := range ps {
			switch {
			case p.Value != nil:
				out[p.Name] = *p.Value
			case p.IntValue != nil:
				out[p.Name] = *p.IntValue
			case p.BoolValue != nil:
				out[p.Name] = fmt.Sprint(*p.BoolValue)
			case p.MultiValue != nil:
				out[p.Name] = strings.Join(p.MultiValue, ",")
			}
		}
		return out, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("parameters must be an object or a list of name/value pairs")
	}
	for k, v := range m {
		switch v := v.(type) {
		case string:
			out[k] = v
		case []any:
			parts := make([]string, 0, len(v))
			for _, x := range v {
				parts = append(parts, fmt.Sprint(x))
			}
			out[k] = strings.Join(parts, ",")
		case nil:
		default:
			out[k] = fmt.Sprint(v)
		}
	}
	return out, nil
}

// mapAction returns the catalog action for an application's event,
// filling the fields it needs, or "" to keep it as a custom action.
func mapAction(app, name string, p map[string]string, ev *audit.Event) string {
	switch app + "/" + strings.TrimSpace(name) {
	case "login/login_success":
		ev.Context.AuthMethod = authMethod(p["login_type"])
		ev.Metadata["login_type"] = importer.Text(p["login_type"], 64)
		return audit.ActionLoginSuccess
	case "login/login_failure":
		ev.Reason = failReason(p["login_failure_type"])
		return audit.ActionLoginFailure
	case "login/logout":
		ev.Reason = "user"
		return audit.ActionLogout
	case "user_accounts/2sv_enroll", "login/2sv_enroll":
		ev.Metadata["factor"] = "other"
		return audit.ActionMFAEnrolled
	case "user_accounts/2sv_disable", "login/2sv_disable":
		ev.Metadata["factor"] = "other"
		return audit.ActionMFARemoved
	case "user_accounts/password_edit", "login/password_edit":
		return audit.ActionPasswordChanged
	case "admin/CUSTOMER_TAKEOUT_CREATED":
		// An administrator started a Data Export of the whole
		// organisation; its completion (…_SUCCEEDED) stays custom, so
		// one export is one data.exported.
		return audit.ActionDataExported
	case "drive/download":
		if dt := p["doc_type"]; dt != "" {
			ev.Metadata["doc_type"] = importer.Text(dt, 64)
		}
		return audit.ActionDataDownloaded
	}
	return ""
}

func authMethod(loginType string) string {
	switch loginType {
	case "google_password":
		return "password"
	case "saml":
		return "sso"
	case "passkey":
		return "passkey"
	}
	return "other"
}

func failReason(t string) string {
	switch t {
	case "login_failure_invalid_password":
		return "invalid_password"
	case "login_failure_invalid_second_factor":
		return "mfa_failed"
	case "login_failure_account_disabled":
		return "account_locked"
	case "login_failure_unknown":
		return "other"
	}
	return "other"
}

func first(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
