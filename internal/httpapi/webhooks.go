package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/vigilhq/vigil/internal/alert"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
)

// webhookRequest is the body of POST and PATCH /v1/webhooks; absent fields
// keep their value (PATCH) or default (POST).
type webhookRequest struct {
	Tenant      string                   `json:"tenant"`
	Name        *string                  `json:"name"`
	URL         *string                  `json:"url"`
	Format      *string                  `json:"format"`
	Rules       *[]string                `json:"rules"`
	Families    *[]string                `json:"families"`
	MinSeverity *audit.Severity          `json:"min_severity"`
	Changes     *[]audit.LifecycleChange `json:"changes"`
	Kinds       *[]string                `json:"kinds"`
	Disabled    *bool                    `json:"disabled"`
	RoutingKey  *string                  `json:"routing_key"`
}

func (q webhookRequest) spec() alert.Spec {
	return alert.Spec{Name: q.Name, URL: q.URL, Format: q.Format, Rules: q.Rules, Families: q.Families,
		MinSeverity: q.MinSeverity, Changes: q.Changes, Kinds: q.Kinds, Disabled: q.Disabled, RoutingKey: q.RoutingKey}
}

func (a *API) webhooks() (*alert.Service, error) {
	if a.opts.Webhooks == nil {
		return nil, audit.Errorf(audit.EUNAVAILABLE, "webhooks are not enabled on this server")
	}
	return a.opts.Webhooks, nil
}

// createWebhook makes a subscription of the caller's tenant; an operator
// names a tenant or, naming none, makes an installation-wide one. The
// signing secret is in this answer only.
func (a *API) createWebhook(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	svc, err := a.webhooks()
	if err != nil {
		return err
	}
	var req webhookRequest
	if err := httpx.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		return err
	}
	tenant := req.Tenant
	if !p.Operator() {
		if tenant != "" && tenant != p.Tenant {
			return audit.Errorf(audit.EFORBIDDEN, "this key may not manage another tenant's webhooks")
		}
		tenant = p.Tenant
	} else if tenant != "" {
		if _, err := a.opts.Tenants.GetTenant(r.Context(), tenant); audit.ErrorCode(err) == audit.ENOTFOUND {
			return audit.FieldErrorf("tenant", "tenant %q does not exist", tenant)
		} else if err != nil {
			return err
		}
	}
	sub, secret, err := svc.Create(r.Context(), p, tenant, req.spec())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"webhook": sub, "secret": secret})
	return nil
}

// listWebhooks lists a tenant key's webhooks; an operator's, those of
// ?tenant= or, without it, every webhook.
func (a *API) listWebhooks(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	svc, err := a.webhooks()
	if err != nil {
		return err
	}
	tenant, all, err := tenantScope(p, r.URL.Query().Get("tenant"), true)
	if err != nil {
		return err
	}
	subs, err := svc.List(r.Context(), p, tenant, all)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"webhooks": subs})
	return nil
}

func (a *API) getWebhook(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	svc, err := a.webhooks()
	if err != nil {
		return err
	}
	sub, err := svc.Get(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"webhook": sub})
	return nil
}

func (a *API) patchWebhook(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	svc, err := a.webhooks()
	if err != nil {
		return err
	}
	var req webhookRequest
	if err := httpx.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		return err
	}
	if req.Tenant != "" {
		return audit.FieldErrorf("tenant", "a webhook's tenant cannot change")
	}
	sub, err := svc.Update(r.Context(), p, r.PathValue("id"), req.spec())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"webhook": sub})
	return nil
}

func (a *API) deleteWebhook(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	svc, err := a.webhooks()
	if err != nil {
		return err
	}
	if err := svc.Delete(r.Context(), p, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// rotateWebhookSecret gives a webhook a new secret; the old one stays
// valid for overlap (default alerts.secret_overlap).
func (a *API) rotateWebhookSecret(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	svc, err := a.webhooks()
	if err != nil {
		return err
	}
	var req struct {
		Overlap string `json:"overlap"`
	}
	if r.ContentLength != 0 {
		if err := httpx.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
			return err
		}
	}
	overlap := time.Duration(-1)
	if req.Overlap != "" {
		if overlap, err = time.ParseDuration(req.Overlap); err != nil || overlap < 0 {
			return audit.FieldErrorf("overlap", "overlap must be a duration such as 24h or 0s")
		}
	}
	sub, secret, err := svc.Rotate(r.Context(), p, r.PathValue("id"), overlap)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"webhook": sub, "secret": secret})
	return nil
}

// listDeliveries lists a webhook's deliveries, ?status=dead for the dead
// letters.
func (a *API) listDeliveries(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	svc, err := a.webhooks()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
			return audit.FieldErrorf("limit", "limit must be a positive whole number")
		}
	}
	ds, err := svc.Deliveries(r.Context(), p, r.PathValue("id"), audit.DeliveryStatus(q.Get("status")), limit)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"deliveries": ds})
	return nil
}

// replayDelivery sends a dead delivery again with the same id and body.
func (a *API) replayDelivery(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	svc, err := a.webhooks()
	if err != nil {
		return err
	}
	d, err := svc.Replay(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"delivery": d})
	return nil
}
