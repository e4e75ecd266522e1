package app

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"

	"github.com/vigilhq/vigil/internal/access"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/console"
)

// secretNS and secretKey locate the server secret in the state store: 32
// random bytes made on first start, which sign viewer tokens and console
// sessions. It lives with the data (so every node of one store shares it)
// and is never logged or printed.
const (
	secretNS  = "server"
	secretKey = "signing-secret"
)

// serverSecret loads the signing secret, creating it on first start.
func serverSecret(ctx context.Context, st audit.StateStore) ([]byte, error) {
	b, err := st.GetState(ctx, secretNS, secretKey)
	if err == nil && len(b) >= 32 {
		return b, nil
	}
	if err != nil && audit.ErrorCode(err) != audit.ENOTFOUND {
		return nil, fmt.Errorf("read server secret: %w", err)
	}
	b = make([]byte, 32)
	_, _ = rand.Read(b)
	if err := st.SaveState(ctx, secretNS, map[string][]byte{secretKey: b}, nil); err != nil {
		return nil, fmt.Errorf("store server secret: %w", err)
	}
	return b, nil
}

// buildAccess builds the viewer-token minter/verifier.
func (a *App) buildAccess(ctx context.Context) (*access.Viewers, []byte, error) {
	secret, err := serverSecret(ctx, a.stores.State)
	if err != nil {
		return nil, nil, err
	}
	v, err := access.NewViewers(secret, a.stores.Viewers, a.now)
	if err != nil {
		return nil, nil, err
	}
	return v, secret, nil
}

// buildConsole puts the console at / beside the API, or returns the API
// alone when the console is disabled. The two share every store and the
// API's read-audit path; neither calls the other over HTTP.
func (a *App) buildConsole(c config.Console, det *detection, viewers *access.Viewers, secret []byte) (http.Handler, error) {
	if !c.Enabled {
		return a.api, nil
	}
	opts := console.Options{
		Events: a.stores.Events, Tenants: a.stores.Tenants, Keys: a.stores.Keys, Findings: a.stores.Findings,
		Incidents: a.stores.Incidents, Rules: a.stores.Rules, Query: a.stores.Query, Saved: a.stores.Saved, Viewers: viewers,
		// The console signs with a key derived from, not equal to, the
		// viewer-token secret.
		Secret: append([]byte("console:"), secret...), AuditRead: a.api.AuditRead,
		FrameAncestors: c.FrameAncestors, SecureCookies: strings.HasPrefix(c.PublicURL, "https://"), SessionTTL: c.SessionTTL,
		Logger: a.log.With("component", "console"), Now: a.now,
	}
	if a.alerts != nil {
		opts.Webhooks = a.alerts
	}
	if det != nil {
		opts.TuningChanged, opts.ValidateSetting = det.tuningChanged, det.validateSetting
		opts.Egresses = det.egresses
		for _, r := range det.rules {
			ri := console.RuleInfo{ID: r.ID, Name: r.Name, Description: r.Description, Severity: r.Severity}
			for _, p := range r.Params {
				ri.Params = append(ri.Params, console.RuleParam{Name: p.Name, Type: p.Type, Default: p.Default, Doc: p.Doc})
			}
			opts.RuleCatalog = append(opts.RuleCatalog, ri)
		}
	}
	con, err := console.New(opts)
	if err != nil {
		return nil, err
	}
	a.console = con
	mux := http.NewServeMux()
	for _, p := range []string{"/v1/", "/healthz", "/readyz", "/metrics"} {
		mux.Handle(p, a.api)
	}
	mux.Handle("/", con)
	return mux, nil
}
