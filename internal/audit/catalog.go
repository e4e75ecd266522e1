package audit

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on one event. The whole-event and metadata byte caps are enforced by
// the decoder, which sees the encoded form; Validate enforces the rest.
const (
	MaxEventBytes    = 32 << 10
	MaxMetadataBytes = 8 << 10
	MaxMetadataKeys  = 64
	MaxActionBytes   = 128
	MaxIDBytes       = 128
	MaxFieldBytes    = 512  // actor, target and context identifiers
	MaxUserAgent     = 1024 // bytes
	// MaxFutureSkew is how far in the future an event time may lie.
	MaxFutureSkew = 5 * time.Minute
)

// Enumerations used by the catalog.
var (
	AuthMethods        = []string{"password", "sso", "magic_link", "passkey", "oauth", "api_key", "other"}
	LoginFailReasons   = []string{"invalid_password", "unknown_user", "account_locked", "mfa_failed", "expired_password", "other"}
	LogoutReasons      = []string{"user", "expired", "revoked"}
	MFAFactors         = []string{"totp", "sms", "webauthn", "email", "push", "other"}
	ResetStages        = []string{"requested", "completed"}
	SessionRevokeCodes = []string{"user", "admin", "security", "expired"}
	ActorTypes         = []string{ActorUser, ActorAPIKey, ActorService, ActorAnonymous}
)

// Catalog actions (v1).
const (
	ActionLoginSuccess    = "auth.login.success"
	ActionLoginFailure    = "auth.login.failure"
	ActionLogout          = "auth.logout"
	ActionMFAEnrolled     = "auth.mfa.enrolled"
	ActionMFARemoved      = "auth.mfa.removed"
	ActionPasswordChanged = "auth.password.changed"
	ActionPasswordReset   = "auth.password.reset"
	ActionSessionCreated  = "session.created"
	ActionSessionRevoked  = "session.revoked"
	ActionAPIKeyCreated   = "api_key.created"
	ActionAPIKeyRevoked   = "api_key.revoked"
	ActionEmailChanged    = "user.email.changed"
	ActionRoleChanged     = "user.role.changed"
	ActionDataExported    = "data.exported"
	ActionDataDownloaded  = "data.downloaded"
	// ActionSearch and ActionExport are written by Vigil itself when the log is read.
	ActionSearch = "vigil.search"
	ActionExport = "vigil.export"
	// ActionRetentionPurged is written by Vigil when retention deleted a
	// tenant's old events, findings or incidents.
	ActionRetentionPurged = "vigil.retention.purged"
)

// field names a required field and, optionally, the values it may take.
type field struct {
	path   string
	values []string
}

// catalogEntry is what one catalog action requires beyond tenant, action
// and time, and what it means (docs/catalog.md is generated from it).
type catalogEntry struct {
	doc      string
	required []field
}

var catalog = map[string]catalogEntry{
	ActionLoginSuccess: {doc: "A user signed in. The event detection learns from most: location, network, device and time.",
		required: []field{{path: "actor.id"}, {path: "context.ip"}, {path: "context.user_agent"},
			{path: "context.auth_method", values: AuthMethods}, {path: "context.session_id"}}},
	ActionLoginFailure: {doc: "A sign-in failed. actor.id is the identifier that was tried, which may name no real account.",
		required: []field{{path: "actor.id"}, {path: "context.ip"}, {path: "reason", values: LoginFailReasons}}},
	ActionLogout: {doc: "A session ended.",
		required: []field{{path: "actor.id"}, {path: "context.session_id"}, {path: "reason", values: LogoutReasons}}},
	ActionMFAEnrolled: {doc: "A second factor was added to the account.",
		required: []field{{path: "actor.id"}, {path: "metadata.factor", values: MFAFactors}}},
	ActionMFARemoved: {doc: "A second factor was removed from the account.",
		required: []field{{path: "actor.id"}, {path: "metadata.factor", values: MFAFactors}}},
	ActionPasswordChanged: {doc: "The user changed their password while signed in.",
		required: []field{{path: "actor.id"}}},
	ActionPasswordReset: {doc: "A password reset was requested or completed.",
		required: []field{{path: "actor.id"}, {path: "metadata.stage", values: ResetStages}}},
	ActionSessionCreated: {doc: "A session was issued (after a login, or by refreshing a token).",
		required: []field{{path: "actor.id"}, {path: "context.session_id"}}},
	ActionSessionRevoked: {doc: "A session was ended by someone or something other than its own logout.",
		required: []field{{path: "actor.id"}, {path: "context.session_id"}, {path: "reason", values: SessionRevokeCodes}}},
	ActionAPIKeyCreated: {doc: "An API key was created; target.id is the key.",
		required: []field{{path: "actor.id"}, {path: "target.id"}}},
	ActionAPIKeyRevoked: {doc: "An API key was revoked; target.id is the key.",
		required: []field{{path: "actor.id"}, {path: "target.id"}}},
	ActionEmailChanged: {doc: "An account's e-mail address changed; target.id is the account.",
		required: []field{{path: "actor.id"}, {path: "target.id"}}},
	ActionRoleChanged: {doc: "An account's role changed; target.id is the account, metadata.new_role its new role.",
		required: []field{{path: "actor.id"}, {path: "target.id"}, {path: "metadata.new_role"}}},
	ActionDataExported: {doc: "The actor exported data in bulk.",
		required: []field{{path: "actor.id"}}},
	ActionDataDownloaded: {doc: "The actor downloaded a file or a report.",
		required: []field{{path: "actor.id"}}},
}

