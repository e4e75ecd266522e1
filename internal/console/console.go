// Package console is Vigil's web console: server-rendered pages
// (html/template, embedded with their CSS and a little JavaScript) over the
// same stores and services as the JSON API, for operators signed in with
// an API key and for viewers who followed a tenant's viewer link.
//
// Every page works on exactly one tenant, the session's. Handlers never
// take a tenant from the URL or a form: tenant A's session has no way to
// name tenant B. Every page that shows the log is read-audited through the
// same path as the API before it is sent.
package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/access"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
)

//go:embed templates static
var assets embed.FS

// ReadAuditor records a read of the log made through the console, exactly
// as the API records its own reads (a vigil.search / vigil.export event in
// the tenant, durable before it returns; rows < 0 when not known yet). It
// is the API's own audit path, handed over by the composition root. An
// error means the read was not recorded: it must not be answered.
type ReadAuditor func(r *http.Request, p audit.Principal, scope audit.QueryScope, action string, meta map[string]any, rows int64) error

// RuleParam is one tunable parameter of a rule, for the settings page.
type RuleParam struct {
	Name    string
	Type    string
	Default any
	Doc     string
}

// RuleInfo describes a detection rule for the settings page and filters.
type RuleInfo struct {
	ID          string
	Name        string
	Description string
	Severity    audit.Severity
	Params      []RuleParam
}

// Options configures the console.
type Options struct {
	Events   audit.EventStore   // required
	Tenants  audit.TenantStore  // required
	Keys     audit.KeyStore     // required
	Findings audit.FindingStore // required
	// Incidents, when set, adds the incident inbox and pages.
	Incidents audit.IncidentStore
	Rules     audit.RuleStore
	Query     audit.QueryRunner
	Saved     audit.SavedSearchStore
	// Viewers verifies viewer tokens; without it /embed answers that
	// viewer links are not enabled.
	Viewers *access.Viewers
	// Secret signs session cookies and CSRF tokens (at least 32 bytes).
	Secret []byte
	// AuditRead records page views and searches (required).
	AuditRead ReadAuditor
	// RuleCatalog lists the rules a tenant can tune.
	RuleCatalog []RuleInfo
	// TuningChanged and ValidateSetting are the API's tuning hooks.
	TuningChanged   func(ctx context.Context, tenant string)
	ValidateSetting func(s audit.RuleSetting) error
	// Egresses lists a tenant's learned shared egresses (every candidate
	// when all is set), detection's own listing; nil when detection is off.
	Egresses func(tenant string, all bool) []audit.Egress
	// Webhooks, when set, adds the tenant's webhooks to the settings
	// page (admin scope); nil says webhooks are not enabled.
	Webhooks Webhooks
	// FrameAncestors are the installation-wide origins allowed to frame
	// the console; a viewer token may add its own. Empty means 'none'.
	FrameAncestors []string
	// SecureCookies marks cookies Secure even on plain HTTP (behind a TLS
	// proxy); requests that arrive over TLS always get Secure cookies.
	SecureCookies bool
	// SessionTTL is how long a key sign-in lasts; default 12h. A viewer
	// session never outlives its token.
	SessionTTL time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
}

// Console is the web console's http.Handler.
type Console struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	pages   map[string]*template.Template
	handler http.Handler
}

// New returns the console with its pages parsed and its routes built.
func New(opts Options) (*Console, error) {
	if opts.Events == nil || opts.Tenants == nil || opts.Keys == nil || opts.Findings == nil || opts.AuditRead == nil {
		return nil, errors.New("console: Events, Tenants, Keys, Findings and AuditRead are required")
	}
	if len(opts.Secret) < 32 {
		return nil, errors.New("console: Secret must be at least 32 bytes")
	}
	for _, o := range opts.FrameAncestors {
		if err := access.ValidOrigin(o); err != nil {
			return nil, err
		}
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	c := &Console{opts: opts, log: opts.Logger, now: opts.Now}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	c.handler = c.routes()
	return c, nil
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

// handlerFunc is a console page: it gets the signed-in request.
type handlerFunc func(w http.ResponseWriter, r *http.Request, rq *request) error

func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheStatic(http.FileServerFS(static))))
	mux.Handle("GET /signin", c.open(c.signinPage))
	mux.Handle("POST /signin", c.open(c.signin))
	mux.Handle("GET /embed", c.open(c.embed))

	page := func(pattern string, h handlerFunc) { mux.Handle(pattern, c.authed(h)) }
	page("GET /{$}", c.home)
	page("POST /signout", c.signout)
	page("POST /tenant", c.switchTenant)
	page("GET /incidents", c.incidentsPage)
	page("POST /incidents/triage", c.triageIncidents)
	page("GET /incidents/{id}", c.incidentPage)
	page("GET /findings", c.findingsPage)
	page("POST /findings/triage", c.triage)
	page("GET /findings/{id}", c.findingPage)
	page("GET /search", c.searchPage)
	page("POST /search/saved", c.saveSearch)
	page("POST /search/saved/{id}/delete", c.deleteSearch)
	page("GET /export", c.export)
	page("GET /events/{id}", c.eventPage)
	page("GET /actors/{id}", c.actorPage)
	page("GET /ips/{ip}", c.ipPage)
	page("GET /sessions/{id}", c.sessionPage)
	page("GET /overview", c.overviewPage)
	page("GET /settings", c.settingsPage)
	page("POST /settings/rules/{rule}", c.putRule)
	page("POST /settings/allowlist", c.addAllow)
	page("POST /settings/allowlist/delete", c.deleteAllow)
	page("POST /settings/egresses", c.tuneEgress)
	page("POST /settings/keys", c.createKey)
	page("POST /settings/keys/{id}/revoke", c.revokeKey)
	page("POST /settings/viewers", c.createViewer)
	page("POST /settings/viewers/{id}/revoke", c.revokeViewer)
	page("POST /settings/retention", c.setRetention)
	page("POST /settings/webhooks", c.createWebhook)
	page("POST /settings/webhooks/{id}/rotate", c.rotateWebhook)
	page("POST /settings/webhooks/{id}/toggle", c.toggleWebhook)
	page("POST /settings/webhooks/{id}/delete", c.deleteWebhook)
	mux.Handle("/", c.open(func(w http.ResponseWriter, r *http.Request) error {
		return audit.Errorf(audit.ENOTFOUND, "there is no page at %s", r.URL.Path)
	}))

	var h http.Handler = mux
	h = c.headers(h)
	h = httpx.AccessLog(c.log, nil)(h)
	h = httpx.WithRequestID(h)
	h = httpx.Recover(c.log)(h)
	return h
}

