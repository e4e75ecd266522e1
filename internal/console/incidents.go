package console

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

const (
	// incidentFindings bounds the findings an incident page reads for their
	// names and statuses (an incident lists up to audit.MaxIncidentItems).
	incidentFindings = 500
	// incidentEvents bounds the evidence events an incident page reads and
	// shows on its timeline; the rest are counted and searchable.
	incidentEvents = 150
	// incidentIPs bounds the addresses an incident page links.
	incidentIPs = 60
)

// incidents returns the incident store, or why this session has none: a
// server without incidents, a session without findings:read, or a viewer
// link restricted to one account (an incident spans accounts, so showing
// it would show other accounts).
func (c *Console) incidents(rq *request) (audit.IncidentStore, error) {
	switch {
	case c.opts.Incidents == nil:
		return nil, audit.Errorf(audit.EUNAVAILABLE, "incidents are not enabled on this server")
	case !rq.p.Has(audit.ScopeFindingsRead):
		return nil, audit.Errorf(audit.EFORBIDDEN, "this session may not read findings or incidents")
	case rq.ActorOnly() != "":
		return nil, audit.Errorf(audit.EFORBIDDEN, "this viewer link shows one account; incidents span several")
	}
	return c.opts.Incidents, nil
}

// ShowIncidents reports whether the session gets the incident pages.
func (rq *request) ShowIncidents() bool {
	return rq.incidents && rq.ActorOnly() == "" && rq.Can("findings:read")
}

// incidentFilter reads the incident inbox's filters; every problem names its field.
func (c *Console) incidentFilter(rq *request, q url.Values) (audit.IncidentFilter, error) {
	f := audit.IncidentFilter{Tenant: rq.tenant, Limit: inboxPage, Cursor: q.Get("cursor"), Status: audit.StatusOpen}
	var errs []error
	if s := q.Get("severity"); s != "" {
		f.Severity = audit.Severity(s)
		if f.Severity.Rank() == 0 {
			errs = append(errs, audit.FieldErrorf("severity", "severity must be low, medium, high or critical"))
		}
	}
	switch s := audit.FindingStatus(q.Get("status")); s {
	case "":
	case audit.StatusOpen, audit.StatusAcknowledged, audit.StatusResolved:
		f.Status = s
	case "all":
		f.Status = ""
	default:
		errs = append(errs, audit.FieldErrorf("status", "status must be open, acknowledged, resolved or all"))
	}
	since, err := c.period(q.Get("period"))
	if err != nil {
		errs = append(errs, err)
	}
	f.Since = since
	return f, errors.Join(errs...)
}

