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
		out = append(out, w.userDays(u, start, end, days)...)
	}
	// Every event, not only the logins, lies before end: a logout hours
	// after a late login would otherwise land after the history (and, at
	// some hours, after the server's clock).
	out = slices.DeleteFunc(out, func(e client.Event) bool { return !e.Time.Before(end) })
	slices.SortStableFunc(out, func(a, b client.Event) int { return a.Time.Compare(b.Time) })
	return out
}

// userDays is one user's benign habits over the window.
func (w *World) userDays(u *User, start, end time.Time, days int) []client.Event {
	var out []client.Event
	r := w.rng
	tripStart, tripEnd := -1, -1
	var trip City
	if u.Traveller {
		tripStart = days/2 + r.IntN(3)
		tripEnd = tripStart + 3 + r.IntN(3)
		trip = Cities[r.IntN(len(Cities))]
	}
	for d := range days {
		day := start.Add(time.Duration(d) * 24 * time.Hour)
		weekend := day.Weekday() == time.Saturday || day.Weekday() == time.Sunday
		if weekend && r.Float64() < 0.8 {
			continue
		}
		where := place{u.Home, u.HomeIP}
		if !weekend && u.Office.IsValid() {
			where = place{u.Home, u.Office}
		}
		if u.VPN && r.Float64() < 0.7 {
			where = place{CorporateVPN, IPIn(CorporateVPN.Block, 7)}
		}
		clock := u.Home // the user's clock, whatever network they are on
		if d == tripStart || d == tripEnd+1 {
			continue // travel days: on a plane, not logging in
		}
		if d > tripStart && d <= tripEnd {
			where = place{trip, IPIn(trip.Block, 5000+r.IntN(2000))}
			clock = trip
		}
		logins := 1 + r.IntN(3)
		for l := range logins {
			// Local working hours, converted to UTC.
			hour := u.StartHour + r.IntN(max(1, u.EndHour-u.StartHour))
			if u.NightShift {
				hour = (22 + r.IntN(8)) % 24
			}
			offset := clock.UTCOffset
			at := day.Add(time.Duration(hour-offset)*time.Hour + time.Duration(r.IntN(3600))*time.Second)
			if !at.Before(end) || at.Before(start) {
				continue
			}
			dev := u.Devices[r.IntN(len(u.Devices))]
			session := fmt.Sprintf("s-%s-%d-%d", u.ID, d, l)
			if r.Float64() < 0.06 { // a typo first
				out = append(out, typo(u, at.Add(-20*time.Second), where, dev))
			}
			out = append(out, w.login(u, at, where, dev, session))
			if r.Float64() < 0.3 {
				out = append(out, simple(u, "auth.logout", at.Add(time.Duration(30+r.IntN(240))*time.Minute), where, dev, session, nil, ""))
				out[len(out)-1].Reason = "user"
			}
			if r.Float64() < 0.02 {
				out = append(out, simple(u, "data.downloaded", at.Add(10*time.Minute), where, dev, session, map[string]any{"records": 50 + r.IntN(500)}, ""))
			}
		}
	}
	// A few users enrol MFA or change their password now and then, benignly.
	if r.Float64() < 0.03 {
		at := start.Add(time.Duration(r.IntN(days*24)) * time.Hour)
		if at.Before(end) {
			out = append(out, simple(u, "auth.password.changed", at, place{u.Home, u.HomeIP}, u.Devices[0], "", nil, ""))
		}
	}
	return out
}

// distanceKM is the great-circle distance between two cities.
func distanceKM(a, b City) float64 {
	const r = 6371.0
	la1, la2 := a.Lat*math.Pi/180, b.Lat*math.Pi/180
	dla, dlo := la2-la1, (b.Lon-a.Lon)*math.Pi/180
	h := math.Sin(dla/2)*math.Sin(dla/2) + math.Cos(la1)*math.Cos(la2)*math.Sin(dlo/2)*math.Sin(dlo/2)
	return 2 * r * math.Asin(math.Sqrt(h))
}
