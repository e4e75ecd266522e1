package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// inboxPage is the findings inbox's page size.
const inboxPage = 50

// maxBulk bounds one bulk triage.
const maxBulk = 200

func (c *Console) home(w http.ResponseWriter, r *http.Request, rq *request) error {
	if rq.ActorOnly() != "" {
		http.Redirect(w, r, "/actors/"+url.PathEscape(rq.ActorOnly()), http.StatusSeeOther)
		return nil
	}
	if rq.ShowIncidents() {
		http.Redirect(w, r, "/incidents", http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, r, "/findings", http.StatusSeeOther)
	return nil
}

// findingFilter reads the inbox filters; every problem names its field.
func (c *Console) findingFilter(rq *request, q url.Values) (audit.FindingFilter, error) {
	f := audit.FindingFilter{Tenant: rq.tenant, RuleID: q.Get("rule"), Limit: inboxPage, Cursor: q.Get("cursor"), ActorID: q.Get("actor"),
		IncidentID: q.Get("incident")}
	var errs []error
	if s := q.Get("severity"); s != "" {
		f.Severity = audit.Severity(s)
		if f.Severity.Rank() == 0 {
			errs = append(errs, audit.FieldErrorf("severity", "severity must be low, medium, high or critical"))
		}
	}
	switch s := audit.FindingStatus(q.Get("status")); s {
	case "", audit.StatusOpen, audit.StatusAcknowledged, audit.StatusResolved:
		f.Status = s
	case "all":
	default:
		errs = append(errs, audit.FieldErrorf("status", "status must be open, acknowledged, resolved or all"))
	}
	if q.Get("status") == "" {
		f.Status = audit.StatusOpen
	}
	since, err := c.period(q.Get("period"))
	if err != nil {
		errs = append(errs, err)
	}
	f.Since = since
	if a := rq.ActorOnly(); a != "" {
		if f.ActorID != "" && f.ActorID != a {
			f.ActorID = "\x00" // nothing matches: this viewer may see one actor only
		} else {
			f.ActorID = a
		}
	}
	return f, errors.Join(errs...)
}

func (c *Console) findingsPage(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	f, err := c.findingFilter(rq, q)
	data := map[string]any{"Title": "Findings", "Q": q, "Rules": c.opts.RuleCatalog,
		"Severities": []string{"critical", "high", "medium", "low"}, "Statuses": []string{"open", "acknowledged", "resolved", "all"},
		"Periods": []string{"24h", "7d", "30d", "all"}, "Status": string(f.Status), "Saved": q.Get("done")}
	if q.Get("status") == "all" {
		data["Status"] = "all"
	}
	if err != nil {
		data["Error"] = audit.ErrorMessage(err)
		c.show(w, r, rq, "findings", "findings:invalid", 0, data)
		return nil
	}
	page, err := c.opts.Findings.SearchFindings(r.Context(), f)
	if err != nil {
		return err
	}
	data["Findings"] = page.Findings
	if page.Next != "" {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("cursor", page.Next)
		data["Next"] = "/findings?" + nq.Encode()
	}
	q.Del("cursor")
	c.show(w, r, rq, "findings", "findings:"+q.Encode(), len(page.Findings), data)
	return nil
}

// triage acknowledges, resolves or reopens one or many findings with a note.
func (c *Console) triage(w http.ResponseWriter, r *http.Request, rq *request) error {
	if !rq.p.Has(audit.ScopeFindingsWrite) {
		return audit.Errorf(audit.EFORBIDDEN, "this session may read findings but not change them")
	}
	ids, status, note, err := readTriage(r, rq, "findings")
	if err != nil {
		return err
	}
	for _, id := range ids {
		if a := rq.ActorOnly(); a != "" {
			f, err := c.opts.Findings.GetFinding(r.Context(), rq.tenant, id)
			if err != nil {
				return err
			}
			if f.ActorID != a {
				return audit.Errorf(audit.ENOTFOUND, "finding %q not found", id)
			}
		}
		if _, err := c.opts.Findings.UpdateFinding(r.Context(), rq.tenant, id, audit.FindingUpdate{Status: status, Note: note, At: c.now().UTC()}); err != nil {
			return err
		}
	}
	triaged(w, r, "/findings", status)
	return nil
}

// readTriage reads a triage form (one or many ids of what, a status, a
// note) and reports all its problems at once, each naming its field. The
// note is signed with who made it.
func readTriage(r *http.Request, rq *request, what string) (ids []string, status audit.FindingStatus, note string, err error) {
	ids = r.PostForm["id"]
	status = audit.FindingStatus(r.PostFormValue("status"))
	note = strings.TrimSpace(r.PostFormValue("note"))
	var probs []audit.Problem
	switch {
	case len(ids) == 0:
		probs = append(probs, audit.Problem{Field: "id", Message: fmt.Sprintf("select at least one of the %s", what)})
	case len(ids) > maxBulk:
		probs = append(probs, audit.Problem{Field: "id", Message: fmt.Sprintf("at most %d %s at once", maxBulk, what)})
	}
	switch {
	case status != audit.StatusOpen && status != audit.StatusAcknowledged && status != audit.StatusResolved:
		probs = append(probs, audit.Problem{Field: "status", Message: "status must be open, acknowledged or resolved"})
	case len(note) > 4096:
		probs = append(probs, audit.Problem{Field: "note", Message: "note is at most 4096 bytes"})
	case status == audit.StatusResolved && note == "":
		probs = append(probs, audit.Problem{Field: "note", Message: "resolving needs a note saying why"})
	}
	if note != "" {
		note += " — " + rq.Who()
	}
	return ids, status, note, audit.Invalid(probs)
}

// triaged sends a triage form back where it came from, saying what was done.
func triaged(w http.ResponseWriter, r *http.Request, inbox string, status audit.FindingStatus) {
	back := safeNext(r.PostFormValue("back"))
	if back == "/" {
		back = inbox
	}
	sep := "?"
	if strings.Contains(back, "?") {
		sep = "&"
	}
	http.Redirect(w, r, back+sep+"done="+url.QueryEscape(string(status)), http.StatusSeeOther)
}

// timelineEvent is an evidence event on a finding's timeline.
type timelineEvent struct {
	audit.Event
	Offset string // time since the first evidence
}

func (c *Console) findingPage(w http.ResponseWriter, r *http.Request, rq *request) error {
	f, err := c.opts.Findings.GetFinding(r.Context(), rq.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	if a := rq.ActorOnly(); a != "" && f.ActorID != a {
		return audit.Errorf(audit.ENOTFOUND, "finding %q not found", r.PathValue("id"))
	}
	var evs []audit.Event
	missing := 0
	for _, id := range f.Evidence {
		ev, err := c.opts.Events.GetEvent(r.Context(), rq.tenant, id)
		if audit.ErrorCode(err) == audit.ENOTFOUND {
			missing++
			continue
		}
		if err != nil {
			return err
		}
		if rq.allowed(ev) {
			evs = append(evs, *ev)
		}
	}
	slices.SortStableFunc(evs, func(a, b audit.Event) int { return a.Time.Compare(b.Time) })
	timeline := make([]timelineEvent, len(evs))
	accounts := map[string]int{}
	var ips []string
	for i, e := range evs {
		timeline[i] = timelineEvent{Event: e, Offset: "+" + e.Time.Sub(evs[0].Time).Round(time.Second).String()}
		if e.Actor.ID != "" {
			accounts[e.Actor.ID]++
		}
		if e.Context.IP.IsValid() && !slices.Contains(ips, e.Context.IP.String()) && len(ips) < 50 {
			ips = append(ips, e.Context.IP.String())
		}
	}
	type acct struct {
		ID     string
		Events int
	}
	var accts []acct
	for id, n := range accounts {
		accts = append(accts, acct{id, n})
	}
	slices.SortFunc(accts, func(a, b acct) int {
		if a.Events != b.Events {
			return b.Events - a.Events
		}
		return strings.Compare(a.ID, b.ID)
	})
	if f.ActorID != "" && !slices.ContainsFunc(accts, func(a acct) bool { return a.ID == f.ActorID }) {
		accts = append([]acct{{f.ActorID, 0}}, accts...)
	}
	data := map[string]any{"Title": f.RuleName, "F": f, "Timeline": timeline, "Accounts": accts, "IPs": ips,
		"Missing": missing, "Saved": r.URL.Query().Get("done"), "Back": r.URL.RequestURI()}
	if f.RuleName == "" {
		data["Title"] = f.RuleID
	}
	c.show(w, r, rq, "finding", "finding:"+f.ID, len(evs), data)
	return nil
}

// allowed reports whether a restricted viewer may see an event.
func (rq *request) allowed(e *audit.Event) bool {
	if a := rq.ActorOnly(); a != "" && e.Actor.ID != a {
		return false
	}
	acts := rq.Actions()
	if len(acts) == 0 {
		return true
	}
	for _, a := range acts {
		if base, ok := strings.CutSuffix(a, ".*"); ok && strings.HasPrefix(e.Action, base+".") || a == e.Action {
			return true
		}
	}
	return false
}
