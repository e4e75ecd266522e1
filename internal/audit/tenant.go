package audit

import (
	"context"
	"slices"
	"time"
)

// DefaultRetentionDays is a tenant's retention when none is set: a year of
// baselines plus a margin.
const DefaultRetentionDays = 400

// Tenant is one customer organisation of the SaaS.
type Tenant struct {
	ID            string `json:"id"`
	Name          string `json:"name,omitempty"`
	RetentionDays int    `json:"retention_days"`
	// MaxEventAgeDays, when positive, is how many days before its receive
	// time an event of this tenant may be dated, overriding the
	// installation's default (ingest.max_event_age). An operator raises it
	// deliberately to let a tenant backfill history; 0 means the default.
	MaxEventAgeDays int       `json:"max_event_age_days,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
}

// Scope is a permission carried by an API key.
type Scope string

// Scopes. ScopeAdmin implies every other scope within the key's reach: its
// tenant for a tenant key, every tenant for an operator key. Every other
// scope means exactly what it names, for both kinds of key.
const (
	ScopeEventsWrite   Scope = "events:write"
	ScopeEventsRead    Scope = "events:read"
	ScopeFindingsRead  Scope = "findings:read"
	ScopeFindingsWrite Scope = "findings:write"
	ScopeRulesWrite    Scope = "rules:write"
	ScopeAdmin         Scope = "admin"
)

// AllScopes lists every scope.
var AllScopes = []Scope{ScopeEventsWrite, ScopeEventsRead, ScopeFindingsRead, ScopeFindingsWrite, ScopeRulesWrite, ScopeAdmin}

// APIKey is a stored API key. The secret itself is never stored: only
// Hash, the SHA-256 of the secret part, is. An operator key has an empty
// Tenant and may act on every tenant.
type APIKey struct {
	ID         string     `json:"id"`
	Tenant     string     `json:"tenant,omitempty"`
	Name       string     `json:"name,omitempty"`
	Scopes     []Scope    `json:"scopes"`
	Hash       []byte     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// Operator reports whether the key is an operator (all-tenant) key.
func (k *APIKey) Operator() bool { return k.Tenant == "" }

// Principal is the authenticated caller of a request.
type Principal struct {
	KeyID string
	// Tenant is the key's tenant, "" for an operator.
	Tenant string
	Scopes []Scope
}

// Operator reports whether the caller may act on every tenant.
func (p Principal) Operator() bool { return p.Tenant == "" }

// Has reports whether the principal holds scope s: it was granted s, or
// admin, which holds every scope. Operator keys get no scope for being
// operator keys: an operator key created with events:read only reads.
func (p Principal) Has(s Scope) bool {
	return slices.Contains(p.Scopes, ScopeAdmin) || slices.Contains(p.Scopes, s)
}

// TenantStore keeps tenants.
//
// Contract: CreateTenant returns ECONFLICT when the id exists; GetTenant
// returns ENOTFOUND when it does not; ListTenants is ordered by id.
type TenantStore interface {
	CreateTenant(ctx context.Context, t Tenant) error
	GetTenant(ctx context.Context, id string) (*Tenant, error)
	ListTenants(ctx context.Context) ([]Tenant, error)
	UpdateTenant(ctx context.Context, t Tenant) error
}

// KeyStore keeps API keys (hashed).
//
// Contract: CreateKey returns ECONFLICT for an existing id; GetKey returns
// ENOTFOUND for an unknown id (revoked keys are still returned, with
// RevokedAt set); ListKeys with tenant "" lists operator keys only, and
// ListAllKeys every key; RevokeKey is idempotent and ENOTFOUND for an
// unknown id or one in another tenant (tenant "" matches any).
type KeyStore interface {
	CreateKey(ctx context.Context, k APIKey) error
	GetKey(ctx context.Context, id string) (*APIKey, error)
	ListKeys(ctx context.Context, tenant string) ([]APIKey, error)
	ListAllKeys(ctx context.Context) ([]APIKey, error)
	RevokeKey(ctx context.Context, tenant, id string, at time.Time) error
	// TouchKey records a use of the key; callers rate-limit how often.
	TouchKey(ctx context.Context, id string, at time.Time) error
}
