package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/access"
	"github.com/vigilhq/vigil/internal/audit"
)

const (
	sessionCookie = "vigil_session"
	// preCookie carries the CSRF nonce of the sign-in form, before any session exists.
	preCookie = "vigil_signin"
	// maxKeyBytes bounds the API key a sign-in form may send.
	maxKeyBytes = 256
)

// session is the signed content of the session cookie. It names the
// credential (an API key id or a viewer token id), never holds a secret,
// and is re-checked against the store on every request, so revoking the key
// or the token ends the session.
type session struct {
	Kind   string `json:"k"` // "key" or "viewer"
	ID     string `json:"i"`
	Tenant string `json:"t"`
	Exp    int64  `json:"x"`
	Nonce  string `json:"n"`
}

// request is a signed-in request's identity.
type request struct {
	s        session
	p        audit.Principal
	tenant   string
	operator bool
	viewer   *audit.ViewerToken
	csrf     string
	tenants  []audit.Tenant // operators: the tenants they can switch to
	// incidents is set when the server groups findings into incidents.
	incidents bool
}

// Tenant is the tenant the session works on.
func (rq *request) Tenant() string { return rq.tenant }

// Operator reports whether the session is an operator's.
func (rq *request) Operator() bool { return rq.operator }

// Viewer reports whether the session came from a viewer token.
func (rq *request) Viewer() bool { return rq.viewer != nil }

// Tenants are the tenants an operator can switch to.
func (rq *request) Tenants() []audit.Tenant { return rq.tenants }

// Who names the signed-in principal for the page header.
func (rq *request) Who() string {
	if rq.viewer != nil {
		if rq.viewer.Name != "" {
			return "viewer link “" + rq.viewer.Name + "”"
		}
		return "viewer link"
	}
	if rq.operator {
		return "operator key " + rq.p.KeyID
	}
	return "API key " + rq.p.KeyID
}

// Can reports whether the session holds a scope.
func (rq *request) Can(s string) bool { return rq.p.Has(audit.Scope(s)) }

// ActorOnly is the one actor a restricted viewer may see, "" otherwise.
func (rq *request) ActorOnly() string {
	if rq.viewer != nil {
		return rq.viewer.Actor
	}
	return ""
}

// Actions are the event actions a restricted viewer may see.
func (rq *request) Actions() []string {
	if rq.viewer != nil {
		return rq.viewer.Actions
	}
	return nil
}

func (rq *request) via() string {
	if rq.viewer != nil {
		return "console viewer"
	}
	return "console"
}

func (c *Console) mac(label, msg string) []byte {
	m := hmac.New(sha256.New, c.opts.Secret)
	m.Write([]byte("vigil-console-v1|" + label + "|" + msg))
	return m.Sum(nil)
}

func (c *Console) secure(r *http.Request) bool { return r.TLS != nil || c.opts.SecureCookies }

func (c *Console) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: c.secure(r), SameSite: http.SameSiteStrictMode}
}

func nonce() string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// setSession signs s into the session cookie.
func (c *Console) setSession(w http.ResponseWriter, r *http.Request, s session) {
	s.Nonce = nonce()
	b, _ := json.Marshal(s)
	payload := base64.RawURLEncoding.EncodeToString(b)
	val := payload + "." + base64.RawURLEncoding.EncodeToString(c.mac("session", payload))
	http.SetCookie(w, c.cookie(r, sessionCookie, val, int(time.Until(time.Unix(s.Exp, 0)).Seconds())))
}

func (c *Console) clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, c.cookie(r, sessionCookie, "", -1))
}

var errNoSession = audit.Errorf(audit.EUNAUTHENTICATED, "sign in to use the console")

