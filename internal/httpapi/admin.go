package httpapi

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
)

const maxAdminBody = 64 << 10

type tenantRequest struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	RetentionDays   int    `json:"retention_days"`
	MaxEventAgeDays int    `json:"max_event_age_days"`
}

// maxDays bounds retention_days and max_event_age_days (a century).
const maxDays = 36500

func (a *API) createTenant(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	if !p.Operator() {
		return audit.Errorf(audit.EFORBIDDEN, "only operator keys create tenants")
	}
	var req tenantRequest
	if err := httpx.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		return err
	}
	if !audit.ValidTenantID(req.ID) {
		return audit.FieldErrorf("id", "id must be 1-64 letters, digits, '-', '_' or '.'")
	}
	if req.RetentionDays == 0 {
		req.RetentionDays = audit.DefaultRetentionDays
	}
	if req.RetentionDays < 1 || req.RetentionDays > 36500 {
		return audit.FieldErrorf("retention_days", "retention_days must be between 1 and 36500")
	}
	if len(req.Name) > 256 {
		return audit.FieldErrorf("name", "name is at most 256 bytes")
	}
	if req.MaxEventAgeDays < 0 || req.MaxEventAgeDays > maxDays {
		return audit.FieldErrorf("max_event_age_days", "max_event_age_days must be between 0 (the installation's default) and %d", maxDays)
	}
	t := audit.Tenant{ID: req.ID, Name: req.Name, RetentionDays: req.RetentionDays, MaxEventAgeDays: req.MaxEventAgeDays,
		CreatedAt: a.now().UTC()}
	if err := a.opts.Tenants.CreateTenant(r.Context(), t); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, t)
	return nil
}

func (a *API) listTenants(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	if !p.Operator() {
		t, err := a.opts.Tenants.GetTenant(r.Context(), p.Tenant)
		if err != nil {
			return err
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"tenants": []audit.Tenant{*t}})
		return nil
	}
	ts, err := a.opts.Tenants.ListTenants(r.Context())
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []audit.Tenant{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"tenants": ts})
	return nil
}

func (a *API) getTenant(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	id := r.PathValue("id")
	if !p.Operator() && id != p.Tenant {
		return audit.Errorf(audit.ENOTFOUND, "tenant %q not found", id)
	}
	t, err := a.opts.Tenants.GetTenant(r.Context(), id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, t)
	return nil
}

// tenantPatch is the body of PATCH /v1/tenants/{id}: the fields given
// replace the tenant's.
type tenantPatch struct {
	Name            *string `json:"name"`
	RetentionDays   *int    `json:"retention_days"`
	MaxEventAgeDays *int    `json:"max_event_age_days"`
}

// patchTenant changes a tenant's name, retention or event-age override.
// Operator keys change any of them; a tenant admin key may only set its
// own tenant's retention_days, within the installation's bounds (a tenant
// must not widen its own event-age allowance).
func (a *API) patchTenant(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	var req tenantPatch
	if err := httpx.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		return err
	}
	if !p.Operator() {
		if r.PathValue("id") != p.Tenant || req.Name != nil || req.MaxEventAgeDays != nil || req.RetentionDays == nil {
			return audit.Errorf(audit.EFORBIDDEN, "a tenant key may only change its own tenant's retention_days; other changes need an operator key")
		}
		if lo, hi := a.opts.TenantRetentionDays[0], a.opts.TenantRetentionDays[1]; *req.RetentionDays < lo || *req.RetentionDays > hi {
			if hi == 0 {
				return audit.Errorf(audit.EFORBIDDEN, "this installation lets only operators change retention")
			}
			return audit.FieldErrorf("retention_days", "retention_days must be between %d and %d for a tenant key (an operator may set 1–%d)", lo, hi, maxDays)
		}
	}
	t, err := a.opts.Tenants.GetTenant(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	var errs []error
	if req.Name != nil {
		if len(*req.Name) > 256 {
			errs = append(errs, audit.FieldErrorf("name", "name is at most 256 bytes"))
		}
		t.Name = *req.Name
	}
	if req.RetentionDays != nil {
		if *req.RetentionDays < 1 || *req.RetentionDays > maxDays {
			errs = append(errs, audit.FieldErrorf("retention_days", "retention_days must be between 1 and %d", maxDays))
		}
		t.RetentionDays = *req.RetentionDays
	}
	if req.MaxEventAgeDays != nil {
		if *req.MaxEventAgeDays < 0 || *req.MaxEventAgeDays > maxDays {
			errs = append(errs, audit.FieldErrorf("max_event_age_days", "max_event_age_days must be between 0 (the installation's default) and %d", maxDays))
		}
		t.MaxEventAgeDays = *req.MaxEventAgeDays
	}
	if len(errs) > 0 {
		return errs[0]
	}
	if err := a.opts.Tenants.UpdateTenant(r.Context(), *t); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, t)
	return nil
}

