package client

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Tenant is one customer organisation of the SaaS.
type Tenant struct {
	ID            string `json:"id"`
	Name          string `json:"name,omitempty"`
	RetentionDays int    `json:"retention_days"`
	// MaxEventAgeDays is the tenant's override of how many days back an
	// event may be dated (0: the server's default).
	MaxEventAgeDays int       `json:"max_event_age_days,omitempty"`
	CreatedAt       time.Time `json:"created_at,omitzero"`
}

// CreateTenantRequest is the body of POST /v1/tenants. RetentionDays 0
// means the server's default (400 days).
type CreateTenantRequest struct {
	ID            string `json:"id"`
	Name          string `json:"name,omitempty"`
	RetentionDays int    `json:"retention_days,omitempty"`
	// MaxEventAgeDays lets the tenant send events dated up to this many
	// days back (for a backfill); 0 keeps the server's default.
	MaxEventAgeDays int `json:"max_event_age_days,omitempty"`
}

// UpdateTenantRequest is the body of PATCH /v1/tenants/{id}: the fields
// that are set replace the tenant's.
type UpdateTenantRequest struct {
	Name          *string `json:"name,omitempty"`
	RetentionDays *int    `json:"retention_days,omitempty"`
	// MaxEventAgeDays 0 returns the tenant to the server's default.
	MaxEventAgeDays *int `json:"max_event_age_days,omitempty"`
}

// CreateTenant creates a tenant (operator keys only). An existing id is an
// ErrConflict *Error. It is retried only on 429 and 503, which the server
// answers before creating anything.
func (c *Client) CreateTenant(ctx context.Context, r CreateTenantRequest) (*Tenant, error) {
	var t Tenant
	if err := c.sendJSON(ctx, call{method: http.MethodPost, path: "/v1/tenants"}, r, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// UpdateTenant changes a tenant: an operator key any field, for example
// MaxEventAgeDays to allow a backfill; a tenant admin key only its own
// tenant's RetentionDays, within the server's bounds.
func (c *Client) UpdateTenant(ctx context.Context, id string, r UpdateTenantRequest) (*Tenant, error) {
	var t Tenant
	if err := c.sendJSON(ctx, call{method: http.MethodPatch, path: "/v1/tenants/" + url.PathEscape(id)}, r, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// ListTenants lists tenants: all of them for an operator key, its own for a
// tenant key.
func (c *Client) ListTenants(ctx context.Context) ([]Tenant, error) {
	var raw json.RawMessage
	if err := c.getJSON(ctx, "/v1/tenants", nil, &raw); err != nil {
		return nil, err
	}
	// The contract does not fix the shape; accept {"tenants":[…]} (like
	// keys and findings) and a bare array.
	var ts []Tenant
	if b := bytes.TrimSpace(raw); len(b) > 0 && b[0] == '[' {
		if err := decodeBody("GET /v1/tenants", b, &ts); err != nil {
			return nil, err
		}
		return ts, nil
	}
	var env struct {
		Tenants []Tenant `json:"tenants"`
	}
	if err := decodeBody("GET /v1/tenants", raw, &env); err != nil {
		return nil, err
	}
	return env.Tenants, nil
}

// GetTenant returns the tenant with id, or an ErrNotFound *Error.
func (c *Client) GetTenant(ctx context.Context, id string) (*Tenant, error) {
	var t Tenant
	if err := c.getJSON(ctx, "/v1/tenants/"+url.PathEscape(id), nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Scopes an API key may carry. ScopeAdmin implies the others within the
// key's tenant.
const (
	ScopeEventsWrite   = "events:write"
	ScopeEventsRead    = "events:read"
	ScopeFindingsRead  = "findings:read"
	ScopeFindingsWrite = "findings:write"
	ScopeRulesWrite    = "rules:write"
	ScopeAdmin         = "admin"
)

// Key is an API key's metadata; the secret is shown only once, in
// CreatedKey. An empty Tenant marks an operator key.
type Key struct {
	ID         string     `json:"id"`
	Tenant     string     `json:"tenant,omitempty"`
	Name       string     `json:"name,omitempty"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at,omitzero"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// CreateKeyRequest is the body of POST /v1/keys. Tenant may be empty for a
// tenant admin key (its own tenant is implied); an operator names it.
type CreateKeyRequest struct {
	Tenant string   `json:"tenant,omitempty"`
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

// Secret is an API key secret ("vgl_<keyid>_<secret>"). It prints as
// "[REDACTED]" with fmt and log/slog so it cannot leak into logs by
// accident; use string(s) for the value. JSON carries the real value.
type Secret string

// String returns a redacted form.
func (Secret) String() string { return "[REDACTED]" }

// GoString returns a redacted form (for %#v).
func (Secret) GoString() string { return `"[REDACTED]"` }

// LogValue returns a redacted form for log/slog.
func (Secret) LogValue() slog.Value { return slog.StringValue("[REDACTED]") }

// CreatedKey is the answer to CreateKey: the key and its secret, which the
// server shows only this once.
type CreatedKey struct {
	Key    Key    `json:"key"`
	Secret Secret `json:"secret"`
}

// CreateKey creates an API key (operators, or a tenant key with the admin
// scope for its own tenant). Like CreateTenant it is retried only on 429
// and 503, so a lost answer never mints a second key.
func (c *Client) CreateKey(ctx context.Context, r CreateKeyRequest) (*CreatedKey, error) {
	if r.Tenant == "" {
		r.Tenant = c.tenant
	}
	var ck CreatedKey
	if err := c.sendJSON(ctx, call{method: http.MethodPost, path: "/v1/keys"}, r, &ck); err != nil {
		return nil, err
	}
	return &ck, nil
}

// ListKeys lists the API keys of the client's tenant; an operator client
// without a tenant lists every key.
func (c *Client) ListKeys(ctx context.Context) ([]Key, error) {
	var env struct {
		Keys []Key `json:"keys"`
	}
	if err := c.getJSON(ctx, "/v1/keys", c.scope(nil), &env); err != nil {
		return nil, err
	}
	return env.Keys, nil
}

// RevokeKey revokes the key with id (DELETE /v1/keys/{id}). Revoking is
// idempotent, so it is retried like a read.
func (c *Client) RevokeKey(ctx context.Context, id string) error {
	_, err := c.do(ctx, call{method: http.MethodDelete, path: "/v1/keys/" + url.PathEscape(id), query: c.scope(nil), idempotent: true})
	return err
}
