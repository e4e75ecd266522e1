package httpapi

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
	"github.com/vigilhq/vigil/internal/investigate"
)

func (a *API) findingStore() (audit.FindingStore, error) {
	if a.opts.Findings == nil {
		return nil, audit.Errorf(audit.EUNAVAILABLE, "findings are not enabled on this server")
	}
	return a.opts.Findings, nil
}

func (a *API) searchFindings(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	fs, err := a.findingStore()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	known := map[string]bool{"rule": true, "severity": true, "status": true, "actor": true, "ip": true, "since": true, "until": true, "limit": true, "cursor": true, "tenant": true, "format": true}
	for k := range q {
		if !known[k] {
			return audit.FieldErrorf(k, "unknown query parameter %q", k)
		}
	}
	format, err := investigate.ListFormat(q.Get("format"))
	if err != nil {
		return err
	}
	f := audit.FindingFilter{RuleID: q.Get("rule"), ActorID: q.Get("actor"), Cursor: q.Get("cursor")}
	if f.Tenant, f.AllTenants, err = tenantScope(p, q.Get("tenant"), true); err != nil {
		return err
	}
	if s := q.Get("severity"); s != "" {
		f.Severity = audit.Severity(s)
		if f.Severity.Rank() == 0 {
			return audit.FieldErrorf("severity", "severity must be low, medium, high or critical")
		}
	}
	if s := q.Get("status"); s != "" {
		f.Status = audit.FindingStatus(s)
		if !validStatus(f.Status) {
			return audit.FieldErrorf("status", "status must be open, acknowledged or resolved")
		}
	}
	if s := q.Get("ip"); s != "" {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return audit.FieldErrorf("ip", "ip must be an IP address")
		}
		f.IP = ip.Unmap().String()
		f.ASN = a.addrASN(r.Context(), ip.Unmap(), nil)
	}
	if f.Since, err = parseTime(q, "since"); err != nil {
		return err
	}
	if f.Until, err = parseTime(q, "until"); err != nil {
		return err
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > audit.MaxPageSize {
			return audit.FieldErrorf("limit", "limit must be between 1 and %d", audit.MaxPageSize)
		}
		f.Limit = n
	}
	page, err := fs.SearchFindings(r.Context(), f)
	if err != nil {
		return err
	}
	if page.Findings == nil {
		page.Findings = []audit.Finding{}
	}
	q.Del("cursor")
	if err := a.recordRead(r, p, audit.QueryScope{Tenant: f.Tenant, AllTenants: f.AllTenants}, readRecord{action: audit.ActionSearch,
		route: "GET /v1/findings", query: q.Encode(), rows: int64(len(page.Findings)), extra: map[string]any{"page": f.Cursor != ""}}); err != nil {
		return err
	}
	if format != "" {
		return writeMapped(w, a.nextCursor(r, page.Next), page.Findings, func(x *audit.Finding) any { return investigate.MapFinding(format, x) })
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"findings": page.Findings, "next_cursor": a.nextCursor(r, page.Next)})
	return nil
}

// findingTenant is the tenant a finding route reads: a tenant key's own, or
// for an operator key the one named by ?tenant=, and without it the
// installation-wide findings (tenant "", which no tenant key can name).
func findingTenant(p audit.Principal, requested string) (string, error) {
	if p.Operator() && requested == "" {
		return "", nil
	}
	tenant, _, err := tenantScope(p, requested, false)
	return tenant, err
}

func validStatus(s audit.FindingStatus) bool {
	return s == audit.StatusOpen || s == audit.StatusAcknowledged || s == audit.StatusResolved
}

func (a *API) getFinding(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	fs, err := a.findingStore()
	if err != nil {
		return err
	}
	tenant, err := findingTenant(p, r.URL.Query().Get("tenant"))
	if err != nil {
		return err
	}
	scope := audit.QueryScope{Tenant: tenant, AllTenants: tenant == ""}
	id := r.PathValue("id")
	f, err := fs.GetFinding(r.Context(), tenant, id)
	if err != nil {
		if audit.ErrorCode(err) == audit.ENOTFOUND { // probing ids is a read too
			if aerr := a.recordRead(r, p, scope, readRecord{action: audit.ActionSearch,
				route: "GET /v1/findings/{id}", query: "finding:" + id, rows: 0}); aerr != nil {
				return aerr
			}
		}
		return err
	}
	evidence := make([]audit.Event, 0, len(f.Evidence))
	for _, id := range f.Evidence {
		evTenant := tenant
		if tenant == "" { // an installation-wide finding names events as tenant/id
			var ok bool
			if evTenant, id, ok = strings.Cut(id, "/"); !ok {
				continue
			}
		}
		ev, err := a.opts.Events.GetEvent(r.Context(), evTenant, id)
		if audit.ErrorCode(err) == audit.ENOTFOUND {
			continue // purged by retention, or not yet stored
		}
		if err != nil {
			return err
		}
		evidence = append(evidence, *ev)
	}
	if err := a.recordRead(r, p, scope, readRecord{action: audit.ActionSearch,
		route: "GET /v1/findings/{id}", query: "finding:" + id, rows: int64(1 + len(evidence))}); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"finding": f, "evidence": evidence})
	return nil
}

type findingPatch struct {
	Status     audit.FindingStatus `json:"status"`
	Note       string              `json:"note"`
	Resolution string              `json:"resolution"`
}

func (a *API) patchFinding(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	fs, err := a.findingStore()
	if err != nil {
		return err
	}
	tenant, err := findingTenant(p, r.URL.Query().Get("tenant"))
	if err != nil {
		return err
	}
	var req findingPatch
	if err := httpx.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		return err
	}
	if !validStatus(req.Status) {
		return audit.FieldErrorf("status", "status must be open, acknowledged or resolved")
	}
	if len(req.Note) > 4096 {
		return audit.FieldErrorf("note", "note is at most 4096 bytes")
	}
	if req.Status == audit.StatusResolved && strings.TrimSpace(req.Note) == "" {
		return audit.FieldErrorf("note", "resolving a finding needs a note saying why")
	}
	switch {
	case req.Resolution != "" && req.Resolution != audit.ResolutionBenign && req.Resolution != audit.ResolutionMalicious:
		return audit.FieldErrorf("resolution", "resolution must be benign or malicious")
	case req.Resolution != "" && req.Status != audit.StatusResolved:
		return audit.FieldErrorf("resolution", "only a resolved finding has a resolution")
	}
	f, err := fs.UpdateFinding(r.Context(), tenant, r.PathValue("id"), audit.FindingUpdate{Status: req.Status, Note: req.Note,
		Resolution: req.Resolution, At: a.now().UTC()})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, f)
	return nil
}
