package main

import (
	"net/netip"
	"strconv"
	"time"
)

// Gen is a fast, deterministic generator of realistic audit events: event i
// is a pure function of (Seed, i), so concurrent clients can produce
// disjoint index ranges independently and the PostgreSQL comparison loads
// exactly the events Vigil received.
//
// The population: Tenants tenants, Actors users (actor a belongs to tenant
// a mod Tenants) with a home city, a home IP drawn from IPs addresses (many
// users share one: offices and carrier NAT), a browser and working habits.
// One block of 1,000 events in eight is a credential-stuffing wave: 40 % of
// its events are failed logins from one of 300 datacenter addresses
// against accounts of one tenant, a few of them hits followed by an e-mail
// change.
type Gen struct {
	Seed    uint64
	Tenants int
	Actors  int
	IPs     int
	// N events spread evenly over [Start, End) of event time; events with
	// index ≥ N are "live" and take their time from Live.
	N          int
	Start, End time.Time
	// Live, when set, stamps events with index ≥ N (the live phase).
	Live func() time.Time
	// Tenant, when set, is the tenant of every event (the population and
	// its stuffing waves keep their shape); the retention phase gives one
	// tenant its own history this way.
	Tenant string
}

// Event is one generated event in structured form, for PostgreSQL rows and
// for choosing query parameters.
type Event struct {
	ID, Tenant, Action, Actor, Session, Target, Reason string
	Time                                               time.Time
	IP                                                 netip.Addr
	Outcome                                            string
	city                                               int
	ua                                                 int
	email                                              bool // actor has an e-mail address in the event
	extra                                              uint64
}

const (
	stuffIPs   = 300
	blockSize  = 1000
	stuffEvery = 8
)

// NewGen returns the default population: 10 tenants, 100,000 actors,
// 50,000 addresses.
func NewGen(n int, start, end time.Time) *Gen {
	return &Gen{Seed: 0x5eed, Tenants: 10, Actors: 100_000, IPs: 50_000, N: n, Start: start, End: end}
}

func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func umod(x uint64, n int) int { return int(x % uint64(n)) }

func (g *Gen) h(i int, salt uint64) uint64 {
	return mix(g.Seed ^ mix(uint64(i)*0x9e3779b97f4a7c15+salt))
}

// TenantName is the id of tenant t.
func TenantName(t int) string { return "t" + strconv.Itoa(100 + t)[1:] }

// ActorID is the id of actor a.
func ActorID(a int) string { return "u" + strconv.Itoa(1_000_000 + a)[1:] }

// TenantOf is actor a's tenant.
func (g *Gen) TenantOf(a int) string { return TenantName(a % g.Tenants) }

// HomeIP is the usual address of actor a.
func (g *Gen) HomeIP(a int) netip.Addr {
	return g.poolIP(int(mix(uint64(a)^g.Seed) % uint64(g.IPs-stuffIPs)))
}

// poolIP maps an address-pool index onto a plausible public address: 16
// used addresses per /24 (offices, carrier NAT), one in twenty IPv6.
func (g *Gen) poolIP(p int) netip.Addr {
	block := p / 16
	hb := mix(uint64(block) ^ 0xb10c)
	if block%20 == 7 {
		var b [16]byte
		b[0], b[1] = 0x2a, 0x02
		b[2], b[3], b[4], b[5] = byte(hb), byte(hb>>8), byte(hb>>16), byte(hb>>24)
		b[15] = byte(p%16 + 1)
		b[14] = byte(hb >> 32)
		return netip.AddrFrom16(b)
	}
	firsts := [...]byte{24, 31, 37, 46, 62, 66, 71, 77, 81, 86, 89, 92, 94, 98, 104, 109, 151, 176, 188, 193, 212, 213, 217}
	return netip.AddrFrom4([4]byte{firsts[hb%uint64(len(firsts))], byte(hb >> 8), byte(hb >> 16), byte(1 + (p%16)*13)})
}

func stuffIP(s int) netip.Addr {
	return netip.AddrFrom4([4]byte{45, byte(128 + s/200), byte(s % 200), byte(7 + s%31)})
}

type city struct {
	country, name string
	lat, lon      string
}

var cities = [...]city{
	{"DE", "Berlin", "52.52", "13.405"}, {"DE", "Munich", "48.137", "11.575"}, {"FR", "Paris", "48.857", "2.352"},
	{"GB", "London", "51.507", "-0.128"}, {"US", "New York", "40.713", "-74.006"}, {"US", "San Francisco", "37.775", "-122.419"},
	{"US", "Chicago", "41.878", "-87.63"}, {"NL", "Amsterdam", "52.368", "4.904"}, {"ES", "Madrid", "40.417", "-3.704"},
	{"IT", "Milan", "45.464", "9.19"}, {"PL", "Warsaw", "52.23", "21.012"}, {"SE", "Stockholm", "59.329", "18.069"},
	{"CA", "Toronto", "43.653", "-79.383"}, {"BR", "Sao Paulo", "-23.55", "-46.633"}, {"IN", "Bangalore", "12.972", "77.595"},
	{"JP", "Tokyo", "35.676", "139.65"}, {"AU", "Sydney", "-33.869", "151.209"}, {"SG", "Singapore", "1.352", "103.82"},
	{"IE", "Dublin", "53.35", "-6.26"}, {"CH", "Zurich", "47.377", "8.541"},
}

