package audit

import (
	"net/netip"
	"strings"
	"time"
)

// Outcome is whether the audited operation succeeded. It is derived from a
// ".success"/".failure" action suffix when the client does not give it.
type Outcome string

// Outcomes.
const (
	OutcomeUnknown Outcome = ""
	OutcomeSuccess Outcome = "success"
	OutcomeFailure Outcome = "failure"
)

// Actor types.
const (
	ActorUser      = "user"
	ActorAPIKey    = "api_key"
	ActorService   = "service"
	ActorAnonymous = "anonymous"
)

// Event is one audit record, immutable once accepted.
//
// ID is the client's idempotency key when the client supplied one, otherwise
// a ULID assigned by Vigil; (Tenant, ID) is unique. Time is the event time in
// UTC; ReceivedAt is when Vigil accepted it. Enrichment and Risk are added by
// Vigil after acceptance and are stored with the event.
type Event struct {
	ID         string         `json:"id"`
	Tenant     string         `json:"tenant"`
	Time       time.Time      `json:"time"`
	ReceivedAt time.Time      `json:"received_at"`
	Action     string         `json:"action"`
	Outcome    Outcome        `json:"outcome,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	Actor      Actor          `json:"actor"`
	Target     Target         `json:"target,omitzero"`
	Context    Context        `json:"context,omitzero"`
	Metadata   map[string]any `json:"metadata,omitempty"`
	Enrichment Enrichment     `json:"enrichment,omitzero"`
	Risk       *Risk          `json:"risk,omitempty"`
}

// Actor is who did it. For auth.login.failure, ID is the attempted
// identifier, which may name no real account.
type Actor struct {
	ID    string `json:"id,omitempty"`
	Type  string `json:"type,omitempty"`
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
}

// Target is what the action was done to, when that differs from the actor.
type Target struct {
	Type string `json:"type,omitempty"`
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

// Context is where the event came from.
type Context struct {
	IP         netip.Addr `json:"ip,omitzero"`
	UserAgent  string     `json:"user_agent,omitempty"`
	SessionID  string     `json:"session_id,omitempty"`
	RequestID  string     `json:"request_id,omitempty"`
	AuthMethod string     `json:"auth_method,omitempty"`
	DeviceID   string     `json:"device_id,omitempty"`
	// Geo is location supplied by the client (a CDN's country header, say).
	// Enrichment uses it only when no GeoIP database answers for IP.
	Geo *ClientGeo `json:"geo,omitempty"`
}

// ClientGeo is client-supplied location.
type ClientGeo struct {
	Country   string   `json:"country,omitempty"`
	Region    string   `json:"region,omitempty"`
	City      string   `json:"city,omitempty"`
	Latitude  *float64 `json:"latitude,omitempty"`
	Longitude *float64 `json:"longitude,omitempty"`
}

// Enrichment is what Vigil adds to an event: location, network and parsed
// user agent. A nil part means nothing could be said (no IP, no database, a
// lookup that missed), never an error.
type Enrichment struct {
	Geo       *Geo       `json:"geo,omitempty"`
	Network   *Network   `json:"network,omitempty"`
	UserAgent *UserAgent `json:"user_agent,omitempty"`
}

// Geo is the location of an IP address.
type Geo struct {
	Country   string  `json:"country,omitempty"` // ISO 3166-1 alpha-2
	Region    string  `json:"region,omitempty"`
	City      string  `json:"city,omitempty"`
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	// HasLocation reports whether Latitude/Longitude are meaningful.
	HasLocation bool `json:"has_location,omitempty"`
	// AccuracyKM is the accuracy radius in kilometres, 0 when unknown.
	AccuracyKM int    `json:"accuracy_km,omitempty"`
	TimeZone   string `json:"time_zone,omitempty"`
	// Source is "geoip" for a database answer, "client" for ClientGeo.
	Source string `json:"source,omitempty"`
}

// Address scopes of Network.Scope.
const (
	ScopePublic    = "public"
	ScopePrivate   = "private"
	ScopeLoopback  = "loopback"
	ScopeLinkLocal = "link_local"
	ScopeReserved  = "reserved"
)

// Network is what is known of an IP's network.
type Network struct {
	Scope string `json:"scope,omitempty"` // one of the Scope* constants
	ASN   uint32 `json:"asn,omitempty"`
	ASOrg string `json:"as_org,omitempty"`
	// Flags derived from list membership.
	Tor        bool `json:"tor,omitempty"`
	Datacenter bool `json:"datacenter,omitempty"`
	VPN        bool `json:"vpn,omitempty"`
	// Lists names every IP list that matched, sorted.
	Lists []string `json:"lists,omitempty"`
}

// User-agent classes.
const (
	UAClassBrowser   = "browser"
	UAClassMobileApp = "mobile_app"
	UAClassCrawler   = "crawler"
	UAClassScripted  = "scripted"
	UAClassHeadless  = "headless"
	UAClassEmpty     = "empty"
	UAClassUnknown   = "unknown"
)

// UserAgent is a parsed user-agent string.
type UserAgent struct {
	Browser        string `json:"browser,omitempty"`
	BrowserVersion string `json:"browser_version,omitempty"`
	OS             string `json:"os,omitempty"`
	OSVersion      string `json:"os_version,omitempty"`
	Device         string `json:"device,omitempty"`
	Class          string `json:"class,omitempty"` // one of the UAClass* constants
}

// Risk decisions for a login.
const (
	DecisionAllow     = "allow"
	DecisionChallenge = "challenge"
	DecisionDeny      = "deny"
)

// Risk is the risk assessment of a successful login.
type Risk struct {
	Score    int      `json:"score"` // 0–100
	Reasons  []string `json:"reasons,omitempty"`
	Decision string   `json:"decision,omitempty"`
}

// Namespace returns the action's first segment ("auth" for auth.login.success).
func (e *Event) Namespace() string {
	ns, _, _ := strings.Cut(e.Action, ".")
	return ns
}

// MetaString returns metadata[key] when it is a string, else "".
func (e *Event) MetaString(key string) string {
	if s, ok := e.Metadata[key].(string); ok {
		return s
	}
	return ""
}