type keyRequest struct {
	Tenant string        `json:"tenant"`
	Name   string        `json:"name"`
	Scopes []audit.Scope `json:"scopes"`
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	var req keyRequest
	if err := httpx.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		return err
	}
	if !p.Operator() {
		if req.Tenant != "" && req.Tenant != p.Tenant {
			return audit.Errorf(audit.EFORBIDDEN, "this key may not create keys for another tenant")
		}
		req.Tenant = p.Tenant
	}
	if req.Tenant != "" {
		if _, err := a.opts.Tenants.GetTenant(r.Context(), req.Tenant); err != nil {
			if audit.ErrorCode(err) == audit.ENOTFOUND {
				return audit.FieldErrorf("tenant", "tenant %q does not exist", req.Tenant)
			}
			return err
		}
	}
	if len(req.Scopes) == 0 {
		return audit.FieldErrorf("scopes", "scopes must name at least one of events:write, events:read, findings:read, findings:write, rules:write, admin")
	}
	for _, s := range req.Scopes {
		if !audit.ValidScope(s) {
			return audit.FieldErrorf("scopes", "unknown scope %q", s)
		}
		// A key never grants more than it holds. Minting needs admin, which
		// holds every scope, so today this only guards a future change of
		// the route's scope; the tenant above already bounds the reach.
		if !p.Has(s) {
			return &audit.Error{Code: audit.EFORBIDDEN, Field: "scopes", Message: fmt.Sprintf("this key may not grant the %s scope, which it does not hold", s)}
		}
	}
	if len(req.Name) > 256 {
		return audit.FieldErrorf("name", "name is at most 256 bytes")
	}
	k, full, err := audit.MintKey(r.Context(), a.opts.Keys, req.Tenant, req.Name, scopesSorted(req.Scopes), a.now().UTC())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"key": k, "secret": full})
	return nil
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	tenant := r.URL.Query().Get("tenant")
	var (
		keys []audit.APIKey
		err  error
	)
	switch {
	case !p.Operator():
		if tenant != "" && tenant != p.Tenant {
			return audit.Errorf(audit.EFORBIDDEN, "this key may not list another tenant's keys")
		}
		keys, err = a.opts.Keys.ListKeys(r.Context(), p.Tenant)
	case tenant == "" && r.URL.Query().Get("operator") == "true":
		keys, err = a.opts.Keys.ListKeys(r.Context(), "")
	case tenant == "":
		keys, err = a.opts.Keys.ListAllKeys(r.Context())
	default:
		keys, err = a.opts.Keys.ListKeys(r.Context(), tenant)
	}
	if err != nil {
		return err
	}
	if keys == nil {
		keys = []audit.APIKey{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"keys": keys})
	return nil
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	id := r.PathValue("id")
	if err := a.opts.Keys.RevokeKey(r.Context(), p.Tenant, id, a.now().UTC()); err != nil {
		return err
	}
	a.auth.forget(id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// scopesSorted returns scopes in the canonical order of audit.AllScopes.
func scopesSorted(in []audit.Scope) []audit.Scope {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b audit.Scope) int {
		return slices.Index(audit.AllScopes, a) - slices.Index(audit.AllScopes, b)
	})
	return slices.Compact(out)
}