var userAgents = [...]string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
}

// stuffing user agents: scripted clients.
var botAgents = [...]string{"python-requests/2.31.0", "curl/8.5.0", "Go-http-client/1.1", "okhttp/4.12.0"}

var normalActions = [...]struct {
	upTo   uint64
	action string
}{
	{50, "auth.login.success"}, {62, "auth.login.failure"}, {72, "session.created"}, {82, "auth.logout"},
	{89, "data.exported"}, {93, "data.downloaded"}, {95, "auth.mfa.enrolled"}, {96, "auth.password.changed"},
	{97, "user.role.changed"}, {98, "api_key.created"}, {100, "auth.password.reset"},
}

// Stuffing reports whether event i belongs to a stuffing wave and, if so,
// the wave's source index.
func (g *Gen) stuffing(i int) (bool, int) {
	block := i / blockSize
	hb := g.h(block, 0x57f)
	if hb%stuffEvery != 0 {
		return false, 0
	}
	if g.h(i, 0xa77)%100 >= 40 {
		return false, 0
	}
	return true, umod(hb>>8, stuffIPs)
}

func (g *Gen) isHit(i int) bool {
	ok, _ := g.stuffing(i)
	return ok && g.h(i, 0x417)%150 == 0
}

// timeOf is event i's time.
func (g *Gen) timeOf(i int) time.Time {
	if i >= g.N && g.Live != nil {
		return g.Live()
	}
	span := g.End.Sub(g.Start)
	return g.Start.Add(time.Duration(float64(span) * float64(i) / float64(max(g.N, 1)))).Truncate(time.Millisecond)
}