func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// headers sets the security headers every response carries. The page
// handler narrows frame-ancestors further for viewer sessions.
func (c *Console) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", c.csp(nil))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if len(c.opts.FrameAncestors) == 0 {
			h.Set("X-Frame-Options", "DENY")
		}
		next.ServeHTTP(w, r)
	})
}

// csp is the Content-Security-Policy: nothing but this origin's own
// scripts, styles and images, and framing only by the configured origins.
func (c *Console) csp(extra []string) string {
	anc := append(append([]string{}, c.opts.FrameAncestors...), extra...)
	fa := "'none'"
	if len(anc) > 0 {
		fa = strings.Join(anc, " ")
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
		"form-action 'self'; base-uri 'none'; frame-ancestors " + fa
}

// open adapts a handler that needs no session; errors become pages.
func (c *Console) open(h httpx.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			c.errorPage(w, r, nil, err)
		}
	})
}

// authed adapts a page that needs a session: it loads and re-checks the
// session, checks CSRF on every state change, and renders errors as pages.
func (c *Console) authed(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rq, err := c.load(r)
		if err != nil {
			if audit.ErrorCode(err) == audit.EUNAUTHENTICATED {
				c.clearSession(w, r)
				if r.Method == http.MethodGet && r.Header.Get("Accept") != "application/json" {
					http.Redirect(w, r, "/signin?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
					return
				}
			}
			c.errorPage(w, r, nil, err)
			return
		}
		if rq.viewer != nil && len(rq.viewer.FrameAncestors) > 0 {
			w.Header().Set("Content-Security-Policy", c.csp(rq.viewer.FrameAncestors))
			w.Header().Del("X-Frame-Options")
		}
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := c.checkCSRF(r, rq); err != nil {
				c.errorPage(w, r, rq, err)
				return
			}
		}
		if err := h(w, r, rq); err != nil {
			c.errorPage(w, r, rq, err)
		}
	})
}

// errorPage renders an error as a page with the right status; internal
// errors are logged and shown generically with the request id.
func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, rq *request, err error) {
	body := httpx.Body(err, httpx.RequestID(r.Context()))
	status := httpx.Status(body.Code)
	if status >= 500 {
		c.log.LogAttrs(r.Context(), slog.LevelError, "console request failed", slog.String("request_id", body.RequestID),
			slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	}
	title := map[int]string{400: "That request was not valid", 401: "Sign-in needed", 403: "Not allowed",
		404: "Not found", 409: "Conflict", 413: "Too large", 429: "Too many requests", 503: "Unavailable"}[status]
	if title == "" {
		title = "Something went wrong"
	}
	data := map[string]any{"Title": title, "Status": status, "Message": body.Message, "Field": body.Field, "RequestID": body.RequestID}
	c.render(w, r, rq, status, "error", data)
}

// render executes a page into a buffer and sends it, so a template error
// never leaves half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, rq *request, status int, name string, data map[string]any) {
	t := c.pages[name]
	if data == nil {
		data = map[string]any{}
	}
	data["Req"] = rq
	data["Path"] = r.URL.Path
	if rq != nil {
		data["CSRF"] = rq.csrf
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "page", data); err != nil {
		c.log.LogAttrs(r.Context(), slog.LevelError, "render console page", slog.String("page", name), slog.String("error", err.Error()))
		http.Error(w, "internal error; quote the request id "+httpx.RequestID(r.Context()), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// show records a read of the log, then renders the page: the read is
// audited before anything is sent.
func (c *Console) show(w http.ResponseWriter, r *http.Request, rq *request, name, what string, rows int, data map[string]any) {
	if err := c.opts.AuditRead(r, rq.p, audit.QueryScope{Tenant: rq.tenant}, audit.ActionSearch,
		map[string]any{"route": "console " + r.Pattern, "query": what, "via": rq.via()}, int64(rows)); err != nil {
		c.errorPage(w, r, rq, err)
		return
	}
	c.render(w, r, rq, http.StatusOK, name, data)
}
