package httpapi

import (
	"net/http"
	"time"

	"github.com/vigilhq/vigil/internal/access"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
)

type viewerRequest struct {
	Tenant         string   `json:"tenant"`
	Name           string   `json:"name"`
	TTL            string   `json:"ttl"`
	ReadOnly       bool     `json:"read_only"`
	Actions        []string `json:"actions"`
	Actor          string   `json:"actor"`
	FrameAncestors []string `json:"frame_ancestors"`
}

func (a *API) viewers() (*access.Viewers, error) {
	if a.opts.Viewers == nil {
		return nil, audit.Errorf(audit.EUNAVAILABLE, "viewer tokens are not enabled on this server")
	}
	return a.opts.Viewers, nil
}

// createViewerToken mints a viewer token for the caller's tenant (operators
// name it). The token is returned once with the console link that uses it.
func (a *API) createViewerToken(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	vs, err := a.viewers()
	if err != nil {
		return err
	}
	var req viewerRequest
	if err := httpx.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		return err
	}
	tenant, _, err := tenantScope(p, req.Tenant, false)
	if err != nil {
		return err
	}
	if _, err := a.opts.Tenants.GetTenant(r.Context(), tenant); audit.ErrorCode(err) == audit.ENOTFOUND {
		return audit.FieldErrorf("tenant", "tenant %q does not exist", tenant)
	} else if err != nil {
		return err
	}
	spec := access.ViewerSpec{Tenant: tenant, Name: req.Name, ReadOnly: req.ReadOnly, Actions: req.Actions, Actor: req.Actor,
		FrameAncestors: req.FrameAncestors, CreatedBy: p.KeyID}
	if req.TTL != "" {
		if spec.TTL, err = time.ParseDuration(req.TTL); err != nil {
			return audit.FieldErrorf("ttl", "ttl must be a duration such as 15m or 8h")
		}
	}
	t, tok, err := vs.Mint(r.Context(), spec)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"viewer_token": t, "token": tok, "path": "/embed?token=" + tok})
	return nil
}

func (a *API) listViewerTokens(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	vs, err := a.viewers()
	if err != nil {
		return err
	}
	tenant, _, err := tenantScope(p, r.URL.Query().Get("tenant"), false)
	if err != nil {
		return err
	}
	ts, err := vs.List(r.Context(), tenant)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"viewer_tokens": ts})
	return nil
}

func (a *API) revokeViewerToken(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	vs, err := a.viewers()
	if err != nil {
		return err
	}
	if err := vs.Revoke(r.Context(), p.Tenant, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// AuditRead records a read made through the other face of the same
// services, the console, exactly as the API records its own reads: durably,
// before the read is answered. meta's "route" and "query" name the read;
// rows < 0 means not known yet (an export). A non-nil error (EUNAVAILABLE)
// means the read was not recorded and must not be answered.
func (a *API) AuditRead(r *http.Request, p audit.Principal, scope audit.QueryScope, action string, meta map[string]any, rows int64) error {
	rec := readRecord{action: action, rows: rows, extra: map[string]any{}}
	for k, v := range meta {
		switch k {
		case "route":
			rec.route, _ = v.(string)
		case "query":
			rec.query, _ = v.(string)
		default:
			rec.extra[k] = v
		}
	}
	return a.recordRead(r, p, scope, rec)
}
