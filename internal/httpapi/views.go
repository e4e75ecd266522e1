package httpapi

import (
	"cmp"
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
)

// The investigation views: an actor's profile and timeline, a session's
// story, an IP's view. Each is built from stored events (the tenant's
// EventStore, through its indexed actor / session / IP searches) and the
// FindingStore, over a bounded window: at most viewMaxEvents events of the
// last viewDefaultDays days unless ?since= says otherwise. Views are reads
// of the log, so each is audited as a vigil.search.

const (
	viewMaxEvents   = 5000
	viewDefaultDays = 90
	viewRecent      = 20
)

// seen is one value of a profile with when and how often it was seen.
type seen struct {
	Value     string    `json:"value"`
	Label     string    `json:"label,omitempty"`
	Count     int       `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

type seenSet map[string]*seen

func (s seenSet) add(v, label string, t time.Time) {
	if v == "" {
		return
	}
	e := s[v]
	if e == nil {
		e = &seen{Value: v, Label: label, FirstSeen: t, LastSeen: t}
		s[v] = e
	}
	e.Count++
	if t.Before(e.FirstSeen) {
		e.FirstSeen = t
	}
	if t.After(e.LastSeen) {
		e.LastSeen = t
		if label != "" {
			e.Label = label
		}
	}
}

// list returns the values most recently seen first.
func (s seenSet) list() []seen {
	out := make([]seen, 0, len(s))
	for _, e := range s {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b seen) int {
		if c := b.LastSeen.Compare(a.LastSeen); c != 0 {
			return c
		}
		return cmp.Compare(a.Value, b.Value)
	})
	return out
}

// place is where a login came from.
type place struct {
	Time      time.Time `json:"time"`
	EventID   string    `json:"event_id"`
	Action    string    `json:"action"`
	Outcome   string    `json:"outcome,omitempty"`
	IP        string    `json:"ip,omitempty"`
	Country   string    `json:"country,omitempty"`
	City      string    `json:"city,omitempty"`
	Latitude  *float64  `json:"latitude,omitempty"`
	Longitude *float64  `json:"longitude,omitempty"`
	ASN       uint32    `json:"asn,omitempty"`
	ASOrg     string    `json:"as_org,omitempty"`
	Session   string    `json:"session_id,omitempty"`
	Risk      int       `json:"risk_score,omitempty"`
}

func placeOf(e *audit.Event) place {
	p := place{Time: e.Time, EventID: e.ID, Action: e.Action, Outcome: string(e.Outcome), Session: e.Context.SessionID}
	if e.Context.IP.IsValid() {
		p.IP = e.Context.IP.String()
	}
	if g := e.Enrichment.Geo; g != nil {
		p.Country, p.City = g.Country, g.City
		if g.HasLocation {
			lat, lon := g.Latitude, g.Longitude
			p.Latitude, p.Longitude = &lat, &lon
		}
	}
	if n := e.Enrichment.Network; n != nil {
		p.ASN, p.ASOrg = n.ASN, n.ASOrg
	}
	if e.Risk != nil {
		p.Risk = e.Risk.Score
	}
	return p
}

// sessionSummary groups one session's events.
type sessionSummary struct {
	ID         string    `json:"id"`
	Actor      string    `json:"actor_id,omitempty"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	Events     int       `json:"events"`
	IPs        []string  `json:"ips"`
	Countries  []string  `json:"countries"`
	UserAgents []string  `json:"user_agents"`
	Actions    []string  `json:"actions"`
}

func addUnique(xs []string, x string) []string {
	if x == "" || slices.Contains(xs, x) || len(xs) >= 20 {
		return xs
	}
	return append(xs, x)
}

func (s *sessionSummary) add(e *audit.Event) {
	if s.Events == 0 || e.Time.Before(s.FirstSeen) {
		s.FirstSeen = e.Time
	}
	if e.Time.After(s.LastSeen) {
		s.LastSeen = e.Time
	}
	s.Events++
	if s.Actor == "" {
		s.Actor = e.Actor.ID
	}
	if e.Context.IP.IsValid() {
		s.IPs = addUnique(s.IPs, e.Context.IP.String())
	}
	if g := e.Enrichment.Geo; g != nil {
		s.Countries = addUnique(s.Countries, g.Country)
	}
	s.UserAgents = addUnique(s.UserAgents, e.Context.UserAgent)
	s.Actions = addUnique(s.Actions, e.Action)
}

func newSession(id string) *sessionSummary {
	return &sessionSummary{ID: id, IPs: []string{}, Countries: []string{}, UserAgents: []string{}, Actions: []string{}}
}

