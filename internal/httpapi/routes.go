package httpapi

import (
	"net/http"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
)

// route is one API endpoint. A route with an empty scope needs no key.
// A paged route hands out next_cursor and takes it back as ?cursor=
// (sealed, see paging); every other route refuses a cursor parameter.
type route struct {
	pattern string
	scope   audit.Scope
	paged   bool
	authed  func(w http.ResponseWriter, r *http.Request, p audit.Principal) error
	open    httpx.HandlerFunc
}

// table is the whole API on one screen.
func (a *API) table() []route {
	return []route{
		{pattern: "GET /healthz", open: a.healthz},
		{pattern: "GET /readyz", open: a.readyz},
		{pattern: "GET /v1/status", scope: audit.ScopeAdmin, authed: a.status},

		{pattern: "POST /v1/events", scope: audit.ScopeEventsWrite, authed: a.postEvents},
		{pattern: "GET /v1/events", paged: true, scope: audit.ScopeEventsRead, authed: a.searchEvents},
		{pattern: "GET /v1/events/{id}", scope: audit.ScopeEventsRead, authed: a.getEvent},
		{pattern: "POST /v1/import/{format}", scope: audit.ScopeEventsWrite, authed: a.postImport},
		{pattern: "POST /v1/import/csv", scope: audit.ScopeEventsWrite, authed: a.postMappedImport},
		{pattern: "POST /v1/import/ndjson", scope: audit.ScopeEventsWrite, authed: a.postMappedImport},
		{pattern: "POST /v1/risk", scope: audit.ScopeEventsWrite, authed: a.postRisk},

		{pattern: "POST /v1/query", scope: audit.ScopeEventsRead, authed: a.postQuery},
		{pattern: "POST /v1/export", scope: audit.ScopeEventsRead, authed: a.postExport},
		{pattern: "GET /v1/actors/{id}", scope: audit.ScopeEventsRead, authed: a.getActorView},
		{pattern: "GET /v1/sessions/{id}", scope: audit.ScopeEventsRead, authed: a.getSessionView},
		{pattern: "GET /v1/ips/{ip}", scope: audit.ScopeEventsRead, authed: a.getIPView},

		{pattern: "GET /v1/findings", paged: true, scope: audit.ScopeFindingsRead, authed: a.searchFindings},
		{pattern: "GET /v1/findings/{id}", scope: audit.ScopeFindingsRead, authed: a.getFinding},
		{pattern: "PATCH /v1/findings/{id}", scope: audit.ScopeFindingsWrite, authed: a.patchFinding},
		{pattern: "GET /v1/incidents", paged: true, scope: audit.ScopeFindingsRead, authed: a.searchIncidents},
		{pattern: "GET /v1/incidents/{id}", scope: audit.ScopeFindingsRead, authed: a.getIncident},
		{pattern: "PATCH /v1/incidents/{id}", scope: audit.ScopeFindingsWrite, authed: a.patchIncident},

		{pattern: "GET /v1/rules", scope: audit.ScopeFindingsRead, authed: a.listRules},
		{pattern: "GET /v1/rules/settings", scope: audit.ScopeFindingsRead, authed: a.listRuleSettings},
		{pattern: "POST /v1/rules/{rule}/backtest", scope: audit.ScopeFindingsRead, authed: a.postBacktest},
		{pattern: "GET /v1/rules/suggestions", scope: audit.ScopeFindingsRead, authed: a.getSuggestions},
		{pattern: "PUT /v1/rules/{rule}/settings", scope: audit.ScopeRulesWrite, authed: a.putRuleSetting},
		{pattern: "DELETE /v1/rules/{rule}/settings", scope: audit.ScopeRulesWrite, authed: a.deleteRuleSetting},
		{pattern: "GET /v1/allowlist", scope: audit.ScopeFindingsRead, authed: a.listAllow},
		{pattern: "GET /v1/egresses", scope: audit.ScopeFindingsRead, authed: a.listEgresses},
		{pattern: "POST /v1/actions", scope: audit.ScopeFindingsWrite, authed: a.postAction},
		{pattern: "GET /v1/actions", scope: audit.ScopeFindingsRead, authed: a.listActions},
		{pattern: "GET /v1/actions/{id}", scope: audit.ScopeFindingsRead, authed: a.getAction},
		{pattern: "POST /v1/actions/{id}/result", scope: audit.ScopeEventsWrite, authed: a.postActionResult},
		{pattern: "POST /v1/allowlist", scope: audit.ScopeRulesWrite, authed: a.postAllow},
		{pattern: "DELETE /v1/allowlist/{kind}/{value...}", scope: audit.ScopeRulesWrite, authed: a.deleteAllow},

		{pattern: "POST /v1/tenants", scope: audit.ScopeAdmin, authed: a.createTenant},
		{pattern: "GET /v1/tenants", scope: audit.ScopeEventsRead, authed: a.listTenants},
		{pattern: "GET /v1/tenants/{id}", scope: audit.ScopeEventsRead, authed: a.getTenant},
		{pattern: "PATCH /v1/tenants/{id}", scope: audit.ScopeAdmin, authed: a.patchTenant},

		{pattern: "POST /v1/keys", scope: audit.ScopeAdmin, authed: a.createKey},
		{pattern: "GET /v1/keys", scope: audit.ScopeAdmin, authed: a.listKeys},
		{pattern: "DELETE /v1/keys/{id}", scope: audit.ScopeAdmin, authed: a.revokeKey},

		{pattern: "POST /v1/retention/run", scope: audit.ScopeAdmin, authed: a.runRetention},
		{pattern: "GET /v1/integrity", scope: audit.ScopeEventsRead, authed: a.getIntegrity},
		{pattern: "GET /v1/integrity/keys", scope: audit.ScopeEventsRead, authed: a.getIntegrityKeys},
		{pattern: "GET /v1/integrity/days/{day}", scope: audit.ScopeEventsRead, authed: a.getDayProof},
		{pattern: "POST /v1/erasures", scope: audit.ScopeAdmin, authed: a.postErasure},

		{pattern: "POST /v1/webhooks", scope: audit.ScopeAdmin, authed: a.createWebhook},
		{pattern: "GET /v1/webhooks", scope: audit.ScopeAdmin, authed: a.listWebhooks},
		{pattern: "GET /v1/webhooks/{id}", scope: audit.ScopeAdmin, authed: a.getWebhook},
		{pattern: "PATCH /v1/webhooks/{id}", scope: audit.ScopeAdmin, authed: a.patchWebhook},
		{pattern: "DELETE /v1/webhooks/{id}", scope: audit.ScopeAdmin, authed: a.deleteWebhook},
		{pattern: "POST /v1/webhooks/{id}/rotate-secret", scope: audit.ScopeAdmin, authed: a.rotateWebhookSecret},
		{pattern: "GET /v1/webhooks/{id}/deliveries", scope: audit.ScopeAdmin, authed: a.listDeliveries},
		{pattern: "POST /v1/deliveries/{id}/replay", scope: audit.ScopeAdmin, authed: a.replayDelivery},

		{pattern: "POST /v1/viewer-tokens", scope: audit.ScopeAdmin, authed: a.createViewerToken},
		{pattern: "GET /v1/viewer-tokens", scope: audit.ScopeAdmin, authed: a.listViewerTokens},
		{pattern: "DELETE /v1/viewer-tokens/{id}", scope: audit.ScopeAdmin, authed: a.revokeViewerToken},
	}
}

