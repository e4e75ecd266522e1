package console

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/investigate"
)

// since is how far back the investigation pages look.
func (c *Console) since() time.Time {
	return c.now().UTC().Add(-investigate.DefaultDays * 24 * time.Hour)
}

// events reads a view's events and drops what a restricted viewer may not see.
func (c *Console) events(r *http.Request, rq *request, f audit.EventFilter) ([]audit.Event, bool, error) {
	f.Tenant, f.Since = rq.tenant, c.since()
	if a := rq.ActorOnly(); a != "" {
		if f.ActorID != "" && f.ActorID != a {
			return nil, false, nil
		}
		f.ActorID = a
	}
	evs, truncated, err := investigate.Events(r.Context(), c.opts.Events, f)
	if err != nil {
		return nil, false, err
	}
	if len(rq.Actions()) > 0 {
		evs = slices.DeleteFunc(evs, func(e audit.Event) bool { return !rq.allowed(&e) })
	}
	return evs, truncated, nil
}

func (c *Console) findingsFor(r *http.Request, rq *request, f audit.FindingFilter) ([]audit.Finding, error) {
	if !rq.p.Has(audit.ScopeFindingsRead) {
		return nil, nil
	}
	f.Tenant, f.Limit = rq.tenant, 50
	if a := rq.ActorOnly(); a != "" {
		f.ActorID = a
	}
	page, err := c.opts.Findings.SearchFindings(r.Context(), f)
	if err != nil {
		return nil, err
	}
	return page.Findings, nil
}

func (c *Console) actorPage(w http.ResponseWriter, r *http.Request, rq *request) error {
	id := r.PathValue("id")
	if a := rq.ActorOnly(); a != "" && id != a {
		return audit.Errorf(audit.ENOTFOUND, "actor %q not found", id)
	}
	evs, truncated, err := c.events(r, rq, audit.EventFilter{ActorID: id})
	if err != nil {
		return err
	}
	v := investigate.BuildActorView(id, evs)
	v.Truncated = truncated
	if v.Findings, err = c.findingsFor(r, rq, audit.FindingFilter{ActorID: id}); err != nil {
		return err
	}
	data := map[string]any{"Title": id, "V": v, "Timeline": evs[:min(len(evs), 100)]}
	c.show(w, r, rq, "actor", "actors:"+id, len(evs), data)
	return nil
}

func (c *Console) ipPage(w http.ResponseWriter, r *http.Request, rq *request) error {
	ip, err := netip.ParseAddr(r.PathValue("ip"))
	if err != nil {
		return audit.FieldErrorf("ip", "%q is not an IP address", r.PathValue("ip"))
	}
	ip = ip.Unmap().WithZone("")
	evs, truncated, err := c.events(r, rq, audit.EventFilter{IP: netip.PrefixFrom(ip, ip.BitLen())})
	if err != nil {
		return err
	}
	v := investigate.BuildIPView(ip.String(), evs)
	v.Truncated = truncated
	if v.Findings, err = c.findingsFor(r, rq, audit.FindingFilter{IP: ip.String()}); err != nil {
		return err
	}
	data := map[string]any{"Title": ip.String(), "V": v, "Timeline": evs[:min(len(evs), 100)]}
	c.show(w, r, rq, "ip", "ips:"+ip.String(), len(evs), data)
	return nil
}

func (c *Console) sessionPage(w http.ResponseWriter, r *http.Request, rq *request) error {
	id := r.PathValue("id")
	evs, truncated, err := c.events(r, rq, audit.EventFilter{SessionID: id})
	if err != nil {
		return err
	}
	slices.Reverse(evs)
	v := investigate.SessionView{Session: *investigate.NewSession(id), Tenant: rq.tenant, Truncated: truncated, Story: evs}
	for i := range evs {
		v.Session.Add(&evs[i])
	}
	if v.Session.Actor != "" {
		fs, err := c.findingsFor(r, rq, audit.FindingFilter{ActorID: v.Session.Actor})
		if err != nil {
			return err
		}
		v.Findings = investigate.SessionFindings(id, evs, fs)
	}
	c.show(w, r, rq, "session", "sessions:"+id, len(evs), map[string]any{"Title": "Session " + id, "V": v})
	return nil
}

func (c *Console) eventPage(w http.ResponseWriter, r *http.Request, rq *request) error {
	ev, err := c.opts.Events.GetEvent(r.Context(), rq.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !rq.allowed(ev) {
		return audit.Errorf(audit.ENOTFOUND, "event %q not found", r.PathValue("id"))
	}
	b, _ := json.MarshalIndent(ev, "", "  ")
	c.show(w, r, rq, "event", "events:"+ev.ID, 1, map[string]any{"Title": ev.Action, "E": ev, "JSON": string(b)})
	return nil
}