// ActorView is GET /v1/actors/{id}.
type ActorView struct {
	Actor        string           `json:"actor_id"`
	Tenant       string           `json:"tenant"`
	Since        time.Time        `json:"since"`
	Events       int              `json:"events"`
	Truncated    bool             `json:"truncated,omitempty"`
	FirstSeen    *time.Time       `json:"first_seen,omitempty"`
	LastSeen     *time.Time       `json:"last_seen,omitempty"`
	Logins       map[string]int   `json:"logins"`
	LastLogin    *place           `json:"last_successful_login,omitempty"`
	Countries    []seen           `json:"countries"`
	Cities       []seen           `json:"cities"`
	ASNs         []seen           `json:"asns"`
	Devices      []seen           `json:"devices"`
	IPs          []seen           `json:"ips"`
	RecentLogins []place          `json:"recent_logins"`
	Sessions     []sessionSummary `json:"sessions"`
	Findings     []audit.Finding  `json:"findings"`
}

// buildActorView folds an actor's events, newest first, into the view.
func buildActorView(actor string, events []audit.Event) ActorView {
	v := ActorView{Actor: actor, Events: len(events), Logins: map[string]int{"success": 0, "failure": 0},
		RecentLogins: []place{}, Sessions: []sessionSummary{}, Findings: []audit.Finding{}}
	countries, cities, asns, devices, ips := seenSet{}, seenSet{}, seenSet{}, seenSet{}, seenSet{}
	sessions := map[string]*sessionSummary{}
	var order []string
	for i := range events {
		e := &events[i]
		if v.LastSeen == nil {
			t := e.Time
			v.LastSeen = &t
		}
		t := e.Time
		v.FirstSeen = &t
		if g := e.Enrichment.Geo; g != nil {
			countries.add(g.Country, "", e.Time)
			if g.City != "" {
				cities.add(g.City+", "+g.Country, "", e.Time)
			}
		}
		if n := e.Enrichment.Network; n != nil && n.ASN != 0 {
			asns.add("AS"+strconv.FormatUint(uint64(n.ASN), 10), n.ASOrg, e.Time)
		}
		device := e.Context.DeviceID
		if device == "" && e.Enrichment.UserAgent != nil {
			ua := e.Enrichment.UserAgent
			device = ua.Browser + " on " + ua.OS
			if ua.Browser == "" && ua.OS == "" {
				device = ""
			}
		}
		devices.add(device, e.Context.UserAgent, e.Time)
		if e.Context.IP.IsValid() {
			ips.add(e.Context.IP.String(), "", e.Time)
		}
		if e.Action == audit.ActionLoginSuccess || e.Action == audit.ActionLoginFailure {
			v.Logins[string(e.Outcome)]++
			if len(v.RecentLogins) < viewRecent {
				v.RecentLogins = append(v.RecentLogins, placeOf(e))
			}
			if e.Action == audit.ActionLoginSuccess && v.LastLogin == nil {
				p := placeOf(e)
				v.LastLogin = &p
			}
		}
		if id := e.Context.SessionID; id != "" {
			s := sessions[id]
			if s == nil {
				s = newSession(id)
				sessions[id] = s
				order = append(order, id)
			}
			s.add(e)
		}
	}
	v.Countries, v.Cities, v.ASNs, v.Devices, v.IPs = countries.list(), cities.list(), asns.list(), devices.list(), ips.list()
	for _, id := range order[:min(len(order), viewRecent)] {
		v.Sessions = append(v.Sessions, *sessions[id])
	}
	return v
}

// SessionView is GET /v1/sessions/{id}: the session's events in order.
type SessionView struct {
	Session   sessionSummary  `json:"session"`
	Tenant    string          `json:"tenant"`
	Truncated bool            `json:"truncated,omitempty"`
	Story     []audit.Event   `json:"events"`
	Findings  []audit.Finding `json:"findings"`
}

// IPView is GET /v1/ips/{ip}.
type IPView struct {
	IP         string            `json:"ip"`
	Tenant     string            `json:"tenant"`
	Since      time.Time         `json:"since"`
	Events     int               `json:"events"`
	Truncated  bool              `json:"truncated,omitempty"`
	FirstSeen  *time.Time        `json:"first_seen,omitempty"`
	LastSeen   *time.Time        `json:"last_seen,omitempty"`
	Outcomes   map[string]int    `json:"outcomes"`
	Actions    map[string]int    `json:"actions"`
	Accounts   []ipAccount       `json:"accounts"`
	Enrichment *audit.Enrichment `json:"enrichment,omitempty"`
	UserAgents []seen            `json:"user_agents"`
	Findings   []audit.Finding   `json:"findings"`
}