// period turns an inbox's "seen in" filter into the earliest time.
func (c *Console) period(p string) (time.Time, error) {
	switch p {
	case "", "all":
		return time.Time{}, nil
	case "24h", "7d", "30d":
		d := map[string]time.Duration{"24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}[p]
		return c.now().Add(-d), nil
	}
	return time.Time{}, audit.FieldErrorf("period", "period must be 24h, 7d, 30d or all")
}

func (c *Console) incidentsPage(w http.ResponseWriter, r *http.Request, rq *request) error {
	is, err := c.incidents(rq)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f, err := c.incidentFilter(rq, q)
	status := q.Get("status")
	if status == "" {
		status = string(audit.StatusOpen)
	}
	data := map[string]any{"Title": "Incidents", "Q": q, "Status": status,
		"Severities": []string{"critical", "high", "medium", "low"}, "Statuses": []string{"open", "acknowledged", "resolved", "all"},
		"Periods": []string{"24h", "7d", "30d"}, "Saved": q.Get("done")}
	if err != nil {
		data["Error"] = audit.ErrorMessage(err)
		c.show(w, r, rq, "incidents", "incidents:invalid", 0, data)
		return nil
	}
	page, err := is.SearchIncidents(r.Context(), f)
	if err != nil {
		return err
	}
	data["Incidents"] = page.Incidents
	if page.Next != "" {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("cursor", page.Next)
		data["Next"] = "/incidents?" + nq.Encode()
	}
	q.Del("cursor")
	c.show(w, r, rq, "incidents", "incidents:"+q.Encode(), len(page.Incidents), data)
	return nil
}

// triageIncidents acknowledges, resolves or reopens one or many incidents
// with a note; with cascade (the form's default) their open findings take
// the same status, as PATCH /v1/incidents/{id} does.
func (c *Console) triageIncidents(w http.ResponseWriter, r *http.Request, rq *request) error {
	is, err := c.incidents(rq)
	if err != nil {
		return err
	}
	if !rq.p.Has(audit.ScopeFindingsWrite) {
		return audit.Errorf(audit.EFORBIDDEN, "this session may read incidents but not change them")
	}
	ids, status, note, err := readTriage(r, rq, "incidents")
	if err != nil {
		return err
	}
	cascade := r.PostFormValue("cascade") != ""
	for _, id := range ids {
		if _, err := is.UpdateIncident(r.Context(), rq.tenant, id, audit.IncidentUpdate{Status: status, Note: note, Cascade: cascade, At: c.now().UTC()}); err != nil {
			return err
		}
	}
	triaged(w, r, "/incidents", status)
	return nil
}

// incidentStep is one entry of an incident's timeline: a finding (when it
// began) or one of the evidence events, in event time.
type incidentStep struct {
	Time    time.Time
	Offset  string
	Finding *audit.TimelineEntry
	Name    string              // the finding's rule name
	Status  audit.FindingStatus // the finding's status
	Event   audit.Event         // when Finding is nil
}

// riskReason says in words why an account is at risk.
func riskReason(reason string) string {
	switch reason {
	case audit.RiskTakeoverChange:
		return "changed after a risky login"
	case audit.RiskHit:
		return "signed in by the attack"
	case audit.RiskTargeted:
		return "targeted by failed attempts"
	}
	return reason
}

func (c *Console) incidentPage(w http.ResponseWriter, r *http.Request, rq *request) error {
	is, err := c.incidents(rq)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	inc, err := is.GetIncident(r.Context(), rq.tenant, id)
	if err != nil {
		return err
	}
	if inc.ID != id { // merged into an older incident: show that one
		http.Redirect(w, r, "/incidents/"+url.PathEscape(inc.ID)+"?merged="+url.QueryEscape(id), http.StatusSeeOther)
		return nil
	}
	names := map[string]string{}
	for _, ri := range c.opts.RuleCatalog {
		names[ri.ID] = ri.Name
	}
	findings := map[string]audit.Finding{}
	for cur := ""; len(findings) < incidentFindings; {
		page, err := c.opts.Findings.SearchFindings(r.Context(), audit.FindingFilter{Tenant: rq.tenant, IncidentID: inc.ID,
			Limit: min(audit.MaxPageSize, incidentFindings-len(findings)), Cursor: cur})
		if err != nil {
			return err
		}
		for _, f := range page.Findings {
			findings[f.ID] = f
		}
		if cur = page.Next; cur == "" {
			break
		}
	}

	var steps []incidentStep
	for i := range inc.Timeline {
		te := &inc.Timeline[i]
		st := incidentStep{Time: te.Time, Finding: te, Name: names[te.RuleID]}
		if f, ok := findings[te.FindingID]; ok {
			st.Status = f.Status
			if f.RuleName != "" {
				st.Name = f.RuleName
			}
		}
		if st.Name == "" {
			st.Name = te.RuleID
		}
		steps = append(steps, st)
	}
	shown, missing := 0, 0
	for _, eid := range inc.Evidence[:min(len(inc.Evidence), incidentEvents)] {
		ev, err := c.opts.Events.GetEvent(r.Context(), rq.tenant, eid)
		if audit.ErrorCode(err) == audit.ENOTFOUND {
			missing++
			continue
		}
		if err != nil {
			return err
		}
		if rq.allowed(ev) {
			steps = append(steps, incidentStep{Time: ev.Time, Event: *ev})
			shown++
		}
	}
	// In event time; at the same instant a finding comes before the events
	// it begins with.
	slices.SortStableFunc(steps, func(a, b incidentStep) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		switch {
		case a.Finding != nil && b.Finding == nil:
			return -1
		case a.Finding == nil && b.Finding != nil:
			return 1
		}
		return 0
	})
	for i := range steps {
		steps[i].Offset = "+" + steps[i].Time.Sub(steps[0].Time).Round(time.Second).String()
	}
	type account struct {
		audit.AccountAtRisk
		Why string
	}
	accts := make([]account, len(inc.Accounts))
	for i, a := range inc.Accounts {
		accts[i] = account{a, riskReason(a.Reason)}
	}
	var ruleNames []string
	for _, id := range inc.Rules {
		n := names[id]
		if n == "" {
			n = id
		}
		ruleNames = append(ruleNames, n)
	}
	data := map[string]any{"Title": inc.Headline, "I": inc, "Steps": steps, "Accounts": accts, "RuleNames": ruleNames,
		"IPs": inc.IPs[:min(len(inc.IPs), incidentIPs)], "MoreIPs": inc.IPCount - min(len(inc.IPs), incidentIPs),
		"Shown": shown, "Unshown": len(inc.Evidence) - min(len(inc.Evidence), incidentEvents), "Missing": missing, "Saved": r.URL.Query().Get("done"),
		"Merged": r.URL.Query().Get("merged"), "Back": "/incidents/" + url.PathEscape(inc.ID)}
	if inc.Headline == "" {
		data["Title"] = inc.HeadlineRule
	}
	c.show(w, r, rq, "incident", "incident:"+inc.ID, 1+shown, data)
	return nil
}
