package httpapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
	"github.com/vigilhq/vigil/internal/investigate"
)

// maxIncidentFindings caps the findings GET /v1/incidents/{id} returns
// with the incident (the incident itself lists up to
// audit.MaxIncidentItems ids).
const maxIncidentFindings = 500

func (a *API) incidentStore() (audit.IncidentStore, error) {
	if a.opts.Incidents == nil || a.opts.Findings == nil {
		return nil, audit.Errorf(audit.EUNAVAILABLE, "incidents are not enabled on this server")
	}
	return a.opts.Incidents, nil
}

func (a *API) searchIncidents(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	is, err := a.incidentStore()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	known := map[string]bool{"severity": true, "status": true, "family": true, "since": true, "until": true, "limit": true, "cursor": true, "tenant": true, "format": true}
	for k := range q {
		if !known[k] {
			return audit.FieldErrorf(k, "unknown query parameter %q", k)
		}
	}
	format, err := investigate.ListFormat(q.Get("format"))
	if err != nil {
		return err
	}
	f := audit.IncidentFilter{Family: q.Get("family"), Cursor: q.Get("cursor")}
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
	if len(f.Family) > 128 {
		return audit.FieldErrorf("family", "family is at most 128 bytes")
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
	page, err := is.SearchIncidents(r.Context(), f)
	if err != nil {
		return err
	}
	q.Del("cursor")
	if err := a.recordRead(r, p, audit.QueryScope{Tenant: f.Tenant, AllTenants: f.AllTenants}, readRecord{action: audit.ActionSearch,
		route: "GET /v1/incidents", query: q.Encode(), rows: int64(len(page.Incidents)), extra: map[string]any{"page": f.Cursor != ""}}); err != nil {
		return err
	}
	if format != "" {
		return writeMapped(w, a.nextCursor(r, page.Next), page.Incidents, func(x *audit.Incident) any { return investigate.MapIncident(format, x) })
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"incidents": page.Incidents, "next_cursor": a.nextCursor(r, page.Next)})
	return nil
}

func (a *API) getIncident(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	is, err := a.incidentStore()
	if err != nil {
		return err
	}
	tenant, _, err := tenantScope(p, r.URL.Query().Get("tenant"), false)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	inc, err := is.GetIncident(r.Context(), tenant, id)
	if err != nil {
		if audit.ErrorCode(err) == audit.ENOTFOUND { // probing ids is a read too
			if aerr := a.recordRead(r, p, audit.QueryScope{Tenant: tenant}, readRecord{action: audit.ActionSearch,
				route: "GET /v1/incidents/{id}", query: "incident:" + id, rows: 0}); aerr != nil {
				return aerr
			}
		}
		return err
	}
	// The incident's findings, most recently seen first.
	var findings []audit.Finding
	cur := ""
	for len(findings) < maxIncidentFindings {
		page, err := a.opts.Findings.SearchFindings(r.Context(), audit.FindingFilter{Tenant: tenant, IncidentID: inc.ID,
			Limit: min(audit.MaxPageSize, maxIncidentFindings-len(findings)), Cursor: cur})
		if err != nil {
			return err
		}
		findings = append(findings, page.Findings...)
		if page.Next == "" {
			break
		}
		cur = page.Next
	}
	if findings == nil {
		findings = []audit.Finding{}
	}
	if err := a.recordRead(r, p, audit.QueryScope{Tenant: tenant}, readRecord{action: audit.ActionSearch,
		route: "GET /v1/incidents/{id}", query: "incident:" + id, rows: int64(1 + len(findings))}); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"incident": inc, "findings": findings})
	return nil
}

type incidentPatch struct {
	Status audit.FindingStatus `json:"status"`
	Note   string              `json:"note"`
	// Cascade, true by default, gives the incident's open findings the
	// same status and note.
	Cascade *bool `json:"cascade"`
}

func (a *API) patchIncident(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	is, err := a.incidentStore()
	if err != nil {
		return err
	}
	tenant, _, err := tenantScope(p, r.URL.Query().Get("tenant"), false)
	if err != nil {
		return err
	}
	var req incidentPatch
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
		return audit.FieldErrorf("note", "resolving an incident needs a note saying why")
	}
	cascade := req.Cascade == nil || *req.Cascade
	inc, err := is.UpdateIncident(r.Context(), tenant, r.PathValue("id"),
		audit.IncidentUpdate{Status: req.Status, Note: req.Note, Cascade: cascade, At: a.now().UTC()})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, inc)
	return nil
}