// CatalogNamespaces are the namespaces the catalog owns: an action in one of
// them must be a catalog action, so a typo is an error, not a custom action
// that detection never sees.
var CatalogNamespaces = []string{"auth", "session", "user", "api_key", "data"}

// ReservedNamespace is where Vigil's own records live (vigil.search,
// vigil.export); clients may not write it.
const ReservedNamespace = "vigil"

// CatalogDoc returns what a catalog action means, "" for any other.
func CatalogDoc(action string) string { return catalog[action].doc }

// AllowedValues returns the values a required field of a catalog action
// may take, nil when any non-empty value will do.
func AllowedValues(action, path string) []string {
	for _, f := range catalog[action].required {
		if f.path == path {
			return f.values
		}
	}
	return nil
}

// CatalogActions returns the v1 catalog's actions, sorted.
func CatalogActions() []string {
	out := make([]string, 0, len(catalog))
	for a := range catalog {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// RequiredFields returns the dotted paths an action requires beyond tenant,
// action and time, or nil for a custom action.
func RequiredFields(action string) []string {
	var out []string
	for _, f := range catalog[action].required {
		out = append(out, f.path)
	}
	return out
}

// InCatalog reports whether action is one of the v1 catalog's.
func InCatalog(action string) bool {
	_, ok := catalog[action]
	return ok
}

// ValidAction reports whether s is a well-formed action name: lowercase,
// dot-namespaced segments of [a-z][a-z0-9_]*, at least two, at most
// MaxActionBytes bytes.
func ValidAction(s string) bool {
	if len(s) == 0 || len(s) > MaxActionBytes {
		return false
	}
	segs := 0
	for seg := range strings.SplitSeq(s, ".") {
		if seg == "" || seg[0] < 'a' || seg[0] > 'z' {
			return false
		}
		for i := 1; i < len(seg); i++ {
			c := seg[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
				return false
			}
		}
		segs++
	}
	return segs >= 2
}

// ValidTenantID reports whether s is a well-formed tenant id: 1–64 bytes of
// letters, digits, '-', '_' or '.', starting with a letter or digit.
func ValidTenantID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		if !alnum && (i == 0 || (c != '-' && c != '_' && c != '.')) {
			return false
		}
	}
	return true
}

// Normalize canonicalises an event in place before validation: the time in
// UTC (defaulting to now when zero), the IP unmapped from IPv4-in-IPv6 and
// stripped of any zone, the outcome derived from the action suffix, and the
// actor type defaulted to "user" when an actor id is present.
func (e *Event) Normalize(now time.Time) {
	if e.Time.IsZero() {
		e.Time = now
	}
	e.Time = e.Time.UTC()
	if e.Context.IP.IsValid() {
		e.Context.IP = e.Context.IP.Unmap().WithZone("")
	}
	if e.Outcome == OutcomeUnknown {
		e.Outcome = suffixOutcome(e.Action)
	}
	if e.Actor.Type == "" && e.Actor.ID != "" {
		e.Actor.Type = ActorUser
	}
}

