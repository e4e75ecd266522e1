package sim

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/vigilhq/vigil/client"
)

// geoOf returns the client-supplied geo of a city.
func geoOf(c City) *client.ClientGeo {
	lat, lon := c.Lat, c.Lon
	return &client.ClientGeo{Country: c.Country, Region: c.Region, City: c.Name, Latitude: &lat, Longitude: &lon}
}

type place struct {
	city City
	ip   netip.Addr
}

// Event builders. Each sets the fields the catalog requires.

func (w *World) login(u *User, at time.Time, p place, dev Device, session string) client.Event {
	return client.Event{
		Tenant: u.Tenant, Action: "auth.login.success", Time: at,
		Actor: client.Actor{ID: u.ID, Email: u.Email, Type: "user"},
		Context: client.Context{IP: p.ip.String(), UserAgent: dev.UserAgent, AuthMethod: "password",
			SessionID: session, DeviceID: dev.ID, Geo: geoOf(p.city)},
	}
}

// failure is a failed login as an attacker's tooling sends it: no device fingerprint.
func failure(tenant, actor, reason string, at time.Time, p place, ua string) client.Event {
	return client.Event{
		Tenant: tenant, Action: "auth.login.failure", Time: at, Reason: reason,
		Actor:   client.Actor{ID: actor, Type: "user"},
		Context: client.Context{IP: p.ip.String(), UserAgent: ua, Geo: geoOf(p.city)},
	}
}

// typo is a real user's failed login from their own browser, fingerprint included.
func typo(u *User, at time.Time, p place, dev Device) client.Event {
	e := failure(u.Tenant, u.ID, "invalid_password", at, p, dev.UserAgent)
	e.Context.DeviceID = dev.ID
	return e
}

func simple(u *User, action string, at time.Time, p place, dev Device, session string, meta map[string]any, target string) client.Event {
	e := client.Event{
		Tenant: u.Tenant, Action: action, Time: at, Actor: client.Actor{ID: u.ID, Email: u.Email, Type: "user"},
		Context:  client.Context{IP: p.ip.String(), UserAgent: dev.UserAgent, SessionID: session, DeviceID: dev.ID, Geo: geoOf(p.city)},
		Metadata: meta,
	}
	if target != "" {
		e.Target = client.Target{Type: "user", ID: target}
	}
	return e
}

// History generates days of benign activity ending at end, sorted by time.
func (w *World) History(end time.Time, days int) []client.Event {
	start := end.Add(-time.Duration(days) * 24 * time.Hour).Truncate(24 * time.Hour)
	var out []client.Event
	for _, u := range w.Users {
		// Every event, not only the logins, lies before end: a logout
		// hours after a late login would otherwise land after the history
		// (and, at some hours, after the server's clock).
		out = append(out, w.userDays(u, start, end, days)...)
	}
	slices.SortStableFunc(out, func(a, b client.Event) int { return a.Time.Compare(b.Time) })
	return out
}

