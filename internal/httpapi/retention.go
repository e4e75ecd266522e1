package httpapi

import (
	"context"
	"net/http"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
)

// RetentionRunner applies retention to one tenant, or to every tenant when
// tenant is "", or with dryRun reports what it would delete.
type RetentionRunner func(ctx context.Context, tenant string, dryRun bool) ([]audit.PurgeReport, error)

type retentionRequest struct {
	Tenant string `json:"tenant"`
	DryRun bool   `json:"dry_run"`
}

// runRetention is POST /v1/retention/run: an operator runs it for one
// tenant or (without tenant) every tenant; a tenant admin key for its own.
// The purge itself is recorded in each tenant's log by the job.
func (a *API) runRetention(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	if a.opts.Retention == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "retention is not available on this server")
	}
	var req retentionRequest
	if err := httpx.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		return err
	}
	tenant, _, err := tenantScope(p, req.Tenant, true)
	if err != nil {
		return err
	}
	reports, err := a.opts.Retention(serverWrite(r.Context()), tenant, req.DryRun)
	if err != nil && reports == nil {
		return err
	}
	// Some tenants may have failed: each such report carries its error,
	// and failed counts them.
	failed := 0
	for _, rep := range reports {
		if rep.Error != "" {
			failed++
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"reports": reports, "failed": failed})
	return nil
}
