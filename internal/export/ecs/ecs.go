// Package ecs maps Vigil's events onto the Elastic Common Schema (ECS 9.4;
// every field used also exists in ECS 8.x). The mapping is a pure function
// of the stored event. Every field it emits is in the published field list
// kept in testdata, which the tests check.
package ecs

import (
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// Version is the ECS version the documents claim (ecs.version).
const Version = "9.4.0"

// Object is one ECS document or nested object, ready for encoding/json.
type Object = map[string]any

func put(o Object, k string, v string) {
	if v != "" {
		o[k] = v
	}
}

// Event maps an audit event onto an ECS document: sign-ins and sessions
// are category authentication (start, or end for a logout or revocation),
// account changes category iam (user, change), everything else category
// web (access). The tenant is organization.id; the session id is the label
// session_id.
func Event(ev *audit.Event) Object {
	cat, typ := categorise(ev.Action)
	e := Object{"kind": "event", "category": []string{cat}, "type": typ, "action": ev.Action, "id": ev.ID}
	switch ev.Outcome {
	case audit.OutcomeSuccess:
		e["outcome"] = "success"
	case audit.OutcomeFailure:
		e["outcome"] = "failure"
	default:
		e["outcome"] = "unknown"
	}
	put(e, "reason", ev.Reason)
	if !ev.ReceivedAt.IsZero() {
		e["ingested"] = ev.ReceivedAt.UTC().Format(time.RFC3339Nano)
	}
	if ev.Risk != nil {
		e["risk_score"] = ev.Risk.Score
	}
	d := Object{
		"@timestamp": ev.Time.UTC().Format(time.RFC3339Nano),
		"ecs":        Object{"version": Version},
		"event":      e,
		"message":    ev.Action,
	}
	if ev.Tenant != "" {
		d["organization"] = Object{"id": ev.Tenant}
	}
	u := Object{}
	put(u, "id", ev.Actor.ID)
	put(u, "name", ev.Actor.Name)
	put(u, "email", ev.Actor.Email)
	if ev.Target.ID != "" && cat == "iam" && !strings.HasPrefix(ev.Action, "api_key.") {
		t := Object{"id": ev.Target.ID}
		put(t, "name", ev.Target.Name)
		u["target"] = t
	}
	if len(u) > 0 {
		d["user"] = u
	}
	if ev.Context.IP.IsValid() {
		d["source"] = source(ev)
	}
	if ev.Context.UserAgent != "" {
		ua := Object{"original": ev.Context.UserAgent}
		if p := ev.Enrichment.UserAgent; p != nil {
			put(ua, "name", p.Browser)
			put(ua, "version", p.BrowserVersion)
			if p.OS != "" {
				os := Object{"name": p.OS}
				put(os, "version", p.OSVersion)
				ua["os"] = os
			}
			if p.Device != "" {
				ua["device"] = Object{"name": p.Device}
			}
		}
		d["user_agent"] = ua
	}
	if ev.Context.RequestID != "" {
		d["http"] = Object{"request": Object{"id": ev.Context.RequestID}}
	}
	labels := Object{}
	put(labels, "session_id", ev.Context.SessionID)
	put(labels, "auth_method", ev.Context.AuthMethod)
	put(labels, "device_id", ev.Context.DeviceID)
	put(labels, "actor_type", ev.Actor.Type)
	if len(labels) > 0 {
		d["labels"] = labels
	}
	return d
}

func categorise(action string) (string, []string) {
	switch action {
	case audit.ActionLogout, audit.ActionSessionRevoked:
		return "authentication", []string{"end"}
	case audit.ActionPasswordChanged, audit.ActionPasswordReset, audit.ActionMFAEnrolled, audit.ActionMFARemoved,
		audit.ActionEmailChanged, audit.ActionRoleChanged, audit.ActionAPIKeyCreated, audit.ActionAPIKeyRevoked:
		return "iam", []string{"user", "change"}
	}
	if strings.HasPrefix(action, "auth.login.") || strings.HasPrefix(action, "session.") {
		return "authentication", []string{"start"}
	}
	return "web", []string{"access"}
}

func source(ev *audit.Event) Object {
	s := Object{"ip": ev.Context.IP.String()}
	geo := Object{}
	if g := ev.Enrichment.Geo; g != nil {
		put(geo, "country_iso_code", g.Country)
		put(geo, "region_name", g.Region)
		put(geo, "city_name", g.City)
		put(geo, "timezone", g.TimeZone)
		if g.HasLocation {
			geo["location"] = Object{"lat": g.Latitude, "lon": g.Longitude}
		}
	} else if g := ev.Context.Geo; g != nil {
		put(geo, "country_iso_code", g.Country)
		put(geo, "region_name", g.Region)
		put(geo, "city_name", g.City)
	}
	if len(geo) > 0 {
		s["geo"] = geo
	}
	if n := ev.Enrichment.Network; n != nil && (n.ASN != 0 || n.ASOrg != "") {
		as := Object{}
		if n.ASN != 0 {
			as["number"] = int64(n.ASN)
		}
		if n.ASOrg != "" {
			as["organization"] = Object{"name": n.ASOrg}
		}
		s["as"] = as
	}
	return s
}