func suffixOutcome(action string) Outcome {
	switch {
	case strings.HasSuffix(action, ".success"):
		return OutcomeSuccess
	case strings.HasSuffix(action, ".failure"):
		return OutcomeFailure
	}
	return OutcomeUnknown
}

// Validate checks a normalised event against the naming rules, the limits
// and the v1 catalog. It reports every problem at once: the returned error
// is an EINVALID *Error whose Problems name each offending field, e.g.
// "actor.id is required for auth.login.success". now is the receive time,
// used for the future-skew check. Actions in the reserved vigil. namespace
// are refused; Vigil's own records use ValidateOwn.
func (e *Event) Validate(now time.Time) error { return e.validate(now, false) }

// ValidateOwn is Validate for the records Vigil writes itself (the
// read-audit vigil.search and vigil.export): the one difference is that
// the reserved vigil. namespace is allowed.
func (e *Event) ValidateOwn(now time.Time) error { return e.validate(now, true) }

func (e *Event) validate(now time.Time, own bool) error {
	var ps []Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case e.Tenant == "":
		add("tenant", "tenant is required")
	case !ValidTenantID(e.Tenant):
		add("tenant", "tenant must be 1-64 letters, digits, '-', '_' or '.'")
	}
	entry, inCatalog := catalog[e.Action]
	switch ns := e.Namespace(); {
	case e.Action == "":
		add("action", "action is required")
	case !ValidAction(e.Action):
		add("action", "action %q must be lowercase dot-separated segments like auth.login.success (at most %d bytes)", clip(e.Action), MaxActionBytes)
	case ns == ReservedNamespace && !own:
		add("action", "the vigil. namespace is reserved for the records Vigil writes itself; name your actions in your own namespace, such as billing.invoice.paid")
	case !inCatalog && slices.Contains(CatalogNamespaces, ns):
		add("action", "%s", unknownCatalogAction(e.Action))
	}
	if e.ID != "" && !ValidEventID(e.ID) {
		add("id", "id must be 1-%d letters, digits, '-', '_', '.' or ':', starting with a letter or digit", MaxIDBytes)
	}
	if e.Time.After(now.Add(MaxFutureSkew)) {
		add("time", "time %s is more than %s in the future", e.Time.Format(time.RFC3339), MaxFutureSkew)
	}
	if e.Time.Year() < 2000 {
		add("time", "time %s is before the year 2000", e.Time.Format(time.RFC3339))
	}
	switch e.Outcome {
	case OutcomeUnknown, OutcomeSuccess, OutcomeFailure:
		if d := suffixOutcome(e.Action); d != OutcomeUnknown && e.Outcome != d {
			add("outcome", "outcome %q contradicts the action %s", e.Outcome, e.Action)
		}
	default:
		add("outcome", "outcome must be success or failure, not %q", clip(string(e.Outcome)))
	}
	if e.Actor.Type != "" && !slices.Contains(ActorTypes, e.Actor.Type) {
		add("actor.type", "actor.type must be one of %s", strings.Join(ActorTypes, ", "))
	}
	for _, f := range []struct {
		path string
		v    string
		max  int
	}{
		{"actor.id", e.Actor.ID, MaxFieldBytes}, {"actor.email", e.Actor.Email, MaxFieldBytes}, {"actor.name", e.Actor.Name, MaxFieldBytes},
		{"target.type", e.Target.Type, MaxFieldBytes}, {"target.id", e.Target.ID, MaxFieldBytes}, {"target.name", e.Target.Name, MaxFieldBytes},
		{"reason", e.Reason, MaxFieldBytes},
		{"context.user_agent", e.Context.UserAgent, MaxUserAgent}, {"context.session_id", e.Context.SessionID, MaxFieldBytes},
		{"context.request_id", e.Context.RequestID, MaxFieldBytes}, {"context.auth_method", e.Context.AuthMethod, MaxFieldBytes},
		{"context.device_id", e.Context.DeviceID, MaxFieldBytes},
	} {
		if err := checkText(f.path, f.v, f.max); err != nil {
			add(f.path, "%s", err.Error())
		}
	}
	if g := e.Context.Geo; g != nil {
		if g.Latitude != nil && !(*g.Latitude >= -90 && *g.Latitude <= 90) { // NaN too
			add("context.geo.latitude", "context.geo.latitude must be within [-90, 90]")
		}
		if g.Longitude != nil && !(*g.Longitude >= -180 && *g.Longitude <= 180) {
			add("context.geo.longitude", "context.geo.longitude must be within [-180, 180]")
		}
		if (g.Latitude == nil) != (g.Longitude == nil) {
			add("context.geo", "context.geo needs both latitude and longitude, or neither")
		}
	}
	if n := countKeys(e.Metadata, 0); n > MaxMetadataKeys {
		add("metadata", "metadata has %d keys; at most %d are allowed", n, MaxMetadataKeys)
	}
	if inCatalog {
		for _, f := range entry.required {
			v, present := e.lookup(f.path)
			if !present {
				add(f.path, "%s is required for %s", f.path, e.Action)
			} else if f.values != nil && !slices.Contains(f.values, v) {
				add(f.path, "%s must be one of %s for %s, not %q", f.path, strings.Join(f.values, ", "), e.Action, clip(v))
			}
		}
	}
	return Invalid(ps)
}

