package httpapi

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
	"github.com/vigilhq/vigil/internal/investigate"
)

// The investigation views (built by internal/investigate, shared with the
// console) are reads of the log, so each is audited as a vigil.search.

func (a *API) viewEvents(ctx context.Context, f audit.EventFilter) ([]audit.Event, bool, error) {
	return investigate.Events(ctx, a.opts.Events, f)
}

// viewScope reads ?tenant= and ?since= of a view; operators must name the
// tenant.
func (a *API) viewScope(r *http.Request, p audit.Principal) (tenant string, since time.Time, err error) {
	q := r.URL.Query()
	for k := range q {
		if k != "tenant" && k != "since" {
			return "", since, audit.FieldErrorf(k, "unknown query parameter %q", k)
		}
	}
	if tenant, _, err = tenantScope(p, q.Get("tenant"), false); err != nil {
		return "", since, err
	}
	if since, err = parseTime(q, "since"); err != nil {
		return "", since, err
	}
	if since.IsZero() {
		since = a.now().UTC().Add(-investigate.DefaultDays * 24 * time.Hour)
	}
	return tenant, since, nil
}

// viewFindings lists a tenant's findings for an actor or IP, if findings
// are enabled and the caller may read them.
func (a *API) viewFindings(ctx context.Context, p audit.Principal, f audit.FindingFilter) ([]audit.Finding, error) {
	if a.opts.Findings == nil || !p.Has(audit.ScopeFindingsRead) {
		return []audit.Finding{}, nil
	}
	f.Limit = 50
	page, err := a.opts.Findings.SearchFindings(ctx, f)
	if err != nil {
		return nil, err
	}
	if page.Findings == nil {
		return []audit.Finding{}, nil
	}
	return page.Findings, nil
}

// auditView records a view before it is answered.
func (a *API) auditView(r *http.Request, p audit.Principal, tenant, key string, rows int) error {
	return a.recordRead(r, p, audit.QueryScope{Tenant: tenant}, readRecord{action: audit.ActionSearch,
		route: r.Pattern, query: key, rows: int64(rows)})
}

func (a *API) getActorView(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	tenant, since, err := a.viewScope(r, p)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	evs, truncated, err := a.viewEvents(r.Context(), audit.EventFilter{Tenant: tenant, ActorID: id, Since: since})
	if err != nil {
		return err
	}
	v := investigate.BuildActorView(id, evs)
	v.Tenant, v.Since, v.Truncated = tenant, since, truncated
	if v.Findings, err = a.viewFindings(r.Context(), p, audit.FindingFilter{Tenant: tenant, ActorID: id}); err != nil {
		return err
	}
	if err := a.auditView(r, p, tenant, "actor:"+id, len(evs)); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, v)
	return nil
}

func (a *API) getSessionView(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	tenant, since, err := a.viewScope(r, p)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	evs, truncated, err := a.viewEvents(r.Context(), audit.EventFilter{Tenant: tenant, SessionID: id, Since: since})
	if err != nil {
		return err
	}
	slices.Reverse(evs) // the story in order
	v := investigate.SessionView{Session: *investigate.NewSession(id), Tenant: tenant, Truncated: truncated, Story: evs, Findings: []audit.Finding{}}
	if v.Story == nil {
		v.Story = []audit.Event{}
	}
	for i := range evs {
		v.Session.Add(&evs[i])
	}
	if v.Session.Actor != "" {
		fs, err := a.viewFindings(r.Context(), p, audit.FindingFilter{Tenant: tenant, ActorID: v.Session.Actor})
		if err != nil {
			return err
		}
		v.Findings = investigate.SessionFindings(id, evs, fs)
	}
	if err := a.auditView(r, p, tenant, "session:"+id, len(evs)); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, v)
	return nil
}

func (a *API) getIPView(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	tenant, since, err := a.viewScope(r, p)
	if err != nil {
		return err
	}
	raw := r.PathValue("ip")
	ip, err := netip.ParseAddr(raw)
	if err != nil {
		return audit.FieldErrorf("ip", "ip must be an IP address, not %q", url.PathEscape(raw))
	}
	ip = ip.Unmap().WithZone("")
	evs, truncated, err := a.viewEvents(r.Context(), audit.EventFilter{Tenant: tenant, IP: netip.PrefixFrom(ip, ip.BitLen()), Since: since})
	if err != nil {
		return err
	}
	v := investigate.BuildIPView(ip.String(), evs)
	v.Tenant, v.Since, v.Truncated = tenant, since, truncated
	if v.Findings, err = a.viewFindings(r.Context(), p, audit.FindingFilter{Tenant: tenant, IP: ip.String(), ASN: a.addrASN(r.Context(), ip, v.Enrichment)}); err != nil {
		return err
	}
	if err := a.auditView(r, p, tenant, "ip:"+ip.String(), len(evs)); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, v)
	return nil
}

// addrASN is the autonomous system of an address, so that findings keyed
// on its network are found from it: from the enrichment its newest event
// carried (known, may be nil), else from enriching the address now; 0 when
// neither knows.
func (a *API) addrASN(ctx context.Context, ip netip.Addr, known *audit.Enrichment) uint32 {
	if known != nil && known.Network != nil && known.Network.ASN != 0 {
		return known.Network.ASN
	}
	if a.opts.Enricher == nil {
		return 0
	}
	ev := audit.Event{Context: audit.Context{IP: ip}}
	if err := a.opts.Enricher.Enrich(ctx, &ev); err != nil || ev.Enrichment.Network == nil {
		return 0
	}
	return ev.Enrichment.Network.ASN
}