// Event returns event i.
func (g *Gen) Event(i int) Event {
	h := g.h(i, 1)
	ev := Event{Time: g.timeOf(i), extra: g.h(i, 2)}
	stuff, src := g.stuffing(i)
	switch {
	case stuff:
		block := i / blockSize
		tenant := umod(g.h(block, 0x7e2), g.Tenants)
		// Half the attempted identifiers are real accounts of the tenant.
		a := umod(h>>20, g.Actors/g.Tenants)*g.Tenants + tenant
		ev.Tenant = TenantName(tenant)
		ev.Actor = ActorID(a)
		if h%2 == 0 {
			ev.Actor = "x" + strconv.FormatUint(h>>40, 36)
		}
		ev.IP = stuffIP(src)
		ev.ua = -1 - umod(h>>8, len(botAgents))
		ev.city = umod(g.h(block, 0xc17), len(cities))
		if g.isHit(i) {
			ev.Action, ev.Outcome = "auth.login.success", "success"
			ev.Actor = ActorID(a)
			ev.Session = "s" + strconv.FormatUint(h>>12, 16)
		} else {
			ev.Action, ev.Outcome, ev.Reason = "auth.login.failure", "failure", "invalid_password"
			if ev.Actor[0] == 'x' {
				ev.Reason = "unknown_user"
			}
		}
	case i > 0 && g.isHit(i-1):
		// The attacker changes the e-mail address of the account just taken.
		prev := g.Event(i - 1)
		ev.Tenant, ev.Actor, ev.IP, ev.ua, ev.city, ev.Session = prev.Tenant, prev.Actor, prev.IP, prev.ua, prev.city, prev.Session
		ev.Action, ev.Target = "user.email.changed", prev.Actor
	default:
		a := int(h % uint64(g.Actors))
		ev.Tenant = g.TenantOf(a)
		ev.Actor = ActorID(a)
		ha := mix(uint64(a) ^ 0xac7)
		ev.IP = g.HomeIP(a)
		if h>>56 < 20 { // ~8 % from a second address (mobile, travel)
			ev.IP = g.poolIP(umod(ha>>20, g.IPs-stuffIPs))
		}
		ev.city = int(ha % uint64(len(cities)))
		if h>>48&0xff == 0 { // rare trip
			ev.city = umod(h>>30, len(cities))
		}
		ev.ua = umod(ha>>8, len(userAgents))
		pick := (h >> 8) % 100
		for _, na := range normalActions {
			if pick < na.upTo {
				ev.Action = na.action
				break
			}
		}
		day := ev.Time.Unix() / 86400
		ev.Session = "s" + strconv.FormatUint(mix(uint64(a)^uint64(day)<<20)>>4, 16)
		switch ev.Action {
		case "auth.login.success":
			ev.Outcome = "success"
		case "auth.login.failure":
			ev.Outcome, ev.Reason, ev.Session = "failure", "invalid_password", ""
		case "auth.logout":
			ev.Reason = "user"
		case "user.role.changed", "api_key.created":
			ev.Target = ActorID(umod(h>>24, g.Actors/g.Tenants)*g.Tenants + a%g.Tenants)
			if ev.Action == "api_key.created" {
				ev.Target = "key_" + strconv.FormatUint(h>>24, 36)
			}
		}
		ev.email = true
	}
	if g.Tenant != "" {
		ev.Tenant = g.Tenant
	}
	ev.ID = ulid(ev.Time, g.h(i, 3))
	return ev
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// ulid formats a ULID from a time and 64 random bits (the top 16 of the 80
// random bits are zero-filled from the same value).
func ulid(t time.Time, r uint64) string {
	ms := uint64(t.UnixMilli())
	var b [16]byte
	for k := 0; k < 6; k++ {
		b[k] = byte(ms >> (40 - 8*k))
	}
	b[6], b[7] = byte(r>>56^r>>8), byte(r>>48^r)
	for k := 0; k < 8; k++ {
		b[8+k] = byte(r >> (56 - 8*k))
	}
	var out [26]byte
	// 128 bits → 26 base32 digits, the first carrying 3 bits.
	var acc uint64
	bits := 2 // two leading zero bits pad 128 to 130
	pos := 0
	for _, c := range b {
		acc = acc<<8 | uint64(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out[pos] = crockford[(acc>>bits)&31]
			pos++
		}
	}
	return string(out[:])
}

// AppendJSON appends event i as one JSON object (the wire form a client
// sends) and returns the structured event too.
func (g *Gen) AppendJSON(buf []byte, i int) ([]byte, Event) {
	ev := g.Event(i)
	return appendEventJSON(buf, &ev), ev
}

func appendEventJSON(b []byte, ev *Event) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, ev.ID...)
	b = append(b, `","tenant":"`...)
	b = append(b, ev.Tenant...)
	b = append(b, `","time":"`...)
	b = ev.Time.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","action":"`...)
	b = append(b, ev.Action...)
	b = append(b, `","actor":{"id":"`...)
	b = append(b, ev.Actor...)
	b = append(b, '"')
	if ev.email {
		b = append(b, `,"email":"`...)
		b = append(b, ev.Actor...)
		b = append(b, '@')
		b = append(b, ev.Tenant...)
		b = append(b, `.example.com"`...)
	}
	b = append(b, '}')
	if ev.Target != "" {
		b = append(b, `,"target":{"type":"user","id":"`...)
		b = append(b, ev.Target...)
		b = append(b, `"}`...)
	}
	if ev.Reason != "" {
		b = append(b, `,"reason":"`...)
		b = append(b, ev.Reason...)
		b = append(b, '"')
	}
	b = append(b, `,"context":{"ip":"`...)
	b = ev.IP.AppendTo(b)
	b = append(b, `","user_agent":"`...)
	if ev.ua < 0 {
		b = append(b, botAgents[-1-ev.ua]...)
	} else {
		b = append(b, userAgents[ev.ua]...)
	}
	b = append(b, '"')
	if ev.Session != "" {
		b = append(b, `,"session_id":"`...)
		b = append(b, ev.Session...)
		b = append(b, '"')
	}
	b = append(b, `,"request_id":"req-`...)
	b = strconv.AppendUint(b, ev.extra>>1, 36)
	b = append(b, '"')
	if ev.Action == "auth.login.success" {
		b = append(b, `,"auth_method":"password"`...)
	}
	b = append(b, `,"geo":{"country":"`...)
	c := cities[ev.city]
	b = append(b, c.country...)
	b = append(b, `","city":"`...)
	b = append(b, c.name...)
	b = append(b, `","latitude":`...)
	b = append(b, c.lat...)
	b = append(b, `,"longitude":`...)
	b = append(b, c.lon...)
	b = append(b, `}},"metadata":{"app":"`...)
	apps := [...]string{"web", "mobile", "admin-console", "api"}
	b = append(b, apps[ev.extra%4]...)
	b = append(b, '"')
	switch ev.Action {
	case "data.exported", "data.downloaded":
		b = append(b, `,"records":`...)
		b = strconv.AppendUint(b, ev.extra>>24%5000, 10)
	case "auth.mfa.enrolled":
		b = append(b, `,"factor":"totp"`...)
	case "auth.password.reset":
		b = append(b, `,"stage":"requested"`...)
	case "user.role.changed":
		b = append(b, `,"new_role":"admin","old_role":"member"`...)
	case "user.email.changed":
		b = append(b, `,"old":"`...)
		b = append(b, ev.Actor...)
		b = append(b, `@mail.example.com","new":"recovery`...)
		b = strconv.AppendUint(b, ev.extra>>20%1000, 10)
		b = append(b, `@mailbox.example.net"`...)
	}
	return append(b, `}}`...)
}
