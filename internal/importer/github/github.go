// Package github imports the GitHub audit log (organization or enterprise,
// as the REST API's /orgs/{org}/audit-log or an audit-log stream writes
// it): one record becomes one audit.Event. docs/importers.md has the
// mapping table.
package github

import (
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer"
)

// Format is this importer's name in `vigil import` and /v1/import/{format}.
const Format = "github"

type record struct {
	DocumentID    string        `json:"_document_id"`
	Timestamp     importer.Flex `json:"@timestamp"`
	AtTimestamp   importer.Flex `json:"at_sign_timestamp"` // how some pipelines rename @timestamp
	CreatedAt     importer.Flex `json:"created_at"`
	Action        string        `json:"action"`
	Actor         string        `json:"actor"`
	ActorID       importer.Flex `json:"actor_id"`
	ActorIP       string        `json:"actor_ip"`
	ActorLocation *struct {
		CountryCode string `json:"country_code"`
	} `json:"actor_location"`
	ActorIsBot bool          `json:"actor_is_bot"`
	User       string        `json:"user"`
	UserAgent  string        `json:"user_agent"`
	Org        string        `json:"org"`
	Repo       string        `json:"repo"`
	Permission string        `json:"permission"`
	TokenID    importer.Flex `json:"token_id"`
	Access     string        `json:"programmatic_access_type"`
	Operation  string        `json:"operation_type"`
}

// Decode turns one audit-log record into an event.
func Decode(raw []byte) (*audit.Event, error) {
	var r record
	if err := importer.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	var ps importer.Problems
	if r.Action == "" {
		ps.Add("action", "action is required")
	}
	t, field, ok := when(&r)
	switch {
	case field == "":
		ps.Add("@timestamp", "@timestamp (or created_at) is required")
	case !ok:
		ps.Add(field, "%s is not a timestamp (milliseconds since 1970 or RFC 3339)", field)
	}
	if r.ActorIP != "" && !importer.IP(r.ActorIP).IsValid() {
		ps.Add("actor_ip", "actor_ip %q is not an IP address", importer.Text(r.ActorIP, 64))
	}
	if err := ps.Err(); err != nil {
		return nil, err
	}
	ev := &audit.Event{
		ID:       importer.ID("github", r.DocumentID, raw),
		Time:     t,
		Actor:    audit.Actor{ID: r.Actor},
		Context:  audit.Context{IP: importer.IP(r.ActorIP), UserAgent: r.UserAgent},
		Metadata: map[string]any{"github_action": importer.Text(r.Action, 128)},
	}
	if r.ActorIsBot {
		ev.Actor.Type = audit.ActorService
	}
	if r.ActorID != "" {
		ev.Metadata["github_actor_id"] = string(r.ActorID)
	}
	if r.Org != "" {
		ev.Metadata["org"] = importer.Text(r.Org, 128)
	}
	if r.Access != "" {
		ev.Metadata["programmatic_access_type"] = importer.Text(r.Access, 64)
	}
	switch {
	case r.User != "":
		ev.Target = audit.Target{Type: "user", ID: r.User}
	case r.Repo != "":
		ev.Target = audit.Target{Type: "repository", ID: r.Repo}
	case r.Org != "":
		ev.Target = audit.Target{Type: "organization", ID: r.Org}
	}
	if l := r.ActorLocation; l != nil && len(l.CountryCode) == 2 {
		ev.Context.Geo = &audit.ClientGeo{Country: strings.ToUpper(l.CountryCode)}
	}
	custom := importer.Action(Format, r.Action)
	ev.Action = mapAction(&r, ev)
	if ev.Action == "" {
		ev.Action = custom
	}
	importer.Finish(ev, Format, custom, raw)
	return ev, nil
}

// when returns the record's time and the field it came from.
func when(r *record) (time.Time, string, bool) {
	for _, f := range []struct {
		name string
		v    importer.Flex
	}{{"@timestamp", r.Timestamp}, {"at_sign_timestamp", r.AtTimestamp}, {"created_at", r.CreatedAt}} {
		if f.v == "" {
			continue
		}
		if t, ok := importer.Time(string(f.v)); ok {
			return t, f.name, true
		}
		if f.name == "created_at" || (r.AtTimestamp == "" && r.CreatedAt == "") {
			return time.Time{}, f.name, false
		}
	}
	if r.Timestamp != "" {
		return time.Time{}, "@timestamp", false
	}
	return time.Time{}, "", false
}

// mapAction returns the catalog action for an audit-log action, filling
// the fields it needs, or "" to keep it as a custom action.
func mapAction(r *record, ev *audit.Event) string {
	switch r.Action {
	case "user.login":
		ev.Context.AuthMethod = "password"
		ev.Context.SessionID = ev.ID // GitHub gives no session id
		ev.Target = audit.Target{}
		return audit.ActionLoginSuccess
	case "user.failed_login":
		ev.Reason = "other"
		ev.Target = audit.Target{}
		return audit.ActionLoginFailure
	case "two_factor_authentication.enabled", "user.two_factor_authentication.enabled":
		ev.Metadata["factor"] = "other"
		return audit.ActionMFAEnrolled
	case "two_factor_authentication.disabled", "user.two_factor_authentication.disabled":
		ev.Metadata["factor"] = "other"
		return audit.ActionMFARemoved
	case "user.change_password":
		return audit.ActionPasswordChanged
	case "user.forgot_password":
		ev.Metadata["stage"] = "requested"
		return audit.ActionPasswordReset
	case "personal_access_token.create", "oauth_access.create":
		ev.Target = audit.Target{Type: "token", ID: string(r.TokenID)}
		return audit.ActionAPIKeyCreated
	case "personal_access_token.destroy", "oauth_access.destroy":
		ev.Target = audit.Target{Type: "token", ID: string(r.TokenID)}
		return audit.ActionAPIKeyRevoked
	case "org.update_member", "business.update_member":
		if r.Permission != "" {
			ev.Metadata["new_role"] = importer.Text(r.Permission, 64)
		}
		return audit.ActionRoleChanged
	}
	return ""
}