// readSession verifies the cookie's signature and expiry.
func (c *Console) readSession(r *http.Request) (session, error) {
	var s session
	ck, err := r.Cookie(sessionCookie)
	if err != nil || len(ck.Value) > 2048 {
		return s, errNoSession
	}
	payload, sig, ok := strings.Cut(ck.Value, ".")
	if !ok {
		return s, errNoSession
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(mac, c.mac("session", payload)) {
		return s, errNoSession
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(b, &s) != nil {
		return s, errNoSession
	}
	if !c.now().Before(time.Unix(s.Exp, 0)) {
		return s, audit.Errorf(audit.EUNAUTHENTICATED, "your console session has ended; sign in again")
	}
	return s, nil
}

// load turns the session cookie into a request, re-checking the key or
// viewer token behind it.
func (c *Console) load(r *http.Request) (*request, error) {
	s, err := c.readSession(r)
	if err != nil {
		return nil, err
	}
	rq := &request{s: s, tenant: s.Tenant, csrf: base64.RawURLEncoding.EncodeToString(c.mac("csrf", s.Nonce)),
		incidents: c.opts.Incidents != nil}
	switch s.Kind {
	case "key":
		k, err := c.opts.Keys.GetKey(r.Context(), s.ID)
		if audit.ErrorCode(err) == audit.ENOTFOUND || err == nil && k.RevokedAt != nil {
			return nil, audit.Errorf(audit.EUNAUTHENTICATED, "the API key of this session was revoked; sign in again")
		}
		if err != nil {
			return nil, err
		}
		rq.p = audit.Principal{KeyID: k.ID, Tenant: k.Tenant, Scopes: k.Scopes}
		rq.operator = k.Operator()
		if !rq.operator && k.Tenant != s.Tenant {
			return nil, errNoSession
		}
		if rq.operator {
			if rq.tenants, err = c.opts.Tenants.ListTenants(r.Context()); err != nil {
				return nil, err
			}
		}
	case "viewer":
		if c.opts.Viewers == nil {
			return nil, errNoSession
		}
		t, err := c.opts.Viewers.Check(r.Context(), s.ID)
		if err != nil {
			return nil, err
		}
		if t.Tenant != s.Tenant {
			return nil, errNoSession
		}
		rq.viewer, rq.p = t, access.Principal(t)
	default:
		return nil, errNoSession
	}
	return rq, nil
}

var errCSRF = audit.Errorf(audit.EFORBIDDEN, "this form is stale or came from another site; reload the page and try again")

// checkCSRF accepts a state change only with the session's CSRF token (in
// the form or the X-CSRF-Token header) and, when the browser says where it
// came from, only from this origin.
func (c *Console) checkCSRF(r *http.Request, rq *request) error {
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(r, o) {
		return errCSRF
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return errCSRF
	}
	tok := r.Header.Get("X-CSRF-Token")
	if tok == "" {
		r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
		tok = r.PostFormValue("csrf")
	}
	if !hmac.Equal([]byte(tok), []byte(rq.csrf)) {
		return errCSRF
	}
	return nil
}

func sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// safeNext keeps a post-sign-in redirect on this site.
func safeNext(s string) string {
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.HasPrefix(s, "/\\") || strings.ContainsAny(s, "\r\n") {
		return "/"
	}
	return s
}

func (c *Console) signinPage(w http.ResponseWriter, r *http.Request) error {
	if _, err := c.load(r); err == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return nil
	}
	n := nonce()
	http.SetCookie(w, c.cookie(r, preCookie, n, 3600))
	c.render(w, r, nil, http.StatusOK, "signin", map[string]any{"Title": "Sign in", "PreCSRF": n, "Next": safeNext(r.URL.Query().Get("next"))})
	return nil
}

// signin exchanges an API key, once, for a session cookie. The key travels
// only in this POST body and is never stored in the cookie.
func (c *Console) signin(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		return audit.Errorf(audit.EINVALID, "the sign-in form could not be read")
	}
	pre, err := r.Cookie(preCookie)
	if err != nil || pre.Value == "" || !hmac.Equal([]byte(pre.Value), []byte(r.PostFormValue("csrf"))) ||
		(r.Header.Get("Origin") != "" && !sameOrigin(r, r.Header.Get("Origin"))) {
		return errCSRF
	}
	key := strings.TrimSpace(r.PostFormValue("key"))
	fail := func(msg string) error {
		n := nonce()
		http.SetCookie(w, c.cookie(r, preCookie, n, 3600))
		c.render(w, r, nil, http.StatusUnauthorized, "signin", map[string]any{"Title": "Sign in", "PreCSRF": n,
			"Next": safeNext(r.PostFormValue("next")), "Error": msg})
		return nil
	}
	if key == "" || len(key) > maxKeyBytes {
		return fail("Enter an API key (it starts with vgl_).")
	}
	p, err := access.VerifyKey(r.Context(), c.opts.Keys, key)
	if audit.ErrorCode(err) == audit.EUNAUTHENTICATED {
		return fail(audit.ErrorMessage(err) + ".")
	}
	if err != nil {
		return err
	}
	if !p.Has(audit.ScopeEventsRead) && !p.Has(audit.ScopeFindingsRead) {
		return fail("This key can neither read events nor findings, so the console has nothing to show it.")
	}
	tenant := p.Tenant
	if p.Operator() {
		ts, err := c.opts.Tenants.ListTenants(r.Context())
		if err != nil {
			return err
		}
		if len(ts) == 0 {
			return fail("There is no tenant yet: create one with POST /v1/tenants, then sign in.")
		}
		tenant = ts[0].ID
	}
	http.SetCookie(w, c.cookie(r, preCookie, "", -1))
	c.setSession(w, r, session{Kind: "key", ID: p.KeyID, Tenant: tenant, Exp: c.now().Add(c.opts.SessionTTL).Unix()})
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
	return nil
}

