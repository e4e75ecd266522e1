package httpapi

import (
	"net/http"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
)

// routes is the whole API on one screen. Middleware order, outermost first:
// recover → request id → access log + metrics → (per route) authenticate →
// scope check → handler (which applies body limits).
func (a *API) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", a.handle(a.healthz))
	mux.Handle("GET /readyz", a.handle(a.readyz))
	mux.Handle("GET /metrics", a.metricsHandler())

	mux.Handle("POST /v1/events", a.authed(audit.ScopeEventsWrite, a.postEvents))
	mux.Handle("GET /v1/events", a.authed(audit.ScopeEventsRead, a.searchEvents))
	mux.Handle("GET /v1/events/{id}", a.authed(audit.ScopeEventsRead, a.getEvent))
	mux.Handle("POST /v1/risk", a.authed(audit.ScopeEventsWrite, a.postRisk))

	mux.Handle("GET /v1/findings", a.authed(audit.ScopeFindingsRead, a.searchFindings))
	mux.Handle("GET /v1/findings/{id}", a.authed(audit.ScopeFindingsRead, a.getFinding))
	mux.Handle("PATCH /v1/findings/{id}", a.authed(audit.ScopeFindingsWrite, a.patchFinding))

	mux.Handle("GET /v1/rules/settings", a.authed(audit.ScopeFindingsRead, a.listRuleSettings))
	mux.Handle("PUT /v1/rules/{rule}/settings", a.authed(audit.ScopeRulesWrite, a.putRuleSetting))
	mux.Handle("DELETE /v1/rules/{rule}/settings", a.authed(audit.ScopeRulesWrite, a.deleteRuleSetting))
	mux.Handle("GET /v1/allowlist", a.authed(audit.ScopeFindingsRead, a.listAllow))
	mux.Handle("POST /v1/allowlist", a.authed(audit.ScopeRulesWrite, a.postAllow))
	mux.Handle("DELETE /v1/allowlist/{kind}/{value...}", a.authed(audit.ScopeRulesWrite, a.deleteAllow))

	mux.Handle("POST /v1/tenants", a.authed(audit.ScopeAdmin, a.createTenant))
	mux.Handle("GET /v1/tenants", a.authed(audit.ScopeEventsRead, a.listTenants))
	mux.Handle("GET /v1/tenants/{id}", a.authed(audit.ScopeEventsRead, a.getTenant))

	mux.Handle("POST /v1/keys", a.authed(audit.ScopeAdmin, a.createKey))
	mux.Handle("GET /v1/keys", a.authed(audit.ScopeAdmin, a.listKeys))
	mux.Handle("DELETE /v1/keys/{id}", a.authed(audit.ScopeAdmin, a.revokeKey))

	mux.Handle("/", a.handle(func(w http.ResponseWriter, r *http.Request) error {
		return audit.Errorf(audit.ENOTFOUND, "no route for %s %s", r.Method, r.URL.Path)
	}))

	var h http.Handler = mux
	h = httpx.AccessLog(a.log, a.observe)(h)
	h = httpx.WithRequestID(h)
	h = httpx.Recover(a.log)(h)
	return h
}
