package client

import "time"

// Event is one audit record, in the wire form of the HTTP API. On Send only
// Action and Actor are required by the format itself; the event catalog
// (see docs) says which further fields each known action needs. ID is the
// idempotency key: Send and Batcher.Add assign a ULID when it is empty, so a
// retry is answered as a duplicate rather than stored twice. Time defaults
// to the receive time; it is sent in RFC 3339 with nanoseconds. ReceivedAt,
// Enrichment and Risk are filled in by the server on events it returns.
type Event struct {
	ID         string         `json:"id,omitempty"`
	Tenant     string         `json:"tenant,omitempty"`
	Time       time.Time      `json:"time,omitzero"`
	ReceivedAt time.Time      `json:"received_at,omitzero"`
	Action     string         `json:"action"`
	Outcome    string         `json:"outcome,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	Actor      Actor          `json:"actor"`
	Target     Target         `json:"target,omitzero"`
	Context    Context        `json:"context,omitzero"`
	Metadata   map[string]any `json:"metadata,omitempty"`
	Enrichment Enrichment     `json:"enrichment,omitzero"`
	Risk       *Risk          `json:"risk,omitempty"`
}

// Actor is who did it. Type is one of the Actor* constants (default user
// when ID is set). For auth.login.failure, ID is the attempted identifier.
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

// Context is where the event came from. IP is an IPv4 or IPv6 address in
// text form.
type Context struct {
	IP         string     `json:"ip,omitempty"`
	UserAgent  string     `json:"user_agent,omitempty"`
	SessionID  string     `json:"session_id,omitempty"`
	RequestID  string     `json:"request_id,omitempty"`
	AuthMethod string     `json:"auth_method,omitempty"`
	DeviceID   string     `json:"device_id,omitempty"`
	Geo        *ClientGeo `json:"geo,omitempty"`
}

// ClientGeo is location the client knows (a CDN's country header, say). The
// server uses it only when its GeoIP database has no answer for the IP.
// Latitude and Longitude go together.
type ClientGeo struct {
	Country   string   `json:"country,omitempty"`
	Region    string   `json:"region,omitempty"`
	City      string   `json:"city,omitempty"`
	Latitude  *float64 `json:"latitude,omitempty"`
	Longitude *float64 `json:"longitude,omitempty"`
}

// Enrichment is what the server adds to a stored event. A nil part means
// nothing could be said.
type Enrichment struct {
	Geo       *Geo       `json:"geo,omitempty"`
	Network   *Network   `json:"network,omitempty"`
	UserAgent *UserAgent `json:"user_agent,omitempty"`
}

// Geo is the location of an IP address. Latitude and Longitude are
// meaningful only when HasLocation is set. Source is "geoip" or "client".
type Geo struct {
	Country     string  `json:"country,omitempty"`
	Region      string  `json:"region,omitempty"`
	City        string  `json:"city,omitempty"`
	Latitude    float64 `json:"latitude"`
	Longitude   float64 `json:"longitude"`
	HasLocation bool    `json:"has_location,omitempty"`
	AccuracyKM  int     `json:"accuracy_km,omitempty"`
	TimeZone    string  `json:"time_zone,omitempty"`
	Source      string  `json:"source,omitempty"`
}

// Network is what is known of an IP's network. Scope is public, private,
// loopback, link_local or reserved; Lists names every IP list that matched.
type Network struct {
	Scope      string   `json:"scope,omitempty"`
	ASN        uint32   `json:"asn,omitempty"`
	ASOrg      string   `json:"as_org,omitempty"`
	Tor        bool     `json:"tor,omitempty"`
	Datacenter bool     `json:"datacenter,omitempty"`
	VPN        bool     `json:"vpn,omitempty"`
	Lists      []string `json:"lists,omitempty"`
}

// UserAgent is a parsed user-agent string. Class is browser, mobile_app,
// crawler, scripted, headless, empty or unknown.
type UserAgent struct {
	Browser        string `json:"browser,omitempty"`
	BrowserVersion string `json:"browser_version,omitempty"`
	OS             string `json:"os,omitempty"`
	OSVersion      string `json:"os_version,omitempty"`
	Device         string `json:"device,omitempty"`
	Class          string `json:"class,omitempty"`
}

// Risk is the risk assessment of a successful login: a 0–100 score, the
// reasons behind it, and a decision (one of the Decision* constants).
type Risk struct {
	Score    int      `json:"score"`
	Reasons  []string `json:"reasons,omitempty"`
	Decision string   `json:"decision,omitempty"`
}

// Risk decisions.
const (
	DecisionAllow     = "allow"
	DecisionChallenge = "challenge"
	DecisionDeny      = "deny"
)

// Outcomes. The server derives the outcome from a .success/.failure action
// suffix when it is empty.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// Actor types.
const (
	ActorUser      = "user"
	ActorAPIKey    = "api_key"
	ActorService   = "service"
	ActorAnonymous = "anonymous"
)

// Actions of the v1 event catalog. Other well-formed actions are accepted
// as custom actions.
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
)