// embed exchanges a viewer token for a session cookie. It answers with a
// small page that moves on to the console itself, rather than a redirect,
// so that the token leaves the address bar and the SameSite=Strict cookie
// is sent on the next, same-site, navigation.
func (c *Console) embed(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	// The token is in this page's URL: never send it on as a referrer.
	w.Header().Set("Referrer-Policy", "no-referrer")
	fail := func(err error) error {
		c.clearSession(w, r)
		c.render(w, r, nil, http.StatusUnauthorized, "token", map[string]any{"Title": "This viewer link cannot be used",
			"Message": audit.ErrorMessage(err)})
		return nil
	}
	if c.opts.Viewers == nil {
		return fail(audit.Errorf(audit.EUNAVAILABLE, "viewer links are not enabled on this server"))
	}
	tok := r.URL.Query().Get("token")
	t, err := c.opts.Viewers.Verify(r.Context(), tok)
	if audit.ErrorCode(err) == audit.EUNAUTHENTICATED {
		return fail(err)
	}
	if err != nil {
		return err
	}
	if len(t.FrameAncestors) > 0 {
		w.Header().Set("Content-Security-Policy", c.csp(t.FrameAncestors))
		w.Header().Del("X-Frame-Options")
	}
	exp := min(t.ExpiresAt.Unix(), c.now().Add(c.opts.SessionTTL).Unix())
	c.setSession(w, r, session{Kind: "viewer", ID: t.ID, Tenant: t.Tenant, Exp: exp})
	next := "/" // the incident inbox, or the findings inbox without incidents
	if t.Actor != "" {
		next = "/actors/" + url.PathEscape(t.Actor)
	}
	c.render(w, r, nil, http.StatusOK, "continue", map[string]any{"Title": "Opening the console", "Next": next})
	return nil
}

func (c *Console) signout(w http.ResponseWriter, r *http.Request, rq *request) error {
	c.clearSession(w, r)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
	return nil
}

// switchTenant lets an operator work on another tenant.
func (c *Console) switchTenant(w http.ResponseWriter, r *http.Request, rq *request) error {
	if !rq.operator {
		return audit.Errorf(audit.EFORBIDDEN, "only operators switch tenants")
	}
	id := r.PostFormValue("tenant")
	if !slices.ContainsFunc(rq.tenants, func(t audit.Tenant) bool { return t.ID == id }) {
		return audit.FieldErrorf("tenant", "there is no tenant %q", id)
	}
	s := rq.s
	s.Tenant = id
	c.setSession(w, r, s)
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}