type ipAccount struct {
	Actor     string    `json:"actor_id"`
	Successes int       `json:"successes"`
	Failures  int       `json:"failures"`
	Events    int       `json:"events"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

func buildIPView(ip string, events []audit.Event) IPView {
	v := IPView{IP: ip, Events: len(events), Outcomes: map[string]int{}, Actions: map[string]int{},
		Accounts: []ipAccount{}, UserAgents: []seen{}, Findings: []audit.Finding{}}
	accts := map[string]*ipAccount{}
	uas := seenSet{}
	for i := range events {
		e := &events[i]
		if v.LastSeen == nil {
			t := e.Time
			v.LastSeen = &t
			en := e.Enrichment
			v.Enrichment = &en
		}
		t := e.Time
		v.FirstSeen = &t
		o := string(e.Outcome)
		if o == "" {
			o = "none"
		}
		v.Outcomes[o]++
		v.Actions[e.Action]++
		uas.add(e.Context.UserAgent, "", e.Time)
		if e.Actor.ID == "" {
			continue
		}
		a := accts[e.Actor.ID]
		if a == nil {
			a = &ipAccount{Actor: e.Actor.ID, FirstSeen: e.Time, LastSeen: e.Time}
			accts[e.Actor.ID] = a
		}
		a.Events++
		switch e.Outcome {
		case audit.OutcomeSuccess:
			a.Successes++
		case audit.OutcomeFailure:
			a.Failures++
		}
		a.FirstSeen = e.Time
	}
	for _, a := range accts {
		v.Accounts = append(v.Accounts, *a)
	}
	slices.SortFunc(v.Accounts, func(a, b ipAccount) int {
		if c := cmp.Compare(b.Events, a.Events); c != 0 {
			return c
		}
		return cmp.Compare(a.Actor, b.Actor)
	})
	v.UserAgents = uas.list()
	return v
}

// viewEvents pages through a filtered search, newest first, up to
// viewMaxEvents events.
func (a *API) viewEvents(ctx context.Context, f audit.EventFilter) ([]audit.Event, bool, error) {
	var out []audit.Event
	f.Limit = audit.MaxPageSize
	for {
		page, err := a.opts.Events.SearchEvents(ctx, f)
		if err != nil {
			return nil, false, err
		}
		out = append(out, page.Events...)
		if page.Next == "" {
			return out, false, nil
		}
		if len(out) >= viewMaxEvents {
			return out[:viewMaxEvents], true, nil
		}
		f.Cursor = page.Next
	}
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
		since = a.now().UTC().Add(-viewDefaultDays * 24 * time.Hour)
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

func (a *API) auditView(r *http.Request, p audit.Principal, tenant, view, key string, rows int) {
	a.auditRead(r, p, audit.QueryScope{Tenant: tenant}, audit.ActionSearch,
		map[string]any{"route": "GET /v1/" + view + "/{id}", "query": view + ":" + key}, int64(rows))
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
	v := buildActorView(id, evs)
	v.Tenant, v.Since, v.Truncated = tenant, since, truncated
	if v.Findings, err = a.viewFindings(r.Context(), p, audit.FindingFilter{Tenant: tenant, ActorID: id}); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, v)
	flush(w)
	a.auditView(r, p, tenant, "actors", id, len(evs))
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
	v := SessionView{Session: *newSession(id), Tenant: tenant, Truncated: truncated, Story: evs, Findings: []audit.Finding{}}
	if v.Story == nil {
		v.Story = []audit.Event{}
	}
	for i := range evs {
		v.Session.add(&evs[i])
	}
	if v.Session.Actor != "" {
		fs, err := a.viewFindings(r.Context(), p, audit.FindingFilter{Tenant: tenant, ActorID: v.Session.Actor})
		if err != nil {
			return err
		}
		for _, f := range fs {
			if f.SessionID == id || slices.ContainsFunc(evs, func(e audit.Event) bool { return slices.Contains(f.Evidence, e.ID) }) {
				v.Findings = append(v.Findings, f)
			}
		}
	}
	httpx.WriteJSON(w, http.StatusOK, v)
	flush(w)
	a.auditView(r, p, tenant, "sessions", id, len(evs))
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
	v := buildIPView(ip.String(), evs)
	v.Tenant, v.Since, v.Truncated = tenant, since, truncated
	if v.Findings, err = a.viewFindings(r.Context(), p, audit.FindingFilter{Tenant: tenant, IP: ip.String()}); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, v)
	flush(w)
	a.auditView(r, p, tenant, "ips", ip.String(), len(evs))
	return nil
}
