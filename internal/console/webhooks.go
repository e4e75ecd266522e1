package console

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/alert"
	"github.com/vigilhq/vigil/internal/audit"
)

// Webhooks is the alert service as the console uses it: the same calls,
// validation and SSRF guard as the JSON API's /v1/webhooks.
type Webhooks interface {
	Create(ctx context.Context, p audit.Principal, tenant string, spec alert.Spec) (audit.Subscription, string, error)
	List(ctx context.Context, p audit.Principal, tenant string, all bool) ([]audit.Subscription, error)
	Update(ctx context.Context, p audit.Principal, id string, spec alert.Spec) (*audit.Subscription, error)
	Delete(ctx context.Context, p audit.Principal, id string) error
	Rotate(ctx context.Context, p audit.Principal, id string, overlap time.Duration) (*audit.Subscription, string, error)
	Deliveries(ctx context.Context, p audit.Principal, id string, status audit.DeliveryStatus, limit int) ([]audit.Delivery, error)
}

// webhookRow is one webhook on the settings page: the subscription as the
// service shows it (its receiver URL reduced to scheme and host), with its
// newest delivery and whether it has dead letters.
type webhookRow struct {
	audit.Subscription
	Last *audit.Delivery
	Dead *audit.Delivery // the newest dead letter, if any
}

// webhookPrincipal is the session's principal narrowed to the session's
// tenant. An operator's key may manage every tenant's webhooks through the
// API; in the console it works on the tenant it switched to, so the
// service's own tenant check applies to it as to a tenant key.
func webhookPrincipal(rq *request) audit.Principal {
	p := rq.p
	p.Tenant = rq.tenant
	return p
}

// webhookRows lists the tenant's webhooks with their delivery state: two
// one-row reads per webhook, bounded by alerts.max_webhooks_per_tenant.
func (c *Console) webhookRows(ctx context.Context, rq *request) ([]webhookRow, error) {
	p := webhookPrincipal(rq)
	subs, err := c.opts.Webhooks.List(ctx, p, rq.tenant, false)
	if err != nil {
		return nil, err
	}
	rows := make([]webhookRow, 0, len(subs))
	for _, s := range subs {
		row := webhookRow{Subscription: s}
		last, err := c.opts.Webhooks.Deliveries(ctx, p, s.ID, "", 1)
		if err != nil {
			return nil, err
		}
		if len(last) > 0 {
			row.Last = &last[0]
		}
		dead, err := c.opts.Webhooks.Deliveries(ctx, p, s.ID, audit.DeliveryDead, 1)
		if err != nil {
			return nil, err
		}
		if len(dead) > 0 {
			row.Dead = &dead[0]
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (c *Console) webhooks(rq *request) (Webhooks, error) {
	if err := c.need(rq, audit.ScopeAdmin); err != nil {
		return nil, err
	}
	if c.opts.Webhooks == nil {
		return nil, audit.Errorf(audit.EUNAVAILABLE, "webhooks are not enabled on this server")
	}
	return c.opts.Webhooks, nil
}

// createWebhook makes a webhook of the session's tenant and shows its
// signing secret once, on the page that answers the POST.
func (c *Console) createWebhook(w http.ResponseWriter, r *http.Request, rq *request) error {
	svc, err := c.webhooks(rq)
	if err != nil {
		return err
	}
	if err := r.ParseForm(); err != nil {
		return audit.Errorf(audit.EINVALID, "the form could not be read")
	}
	text := func(k string) *string { v := strings.TrimSpace(r.PostForm.Get(k)); return &v }
	spec := alert.Spec{Name: text("name"), URL: text("url"), Format: text("format")}
	if *spec.URL == "" && *spec.Format == alert.FormatPagerDuty {
		spec.URL = nil // PagerDuty's own endpoint
	}
	if k := text("routing_key"); *k != "" {
		spec.RoutingKey = k
	}
	if s := audit.Severity(r.PostForm.Get("min_severity")); s != "" {
		spec.MinSeverity = &s
	}
	// Unticked boxes leave the service's defaults.
	if cs := r.PostForm["changes"]; len(cs) > 0 {
		changes := make([]audit.LifecycleChange, len(cs))
		for i, v := range cs {
			changes[i] = audit.LifecycleChange(v)
		}
		spec.Changes = &changes
	}
	if ks := r.PostForm["kinds"]; len(ks) > 0 {
		kinds := slices.Clone(ks)
		spec.Kinds = &kinds
	}
	for _, f := range []struct {
		dst **[]string
		key string
	}{{&spec.Rules, "rules"}, {&spec.Families, "families"}} {
		if vs := strings.FieldsFunc(r.PostForm.Get(f.key), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }); len(vs) > 0 {
			*f.dst = &vs
		}
	}
	sub, secret, err := svc.Create(r.Context(), webhookPrincipal(rq), rq.tenant, spec)
	if err != nil {
		return err
	}
	c.render(w, r, rq, http.StatusCreated, "secret", map[string]any{"Title": "New webhook",
		"What": "Created webhook " + sub.ID + " to " + sub.URL, "Noun": "signing secret", "Label": "Signing secret", "Secret": secret,
		"Hint": "Your receiver checks each request's Vigil-Signature header with it."})
	return nil
}

// rotateWebhook gives a webhook a new signing secret, shown once; the
// previous one stays valid for alerts.secret_overlap.
func (c *Console) rotateWebhook(w http.ResponseWriter, r *http.Request, rq *request) error {
	svc, err := c.webhooks(rq)
	if err != nil {
		return err
	}
	sub, secret, err := svc.Rotate(r.Context(), webhookPrincipal(rq), r.PathValue("id"), -1)
	if err != nil {
		return err
	}
	hint := "The previous secret is no longer valid."
	if sub.PreviousUntil != nil {
		hint = "Requests carry signatures with both secrets until " + sub.PreviousUntil.UTC().Format("2006-01-02 15:04 UTC") +
			": switch your receiver to this one before then."
	}
	c.render(w, r, rq, http.StatusOK, "secret", map[string]any{"Title": "New signing secret",
		"What": "Rotated the signing secret of webhook " + sub.ID, "Noun": "secret", "Label": "Signing secret", "Secret": secret, "Hint": hint})
	return nil
}

// toggleWebhook pauses or resumes a webhook.
func (c *Console) toggleWebhook(w http.ResponseWriter, r *http.Request, rq *request) error {
	svc, err := c.webhooks(rq)
	if err != nil {
		return err
	}
	off := r.PostFormValue("disabled") == "true"
	if _, err := svc.Update(r.Context(), webhookPrincipal(rq), r.PathValue("id"), alert.Spec{Disabled: &off}); err != nil {
		return err
	}
	settingsDone(w, r, "webhook")
	return nil
}

func (c *Console) deleteWebhook(w http.ResponseWriter, r *http.Request, rq *request) error {
	svc, err := c.webhooks(rq)
	if err != nil {
		return err
	}
	if err := svc.Delete(r.Context(), webhookPrincipal(rq), r.PathValue("id")); err != nil {
		return err
	}
	settingsDone(w, r, "webhook")
	return nil
}