// userDays is one user's benign habits over the window: working-hour
// logins from home, the office or the corporate VPN, password typos and
// mistyped addresses, evening sessions, night shifts, a new laptop, a trip
// (plane speed, own laptop), a late start for new hires, and a forgotten
// password reset followed by an email change.
func (w *World) userDays(u *User, start, end time.Time, days int) []client.Event {
	var out []client.Event
	r := w.rng
	joined := 0
	if u.Joined == -2 {
		joined = days/2 + r.IntN(max(1, days/2))
		u.Joined = joined
	}
	if u.NewLaptop == -2 {
		u.NewLaptop = 1 + r.IntN(max(1, days-1))
	}
	if u.ResetDay == -2 {
		u.ResetDay = joined + r.IntN(max(1, days-joined))
	}
	tripStart, tripEnd := -1, -1
	var trip City
	if u.Traveller {
		tripStart = max(joined+2, days/3+r.IntN(max(1, days/3)))
		tripEnd = tripStart + 2 + r.IntN(4)
		trip = Cities[r.IntN(len(Cities))]
	}
	keep := func(e client.Event) {
		if !e.Time.Before(start) && e.Time.Before(end) {
			out = append(out, e)
			if e.Action == "auth.login.success" && e.Context.IP != IPIn(CorporateVPN.Block, 0).String() && e.Time.After(u.lastAt) {
				u.lastAt = e.Time
				u.lastCity = cityOf(e)
			}
		}
	}
	// at is a local hour (with minutes) of day d in the clock's time zone.
	at := func(day time.Time, hour int, clock City) time.Time {
		return day.Add(time.Duration(hour-clock.UTCOffset)*time.Hour + time.Duration(r.IntN(3600))*time.Second)
	}
	for d := range days {
		if d < joined {
			continue
		}
		day := start.Add(time.Duration(d) * 24 * time.Hour)
		if d == u.NewLaptop {
			u.Devices[0] = Device{ID: fmt.Sprintf("dev-%s-new", u.ID), UserAgent: browsers[r.IntN(len(browsers))]}
		}
		home := place{u.Home, u.HomeIP}
		if u.Traveller && (d == tripStart || d == tripEnd+1) {
			// A travel day: a login before leaving, one on arrival at
			// plane speed, on the user's own laptop.
			from, to := home, place{trip, IPIn(trip.Block, 5000+r.IntN(2000))}
			if d == tripEnd+1 {
				from, to = to, home
			}
			dep := at(day, 6, from.city)
			dev := u.Devices[0]
			keep(w.login(u, dep, from, dev, fmt.Sprintf("s-%s-%d-dep", u.ID, d)))
			hours := distanceKM(from.city, to.city)/800 + 2.5
			keep(w.login(u, dep.Add(time.Duration(hours*float64(time.Hour))), to, dev, fmt.Sprintf("s-%s-%d-arr", u.ID, d)))
			continue
		}
		if u.Traveller && (d == tripStart+1 || d == tripEnd+2) {
			continue // the day after a long flight: no login before landing
		}
		weekend := day.Weekday() == time.Saturday || day.Weekday() == time.Sunday
		if weekend && r.Float64() < 0.8 {
			continue
		}
		where := home
		if !weekend && u.Office.IsValid() {
			where = place{u.Home, u.Office}
		}
		if u.VPN && r.Float64() < 0.7 {
			// a gateway's small pool of egress addresses
			where = place{CorporateVPN, IPIn(CorporateVPN.Block, 7+r.IntN(4))}
		}
		clock := u.Home // the user's clock, whatever network they are on
		if d > tripStart && d <= tripEnd {
			where = place{trip, IPIn(trip.Block, 5000+r.IntN(2000))}
			clock = trip
		}
		logins := 1 + r.IntN(3)
		for l := range logins {
			hour := u.StartHour + r.IntN(max(1, u.EndHour-u.StartHour))
			if u.NightShift {
				hour = 22 + r.IntN(8)
			}
			if u.Evenings && l == logins-1 && r.Float64() < 0.3 {
				hour = []int{6, 19, 20, 21, 22, 23}[r.IntN(6)]
			}
			t := at(day, hour, clock)
			dev := u.Devices[r.IntN(len(u.Devices))]
			if d > tripStart && d <= tripEnd {
				dev = u.Devices[0] // the laptop travels
			}
			session := fmt.Sprintf("s-%s-%d-%d", u.ID, d, l)
			if r.Float64() < 0.06 { // a password typo first
				keep(typo(u, t.Add(-20*time.Second), where, dev))
			}
			if r.Float64() < 0.015 { // a mistyped address first
				e := typo(u, t.Add(-30*time.Second), where, dev)
				e.Actor.ID, e.Reason = mistype(u.Email, r.IntN(100)), "unknown_user"
				keep(e)
			}
			keep(w.login(u, t, where, dev, session))
			if r.Float64() < 0.3 {
				e := simple(u, "auth.logout", t.Add(time.Duration(30+r.IntN(240))*time.Minute), where, dev, session, nil, "")
				e.Reason = "user"
				keep(e)
			}
			if r.Float64() < 0.02 {
				keep(simple(u, "data.downloaded", t.Add(10*time.Minute), where, dev, session, map[string]any{"records": 50 + r.IntN(500)}, ""))
			}
			if d == u.ResetDay && l == 0 {
				// Forgot the password: reset it, log in, then change
				// the email address, from the user's own machine.
				rt := t.Add(-10 * time.Minute)
				keep(simple(u, "auth.password.reset", rt, where, dev, "", map[string]any{"stage": "requested"}, ""))
				keep(simple(u, "auth.password.reset", rt.Add(3*time.Minute), where, dev, "", map[string]any{"stage": "completed"}, ""))
				keep(simple(u, "user.email.changed", t.Add(12*time.Minute), where, dev, session,
					map[string]any{"old": u.Email, "new": "new." + u.Email}, u.ID))
			}
		}
	}
	// A few users change their password now and then, benignly.
	if r.Float64() < 0.03 {
		t := start.Add(time.Duration(joined*24+r.IntN(max(1, (days-joined)*24))) * time.Hour)
		keep(simple(u, "auth.password.changed", t, place{u.Home, u.HomeIP}, u.Devices[0], "", nil, ""))
	}
	return out
}

// cityOf is the simulated city an event was sent from.
func cityOf(e client.Event) City {
	for _, c := range append(Cities, CorporateVPN, Hosting) {
		if e.Context.Geo != nil && c.Name == e.Context.Geo.City {
			return c
		}
	}
	return City{}
}

// mistype returns an email address with one typo: two letters swapped,
// one doubled or one dropped.
func mistype(email string, n int) string {
	b := []byte(email)
	i := 1 + n%max(1, len(b)-3)
	switch n % 3 {
	case 0:
		b[i], b[i+1] = b[i+1], b[i]
	case 1:
		b = slices.Insert(b, i, b[i])
	default:
		b = slices.Delete(b, i, i+1)
	}
	return string(b)
}

// distanceKM is the great-circle distance between two cities.
func distanceKM(a, b City) float64 {
	const r = 6371.0
	la1, la2 := a.Lat*math.Pi/180, b.Lat*math.Pi/180
	dla, dlo := la2-la1, (b.Lon-a.Lon)*math.Pi/180
	h := math.Sin(dla/2)*math.Sin(dla/2) + math.Cos(la1)*math.Cos(la2)*math.Sin(dlo/2)*math.Sin(dlo/2)
	return 2 * r * math.Asin(math.Sqrt(h))
}