// ValidEventID reports whether s is a well-formed event id: 1-MaxIDBytes
// bytes of ASCII letters, digits, '-', '_', '.' or ':', starting with a
// letter or digit. Every such id can be fetched as GET /v1/events/{id}
// without escaping (no '/', no "." or ".." path segment).
func ValidEventID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		if !alnum && (i == 0 || (c != '-' && c != '_' && c != '.' && c != ':')) {
			return false
		}
	}
	return true
}

// unknownCatalogAction explains why an action in a catalog namespace is
// refused, suggesting the nearest catalog action.
func unknownCatalogAction(action string) string {
	ns, _, _ := strings.Cut(action, ".")
	best, bestD := "", -1
	var same []string
	for _, a := range CatalogActions() {
		if strings.HasPrefix(a, ns+".") {
			same = append(same, a)
		}
		if d := editDistance(action, a); bestD < 0 || d < bestD {
			best, bestD = a, d
		}
	}
	msg := fmt.Sprintf("action %q is not in the catalog, which owns the %s. namespace", action, ns)
	if bestD <= max(2, len(action)/4) {
		msg += fmt.Sprintf("; did you mean `%s`?", best)
	} else {
		msg += fmt.Sprintf("; its %s. actions are %s", ns, strings.Join(same, ", "))
	}
	return msg + " (custom actions belong in your own namespace, such as billing.invoice.paid)"
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// lookup returns the string value at a catalog field path and whether it is
// present (non-empty).
func (e *Event) lookup(path string) (string, bool) {
	switch path {
	case "actor.id":
		return e.Actor.ID, e.Actor.ID != ""
	case "target.id":
		return e.Target.ID, e.Target.ID != ""
	case "reason":
		return e.Reason, e.Reason != ""
	case "context.ip":
		return e.Context.IP.String(), e.Context.IP.IsValid()
	case "context.user_agent":
		return e.Context.UserAgent, e.Context.UserAgent != ""
	case "context.auth_method":
		return e.Context.AuthMethod, e.Context.AuthMethod != ""
	case "context.session_id":
		return e.Context.SessionID, e.Context.SessionID != ""
	}
	if key, ok := strings.CutPrefix(path, "metadata."); ok {
		switch v := e.Metadata[key].(type) {
		case string:
			return v, v != ""
		case nil:
			return "", false
		default:
			return fmt.Sprint(v), true
		}
	}
	panic("audit: catalog names unknown field " + path) // programmer error, caught by tests
}

func checkText(path, v string, max int) error {
	if len(v) > max {
		return FieldErrorf(path, "%s is %d bytes; at most %d are allowed", path, len(v), max)
	}
	if !utf8.ValidString(v) {
		return FieldErrorf(path, "%s is not valid UTF-8", path)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return FieldErrorf(path, "%s contains a control character", path)
		}
	}
	return nil
}

// countKeys counts the keys of a metadata object, nested objects included.
func countKeys(m map[string]any, depth int) int {
	n := len(m)
	for _, v := range m {
		switch v := v.(type) {
		case map[string]any:
			n += countKeys(v, depth+1)
		case []any:
			for _, x := range v {
				if o, ok := x.(map[string]any); ok {
					n += countKeys(o, depth+1)
				}
			}
		}
	}
	return n
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
