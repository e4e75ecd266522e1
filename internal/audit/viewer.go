package audit

import (
	"context"
	"time"
)

// ViewerToken is the stored record of a viewer token: a short-lived, signed
// credential that a tenant admin mints so that people without an API key
// (their customers' security teams) can open the console, or embed it, for
// one tenant. The token text itself is never stored; it is the signed
// encoding of ID and ExpiresAt, and the record says what it may do.
type ViewerToken struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	// Name labels the token for the admin who lists them.
	Name string `json:"name,omitempty"`
	// ReadOnly sessions may look but not triage findings.
	ReadOnly bool `json:"read_only"`
	// Actions, when set, limits the events the viewer sees to these actions
	// (exact names or prefixes such as "auth.*").
	Actions []string `json:"actions,omitempty"`
	// Actor, when set, limits everything the viewer sees to one actor.
	Actor string `json:"actor,omitempty"`
	// FrameAncestors are the origins allowed to embed the console in a
	// frame for this token's sessions (CSP frame-ancestors).
	FrameAncestors []string   `json:"frame_ancestors,omitempty"`
	CreatedBy      string     `json:"created_by"`
	CreatedAt      time.Time  `json:"created_at"`
	ExpiresAt      time.Time  `json:"expires_at"`
	RevokedAt      *time.Time `json:"revoked_at,omitempty"`
}

// ViewerTokenStore keeps viewer-token records and their revocations.
//
// Contract: CreateViewerToken returns ECONFLICT for an existing id;
// GetViewerToken returns ENOTFOUND for an unknown id (revoked tokens are
// returned with RevokedAt set); ListViewerTokens lists a tenant's tokens,
// newest first, at most limit; RevokeViewerToken is idempotent and
// ENOTFOUND for an unknown id or one in another tenant (tenant "" matches
// any); PurgeViewerTokens deletes records that expired before the cutoff.
type ViewerTokenStore interface {
	CreateViewerToken(ctx context.Context, t ViewerToken) error
	GetViewerToken(ctx context.Context, id string) (*ViewerToken, error)
	ListViewerTokens(ctx context.Context, tenant string, limit int) ([]ViewerToken, error)
	RevokeViewerToken(ctx context.Context, tenant, id string, at time.Time) error
	PurgeViewerTokens(ctx context.Context, before time.Time) (int64, error)
}

// SavedSearch is a named query a tenant's team keeps for reuse.
type SavedSearch struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	Name      string    `json:"name"`
	Query     string    `json:"query"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// MaxSavedSearches bounds one tenant's saved searches.
const MaxSavedSearches = 200

// SavedSearchStore keeps saved searches.
//
// Contract: SaveSearch inserts or, for an existing (Tenant, ID), replaces;
// it returns ETOOLARGE when the tenant already holds MaxSavedSearches
// others. ListSavedSearches is ordered by name. DeleteSavedSearch is
// ENOTFOUND for an unknown id or one in another tenant.
type SavedSearchStore interface {
	SaveSearch(ctx context.Context, s SavedSearch) error
	ListSavedSearches(ctx context.Context, tenant string) ([]SavedSearch, error)
	DeleteSavedSearch(ctx context.Context, tenant, id string) error
}
