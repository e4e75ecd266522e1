package client

import (
	"context"
	"net/http"
	"time"
)

// PurgeReport is what one retention run did (or, in a dry run, would do)
// to one tenant: everything dated before Before goes.
type PurgeReport struct {
	Tenant        string    `json:"tenant"`
	RetentionDays int       `json:"retention_days"`
	Before        time.Time `json:"before"`
	DryRun        bool      `json:"dry_run"`
	Events        int64     `json:"events"`
	Findings      int64     `json:"findings"`
	Incidents     int64     `json:"incidents"`
	// Archived is how many events were archived first (retention.archive).
	Archived int64 `json:"archived,omitempty"`
	// Error is set when this tenant's purge failed.
	Error string `json:"error,omitempty"`
}

// RunRetention applies retention now instead of waiting for the server's
// schedule: to one tenant, or with an operator key and tenant "" to every
// tenant. With dryRun nothing is deleted and the reports say what would
// be. Needs the admin scope; a tenant key runs it for its own tenant only.
// A tenant whose purge failed has its Error set (the others still ran).
func (c *Client) RunRetention(ctx context.Context, tenant string, dryRun bool) ([]PurgeReport, error) {
	var out struct {
		Reports []PurgeReport `json:"reports"`
	}
	req := map[string]any{"dry_run": dryRun}
	if tenant != "" {
		req["tenant"] = tenant
	}
	if err := c.sendJSON(ctx, call{method: http.MethodPost, path: "/v1/retention/run"}, req, &out); err != nil {
		return nil, err
	}
	return out.Reports, nil
}
