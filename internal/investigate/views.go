// Package investigate builds the investigation views (an actor's profile
// and timeline, a session's story, an IP's view) from stored events and
// findings. The JSON API and the console both serve them from here.
package investigate

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// The views: an actor's profile and timeline, a session's
// story, an IP's view. Each is built from stored events (the tenant's
// EventStore, through its indexed actor / session / IP searches) and the
// FindingStore, over a bounded window: at most viewMaxEvents events of the
// last viewDefaultDays days unless ?since= says otherwise. Views are reads
// of the log, so each is audited as a vigil.search.

const (
	// MaxEvents bounds the events one view reads.
	MaxEvents = 5000
	// DefaultDays is how far back a view looks when not told.
	DefaultDays = 90
	viewRecent  = 20
)

// Seen is one value of a profile with when and how often it was seen.
type Seen struct {
	Value     string    `json:"value"`
	Label     string    `json:"label,omitempty"`
	Count     int       `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

type seenSet map[string]*Seen

func (s seenSet) add(v, label string, t time.Time) {
	if v == "" {
		return
	}
	e := s[v]
	if e == nil {
		e = &Seen{Value: v, Label: label, FirstSeen: t, LastSeen: t}
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
func (s seenSet) list() []Seen {
	out := make([]Seen, 0, len(s))
	for _, e := range s {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b Seen) int {
		if c := b.LastSeen.Compare(a.LastSeen); c != 0 {
			return c
		}
		return cmp.Compare(a.Value, b.Value)
	})
	return out
}

// Place is where a login came from.
type Place struct {
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

func placeOf(e *audit.Event) Place {
	p := Place{Time: e.Time, EventID: e.ID, Action: e.Action, Outcome: string(e.Outcome), Session: e.Context.SessionID}
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

// SessionSummary groups one session's events.
type SessionSummary struct {
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

// Add folds one event into the summary.
func (s *SessionSummary) Add(e *audit.Event) {
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

// NewSession is an empty summary of session id.
func NewSession(id string) *SessionSummary {
	return &SessionSummary{ID: id, IPs: []string{}, Countries: []string{}, UserAgents: []string{}, Actions: []string{}}
}

// ActorView is an actor's profile and recent activity (GET /v1/actors/{id}).
type ActorView struct {
	Actor        string           `json:"actor_id"`
	Tenant       string           `json:"tenant"`
	Since        time.Time        `json:"since"`
	Events       int              `json:"events"`
	Truncated    bool             `json:"truncated,omitempty"`
	FirstSeen    *time.Time       `json:"first_seen,omitempty"`
	LastSeen     *time.Time       `json:"last_seen,omitempty"`
	Logins       map[string]int   `json:"logins"`
	LastLogin    *Place           `json:"last_successful_login,omitempty"`
	Countries    []Seen           `json:"countries"`
	Cities       []Seen           `json:"cities"`
	ASNs         []Seen           `json:"asns"`
	Devices      []Seen           `json:"devices"`
	IPs          []Seen           `json:"ips"`
	RecentLogins []Place          `json:"recent_logins"`
	Sessions     []SessionSummary `json:"sessions"`
	Findings     []audit.Finding  `json:"findings"`
}

// BuildActorView folds an actor's events, newest first, into the view.
func BuildActorView(actor string, events []audit.Event) ActorView {
	v := ActorView{Actor: actor, Events: len(events), Logins: map[string]int{"success": 0, "failure": 0},
		RecentLogins: []Place{}, Sessions: []SessionSummary{}, Findings: []audit.Finding{}}
	countries, cities, asns, devices, ips := seenSet{}, seenSet{}, seenSet{}, seenSet{}, seenSet{}
	sessions := map[string]*SessionSummary{}
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
				s = NewSession(id)
				sessions[id] = s
				order = append(order, id)
			}
			s.Add(e)
		}
	}
	v.Countries, v.Cities, v.ASNs, v.Devices, v.IPs = countries.list(), cities.list(), asns.list(), devices.list(), ips.list()
	for _, id := range order[:min(len(order), viewRecent)] {
		v.Sessions = append(v.Sessions, *sessions[id])
	}
	return v
}

// SessionView is a session's events in order (GET /v1/sessions/{id}).
type SessionView struct {
	Session   SessionSummary  `json:"session"`
	Tenant    string          `json:"tenant"`
	Truncated bool            `json:"truncated,omitempty"`
	Story     []audit.Event   `json:"events"`
	Findings  []audit.Finding `json:"findings"`
}

// IPView is what an IP did in a tenant (GET /v1/ips/{ip}).
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
	Accounts   []IPAccount       `json:"accounts"`
	Enrichment *audit.Enrichment `json:"enrichment,omitempty"`
	UserAgents []Seen            `json:"user_agents"`
	Findings   []audit.Finding   `json:"findings"`
}

// IPAccount is one account seen from an IP.
type IPAccount struct {
	Actor     string    `json:"actor_id"`
	Successes int       `json:"successes"`
	Failures  int       `json:"failures"`
	Events    int       `json:"events"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// BuildIPView folds an IP's events, newest first, into the view.
func BuildIPView(ip string, events []audit.Event) IPView {
	v := IPView{IP: ip, Events: len(events), Outcomes: map[string]int{}, Actions: map[string]int{},
		Accounts: []IPAccount{}, UserAgents: []Seen{}, Findings: []audit.Finding{}}
	accts := map[string]*IPAccount{}
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
			a = &IPAccount{Actor: e.Actor.ID, FirstSeen: e.Time, LastSeen: e.Time}
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
	slices.SortFunc(v.Accounts, func(a, b IPAccount) int {
		if c := cmp.Compare(b.Events, a.Events); c != 0 {
			return c
		}
		return cmp.Compare(a.Actor, b.Actor)
	})
	v.UserAgents = uas.list()
	return v
}

// Events pages through a filtered search, newest first, up to MaxEvents
// events; truncated reports that more matched.
func Events(ctx context.Context, es audit.EventStore, f audit.EventFilter) (evs []audit.Event, truncated bool, err error) {
	f.Limit = audit.MaxPageSize
	for {
		page, err := es.SearchEvents(ctx, f)
		if err != nil {
			return nil, false, err
		}
		evs = append(evs, page.Events...)
		if page.Next == "" {
			return evs, false, nil
		}
		if len(evs) >= MaxEvents {
			return evs[:MaxEvents], true, nil
		}
		f.Cursor = page.Next
	}
}

// SessionFindings keeps the findings of a session's actor that concern the
// session: opened on it, or with one of its events as evidence.
func SessionFindings(id string, evs []audit.Event, fs []audit.Finding) []audit.Finding {
	out := []audit.Finding{}
	for _, f := range fs {
		if f.SessionID == id || slices.ContainsFunc(evs, func(e audit.Event) bool { return slices.Contains(f.Evidence, e.ID) }) {
			out = append(out, f)
		}
	}
	return out
}
