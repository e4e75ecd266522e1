package client

import (
	"context"
	"net/http"
	"time"
)

// ViewerTokenRequest asks for a viewer token: a short-lived, signed,
// revocable link to one tenant's console, for people without an API key.
type ViewerTokenRequest struct {
	// Tenant is required with an operator key; a tenant key mints for its
	// own tenant.
	Tenant string `json:"tenant,omitempty"`
	Name   string `json:"name,omitempty"`
	// TTL is a Go duration such as "8h" (at most a week; the server's
	// default when empty).
	TTL string `json:"ttl,omitempty"`
	// ReadOnly sessions may look but not triage.
	ReadOnly bool `json:"read_only,omitempty"`
	// Actions limits the events shown to these actions or prefixes ("auth.*").
	Actions []string `json:"actions,omitempty"`
	// Actor limits everything shown to one actor.
	Actor string `json:"actor,omitempty"`
	// FrameAncestors are the origins allowed to embed the console in a frame.
	FrameAncestors []string `json:"frame_ancestors,omitempty"`
}

// ViewerToken describes a minted viewer token (never its secret).
type ViewerToken struct {
	ID             string     `json:"id"`
	Tenant         string     `json:"tenant"`
	Name           string     `json:"name,omitempty"`
	ReadOnly       bool       `json:"read_only"`
	Actions        []string   `json:"actions,omitempty"`
	Actor          string     `json:"actor,omitempty"`
	FrameAncestors []string   `json:"frame_ancestors,omitempty"`
	CreatedBy      string     `json:"created_by"`
	CreatedAt      time.Time  `json:"created_at"`
	ExpiresAt      time.Time  `json:"expires_at"`
	RevokedAt      *time.Time `json:"revoked_at,omitempty"`
}

// ViewerLink is a minted viewer token: Token is shown once; Path is the
// console link that signs in with it (relative to the server's address).
type ViewerLink struct {
	ViewerToken ViewerToken `json:"viewer_token"`
	Token       string      `json:"token"`
	Path        string      `json:"path"`
}

// CreateViewerToken mints a viewer token (POST /v1/viewer-tokens; needs an
// admin or operator key).
func (c *Client) CreateViewerToken(ctx context.Context, r ViewerTokenRequest) (*ViewerLink, error) {
	if r.Tenant == "" {
		r.Tenant = c.tenant
	}
	var l ViewerLink
	if err := c.sendJSON(ctx, call{method: http.MethodPost, path: "/v1/viewer-tokens"}, r, &l); err != nil {
		return nil, err
	}
	return &l, nil
}
