// Package ocsf maps Vigil's events, findings and incidents onto the Open
// Cybersecurity Schema Framework (OCSF) 1.2.0: sign-ins and sessions onto
// Authentication (3002), credential and account changes onto Account Change
// (3001), findings and incidents onto Detection Finding (2004), and every
// other event onto API Activity (6003): an actor's operation in the
// tenant's application. The mapping is a pure function of the
// stored record: no clock, no lookups, so an export is reproducible.
//
// The output is a JSON object (map) per record; callers encode it. The
// tests validate every object against the published OCSF 1.2.0 schema
// export: testdata/ocsf-1.2.0-schema.json, extracted by
// internal/schemagen (go generate) as testdata/README.md describes.
package ocsf

//go:generate go run ./internal/schemagen

import (
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// Version is the OCSF schema version the objects claim (metadata.version):
// the newest one whose published schema the tests validate against.
const Version = "1.2.0"

// Categories and classes.
const (
	CategoryFindings    = 2
	CategoryIAM         = 3
	CategoryApplication = 6

	ClassDetectionFinding = 2004
	ClassAccountChange    = 3001
	ClassAuthentication   = 3002
	ClassAPIActivity      = 6003
)

var (
	categoryNames = map[int]string{CategoryFindings: "Findings", CategoryIAM: "Identity & Access Management", CategoryApplication: "Application Activity"}
	classNames    = map[int]string{ClassDetectionFinding: "Detection Finding", ClassAccountChange: "Account Change", ClassAuthentication: "Authentication", ClassAPIActivity: "API Activity"}
)

// Activities (activity_id) used by the mappers.
const (
	ActivityOther = 99

	AuthLogon  = 1
	AuthLogoff = 2

	AccountCreate          = 1
	AccountPasswordChange  = 3
	AccountPasswordReset   = 4
	AccountMFAFactorEnable = 10
	AccountMFAFactorDisbl  = 11

	FindingCreate = 1
	FindingUpdate = 2
	FindingClose  = 3

	APIRead = 2
)

var activityNames = map[int]map[int]string{
	ClassAPIActivity:      {APIRead: "Read", ActivityOther: "Other"},
	ClassAuthentication:   {AuthLogon: "Logon", AuthLogoff: "Logoff", ActivityOther: "Other"},
	ClassAccountChange:    {AccountCreate: "Create", AccountPasswordChange: "Password Change", AccountPasswordReset: "Password Reset", AccountMFAFactorEnable: "MFA Factor Enable", AccountMFAFactorDisbl: "MFA Factor Disable", ActivityOther: "Other"},
	ClassDetectionFinding: {FindingCreate: "Create", FindingUpdate: "Update", FindingClose: "Close", ActivityOther: "Other"},
}

// Event status (status_id) of an activity.
const (
	StatusUnknown = 0
	StatusSuccess = 1
	StatusFailure = 2
)

var statusNames = map[int]string{StatusUnknown: "Unknown", StatusSuccess: "Success", StatusFailure: "Failure"}

// Finding status (status_id of a Detection Finding). OCSF 1.2.0 defines
// only Suppressed and Resolved for findings (its 1 and 2 are the base
// event's Success and Failure), so a finding still open or being worked
// on is 99 Other, named New or In Progress in status as later OCSF
// versions name them.
const (
	FindingSuppressed = 3
	FindingResolved   = 4
	FindingOther      = 99
)

var findingStatusNames = map[int]string{FindingSuppressed: "Suppressed", FindingResolved: "Resolved"}

// Severities (severity_id).
const (
	SeverityUnknown       = 0
	SeverityInformational = 1
	SeverityLow           = 2
	SeverityMedium        = 3
	SeverityHigh          = 4
	SeverityCritical      = 5
)

var severityNames = map[int]string{SeverityUnknown: "Unknown", SeverityInformational: "Informational", SeverityLow: "Low", SeverityMedium: "Medium", SeverityHigh: "High", SeverityCritical: "Critical"}

// Object is one OCSF record or nested object, ready for encoding/json.
type Object = map[string]any

// ms is an OCSF timestamp: milliseconds since the Unix epoch.
func ms(t time.Time) int64 { return t.UnixMilli() }

// put sets k when v is not empty: OCSF omits unknown attributes rather
// than sending empty strings.
func put(o Object, k string, v any) {
	switch x := v.(type) {
	case string:
		if x == "" {
			return
		}
	case Object:
		if len(x) == 0 {
			return
		}
	case []any:
		if len(x) == 0 {
			return
		}
	case []string:
		if len(x) == 0 {
			return
		}
	case []Object:
		if len(x) == 0 {
			return
		}
	case int64:
		if x == 0 {
			return
		}
	case int:
		if x == 0 {
			return
		}
	case nil:
		return
	}
	o[k] = v
}

// header builds the attributes every class shares. activityName, for
// activity 99 Other, is the source's own label; type_name is always the
// schema's caption of type_uid ("<class>: Other" then).
func header(class, category, activity int, activityName string) Object {
	standard := activityNames[class][activity]
	if activityName == "" {
		activityName = standard
	}
	return Object{
		"category_uid":  category,
		"category_name": categoryNames[category],
		"class_uid":     class,
		"class_name":    classNames[class],
		"activity_id":   activity,
		"activity_name": activityName,
		"type_uid":      class*100 + activity,
		"type_name":     classNames[class] + ": " + standard,
	}
}

func metadata(uid, tenant string, logged time.Time) Object {
	m := Object{
		"version": Version,
		"product": Object{"name": "Vigil", "vendor_name": "Vigil"},
	}
	put(m, "uid", uid)
	put(m, "tenant_uid", tenant)
	if !logged.IsZero() {
		m["logged_time"] = ms(logged)
	}
	return m
}

func setSeverity(o Object, id int) {
	o["severity_id"] = id
	o["severity"] = severityNames[id]
}

// Event maps an audit event onto its OCSF class. The class follows the
// action: auth.login.*, auth.logout and session.* are Authentication;
// password, e-mail, MFA, role and API-key changes are Account Change;
// anything else (data.*, vigil.*, a tenant's own actions) is API Activity,
// Read for data exports and downloads and the log's own read records, Other
// (named by the action) for the rest. The original action is always in
// message, and what OCSF has no attribute for (risk, metadata, device id,
// actor type) is in unmapped.
func Event(ev *audit.Event) Object {
	class, category, activity, name := classify(ev)
	o := header(class, category, activity, name)
	o["time"] = ms(ev.Time)
	o["metadata"] = metadata(ev.ID, ev.Tenant, ev.ReceivedAt)
	o["message"] = ev.Action
	setSeverity(o, SeverityInformational)
	st := StatusUnknown
	switch ev.Outcome {
	case audit.OutcomeSuccess:
		st = StatusSuccess
	case audit.OutcomeFailure:
		st = StatusFailure
	}
	o["status_id"], o["status"] = st, statusNames[st]
	put(o, "status_detail", ev.Reason)
	put(o, "src_endpoint", endpoint(ev))
	if ev.Context.UserAgent != "" || ev.Context.RequestID != "" {
		hr := Object{}
		put(hr, "user_agent", ev.Context.UserAgent)
		put(hr, "uid", ev.Context.RequestID)
		o["http_request"] = hr
	}
	actor := user(ev.Actor.ID, ev.Actor.Name, ev.Actor.Email)
	targetMapped := false
	switch class {
	case ClassAuthentication:
		// user is the subject authenticated: for a failure, the identifier
		// that was tried.
		o["user"] = actor
		if ev.Context.SessionID != "" {
			o["session"] = Object{"uid": ev.Context.SessionID}
		}
		if ev.Tenant != "" {
			o["service"] = Object{"uid": ev.Tenant}
		}
		switch ev.Context.AuthMethod {
		case "":
		case "oauth":
			o["auth_protocol_id"], o["auth_protocol"] = 6, "OAUTH 2.0"
		default:
			o["auth_protocol_id"], o["auth_protocol"] = 99, ev.Context.AuthMethod
		}
	case ClassAccountChange:
		// user is the account changed; actor.user who changed it.
		target := actor
		if ev.Target.ID != "" && (ev.Target.Type == "" || ev.Target.Type == "user" || ev.Target.Type == "account") {
			target, targetMapped = user(ev.Target.ID, ev.Target.Name, ""), true
		}
		if strings.HasPrefix(ev.Action, "api_key.") && ev.Target.ID != "" {
			// The key is a credential of the actor's account.
			target, targetMapped = copyObject(actor), true
			target["credential_uid"] = ev.Target.ID
		}
		o["user"] = target
		o["actor"] = actorObject(actor, ev.Context.SessionID)
	default:
		o["actor"] = actorObject(actor, ev.Context.SessionID)
		o["api"] = Object{"operation": ev.Action}
		if ev.Target.ID != "" || ev.Target.Name != "" {
			r := Object{}
			put(r, "uid", ev.Target.ID)
			put(r, "name", ev.Target.Name)
			put(r, "type", ev.Target.Type)
			o["resources"] = []Object{r}
			targetMapped = true
		}
	}
	put(o, "unmapped", unmapped(ev, targetMapped))
	return o
}

// classify picks the class and activity of an event; name is set for
// activity Other (a source-specific label, as OCSF asks).
func classify(ev *audit.Event) (class, category, activity int, name string) {
	switch ev.Action {
	case audit.ActionLoginSuccess, audit.ActionLoginFailure, audit.ActionSessionCreated:
		return ClassAuthentication, CategoryIAM, AuthLogon, ""
	case audit.ActionLogout, audit.ActionSessionRevoked:
		return ClassAuthentication, CategoryIAM, AuthLogoff, ""
	case audit.ActionPasswordChanged:
		return ClassAccountChange, CategoryIAM, AccountPasswordChange, ""
	case audit.ActionPasswordReset:
		return ClassAccountChange, CategoryIAM, AccountPasswordReset, ""
	case audit.ActionMFAEnrolled:
		return ClassAccountChange, CategoryIAM, AccountMFAFactorEnable, ""
	case audit.ActionMFARemoved:
		return ClassAccountChange, CategoryIAM, AccountMFAFactorDisbl, ""
	case audit.ActionEmailChanged:
		return ClassAccountChange, CategoryIAM, ActivityOther, "Email Change"
	case audit.ActionRoleChanged:
		return ClassAccountChange, CategoryIAM, ActivityOther, "Role Change"
	case audit.ActionAPIKeyCreated:
		return ClassAccountChange, CategoryIAM, ActivityOther, "API Key Create"
	case audit.ActionAPIKeyRevoked:
		return ClassAccountChange, CategoryIAM, ActivityOther, "API Key Revoke"
	}
	if strings.HasPrefix(ev.Action, "auth.login.") || strings.HasPrefix(ev.Action, "session.") {
		return ClassAuthentication, CategoryIAM, ActivityOther, ev.Action
	}
	switch ev.Action {
	case audit.ActionDataExported, audit.ActionDataDownloaded, audit.ActionSearch, audit.ActionExport:
		return ClassAPIActivity, CategoryApplication, APIRead, ""
	}
	return ClassAPIActivity, CategoryApplication, ActivityOther, ev.Action
}

func user(uid, name, email string) Object {
	u := Object{}
	put(u, "uid", uid)
	put(u, "name", name)
	put(u, "email_addr", email)
	return u
}

func copyObject(o Object) Object {
	c := make(Object, len(o)+1)
	for k, v := range o {
		c[k] = v
	}
	return c
}

func actorObject(u Object, session string) Object {
	a := Object{}
	put(a, "user", u)
	if session != "" {
		a["session"] = Object{"uid": session}
	}
	return a
}

// endpoint is src_endpoint: the address with its location and network,
// from enrichment or, failing that, the client's own location.
func endpoint(ev *audit.Event) Object {
	if !ev.Context.IP.IsValid() {
		return nil
	}
	e := Object{"ip": ev.Context.IP.String()}
	loc := Object{}
	if g := ev.Enrichment.Geo; g != nil {
		put(loc, "country", g.Country)
		put(loc, "region", g.Region)
		put(loc, "city", g.City)
		if g.HasLocation {
			loc["coordinates"] = []float64{g.Longitude, g.Latitude}
		}
	} else if g := ev.Context.Geo; g != nil {
		put(loc, "country", g.Country)
		put(loc, "region", g.Region)
		put(loc, "city", g.City)
		if g.Latitude != nil && g.Longitude != nil {
			loc["coordinates"] = []float64{*g.Longitude, *g.Latitude}
		}
	}
	put(e, "location", loc)
	if n := ev.Enrichment.Network; n != nil && (n.ASN != 0 || n.ASOrg != "") {
		as := Object{}
		if n.ASN != 0 {
			as["number"] = int64(n.ASN)
		}
		put(as, "name", n.ASOrg)
		e["autonomous_system"] = as
	}
	return e
}

// unmapped holds what OCSF has no attribute for.
func unmapped(ev *audit.Event, targetMapped bool) Object {
	u := Object{}
	put(u, "actor_type", ev.Actor.Type)
	if ev.Risk != nil {
		r := Object{"score": ev.Risk.Score}
		put(r, "decision", ev.Risk.Decision)
		put(r, "reasons", ev.Risk.Reasons)
		u["risk"] = r
	}
	put(u, "device_id", ev.Context.DeviceID)
	if !targetMapped {
		put(u, "target_type", ev.Target.Type)
		put(u, "target_id", ev.Target.ID)
		put(u, "target_name", ev.Target.Name)
	}
	if n := ev.Enrichment.Network; n != nil {
		put(u, "network_lists", n.Lists)
	}
	if len(ev.Metadata) > 0 {
		u["metadata"] = ev.Metadata
	}
	return u
}