// Routes lists every route pattern ("METHOD /path") with the scope it needs
// ("" for none), for the OpenAPI check and the isolation matrix.
func (a *API) Routes() map[string]audit.Scope {
	out := map[string]audit.Scope{"GET /metrics": ""}
	for _, r := range a.table() {
		out[r.pattern] = r.scope
	}
	return out
}

// PagedRoutes lists the routes that page with next_cursor / ?cursor=, for
// the cursor tests and the OpenAPI check.
func (a *API) PagedRoutes() []string {
	var out []string
	for _, r := range a.table() {
		if r.paged {
			out = append(out, r.pattern)
		}
	}
	return out
}

// routes builds the mux. Middleware order, outermost first: recover →
// request id → access log + metrics → (per route) authenticate → scope
// check → handler (which applies its body limit).
func (a *API) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metricsHandler())
	for _, r := range a.table() {
		if r.open != nil {
			mux.Handle(r.pattern, a.handle(r.open))
		} else {
			mux.Handle(r.pattern, a.authed(r.scope, a.limited(r.pattern, a.paging(r.pattern, r.paged, r.authed))))
		}
	}
	mux.Handle("/", a.handle(func(w http.ResponseWriter, r *http.Request) error {
		return audit.Errorf(audit.ENOTFOUND, "no route for %s %s", r.Method, r.URL.Path)
	}))

	var h http.Handler = mux
	h = httpx.AccessLog(a.log, a.observe)(h)
	h = httpx.WithRequestID(h)
	h = httpx.Recover(a.log)(h)
	return h
}
