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
)

// field names a required field and, optionally, the values it may take.
type field struct {
	path   string
	values []string
}

// catalogEntry is what one catalog action requires beyond tenant, action and time.
type catalogEntry struct {
	required []field
}

var catalog = map[string]catalogEntry{
	ActionLoginSuccess: {required: []field{{path: "actor.id"}, {path: "context.ip"}, {path: "context.user_agent"},
		{path: "context.auth_method", values: AuthMethods}, {path: "context.session_id"}}},
	ActionLoginFailure:    {required: []field{{path: "actor.id"}, {path: "context.ip"}, {path: "reason", values: LoginFailReasons}}},
	ActionLogout:          {required: []field{{path: "actor.id"}, {path: "context.session_id"}, {path: "reason", values: LogoutReasons}}},
	ActionMFAEnrolled:     {required: []field{{path: "actor.id"}, {path: "metadata.factor", values: MFAFactors}}},
	ActionMFARemoved:      {required: []field{{path: "actor.id"}, {path: "metadata.factor", values: MFAFactors}}},
	ActionPasswordChanged: {required: []field{{path: "actor.id"}}},
	ActionPasswordReset:   {required: []field{{path: "actor.id"}, {path: "metadata.stage", values: ResetStages}}},
	ActionSessionCreated:  {required: []field{{path: "actor.id"}, {path: "context.session_id"}}},
	ActionSessionRevoked:  {required: []field{{path: "actor.id"}, {path: "context.session_id"}, {path: "reason", values: SessionRevokeCodes}}},
	ActionAPIKeyCreated:   {required: []field{{path: "actor.id"}, {path: "target.id"}}},
	ActionAPIKeyRevoked:   {required: []field{{path: "actor.id"}, {path: "target.id"}}},
	ActionEmailChanged:    {required: []field{{path: "actor.id"}, {path: "target.id"}}},
	ActionRoleChanged:     {required: []field{{path: "actor.id"}, {path: "target.id"}, {path: "metadata.new_role"}}},
	ActionDataExported:    {required: []field{{path: "actor.id"}}},
	ActionDataDownloaded:  {required: []field{{path: "actor.id"}}},
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
// and the v1 catalog. The returned error is an EINVALID *Error naming the
// first offending field, e.g. "actor.id is required for auth.login.success".
// now is the receive time, used for the future-skew check.
func (e *Event) Validate(now time.Time) error {
	if e.Tenant == "" {
		return FieldErrorf("tenant", "tenant is required")
	}
	if !ValidTenantID(e.Tenant) {
		return FieldErrorf("tenant", "tenant must be 1-64 letters, digits, '-', '_' or '.'")
	}
	if e.Action == "" {
		return FieldErrorf("action", "action is required")
	}
	if !ValidAction(e.Action) {
		return FieldErrorf("action", "action %q must be lowercase dot-separated segments like auth.login.success (at most %d bytes)", clip(e.Action), MaxActionBytes)
	}
	if err := checkText("id", e.ID, MaxIDBytes); err != nil {
		return err
	}
	if e.Time.After(now.Add(MaxFutureSkew)) {
		return FieldErrorf("time", "time %s is more than %s in the future", e.Time.Format(time.RFC3339), MaxFutureSkew)
	}
	if e.Time.Year() < 2000 {
		return FieldErrorf("time", "time %s is before the year 2000", e.Time.Format(time.RFC3339))
	}
	switch e.Outcome {
	case OutcomeUnknown, OutcomeSuccess, OutcomeFailure:
	default:
		return FieldErrorf("outcome", "outcome must be success or failure, not %q", clip(string(e.Outcome)))
	}
	if d := suffixOutcome(e.Action); d != OutcomeUnknown && e.Outcome != d {
		return FieldErrorf("outcome", "outcome %q contradicts the action %s", e.Outcome, e.Action)
	}
	if e.Actor.Type != "" && !slices.Contains(ActorTypes, e.Actor.Type) {
		return FieldErrorf("actor.type", "actor.type must be one of %s", strings.Join(ActorTypes, ", "))
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
			return err
		}
	}
	if g := e.Context.Geo; g != nil {
		if g.Latitude != nil && (*g.Latitude < -90 || *g.Latitude > 90) {
			return FieldErrorf("context.geo.latitude", "context.geo.latitude must be within [-90, 90]")
		}
		if g.Longitude != nil && (*g.Longitude < -180 || *g.Longitude > 180) {
			return FieldErrorf("context.geo.longitude", "context.geo.longitude must be within [-180, 180]")
		}
		if (g.Latitude == nil) != (g.Longitude == nil) {
			return FieldErrorf("context.geo", "context.geo needs both latitude and longitude, or neither")
		}
	}
	if n := countKeys(e.Metadata, 0); n > MaxMetadataKeys {
		return FieldErrorf("metadata", "metadata has %d keys; at most %d are allowed", n, MaxMetadataKeys)
	}
	entry, ok := catalog[e.Action]
	if !ok {
		return nil
	}
	for _, f := range entry.required {
		v, present := e.lookup(f.path)
		if !present {
			return FieldErrorf(f.path, "%s is required for %s", f.path, e.Action)
		}
		if f.values != nil && !slices.Contains(f.values, v) {
			return FieldErrorf(f.path, "%s must be one of %s for %s, not %q", f.path, strings.Join(f.values, ", "), e.Action, clip(v))
		}
	}
	return nil
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
