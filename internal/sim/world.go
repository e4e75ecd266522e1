// Package sim simulates a SaaS product's users and the attackers after
// them, as audit events: a few tenants with a few thousand users who have
// homes, devices, working hours, typos, travel, corporate VPNs and office
// NATs, and a set of account-takeover campaigns to run against them. It
// drives `vigil demo` and the benchmarks. Everything is derived from a
// seed, so a run is reproducible.
//
// Without a GeoIP database the simulated events carry their location in
// context.geo (as a CDN's geo headers would), so the simulation works
// offline.
package sim

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"
)

// City is a place users live in or travel to.
type City struct {
	Name, Region, Country string
	Lat, Lon              float64
	// UTCOffset is the local time offset in hours (no DST; a simulation).
	UTCOffset int
	// Block is the /16 the simulated ISPs of the city hand out.
	Block netip.Prefix
	// ASN is the simulated consumer ISP's AS number.
	ASN uint32
}

// Cities is the simulated world. Blocks are public-looking /16s that stand
// in for each city's consumer ISPs.
var Cities = []City{
	{"London", "England", "GB", 51.5074, -0.1278, 0, pfx("81.2.0.0/16"), 64601},
	{"Manchester", "England", "GB", 53.4808, -2.2426, 0, pfx("82.3.0.0/16"), 64602},
	{"Paris", "Ile-de-France", "FR", 48.8566, 2.3522, 1, pfx("90.4.0.0/16"), 64603},
	{"Berlin", "Berlin", "DE", 52.52, 13.405, 1, pfx("91.5.0.0/16"), 64604},
	{"Munich", "Bavaria", "DE", 48.1351, 11.582, 1, pfx("92.6.0.0/16"), 64605},
	{"Madrid", "Madrid", "ES", 40.4168, -3.7038, 1, pfx("93.7.0.0/16"), 64606},
	{"Amsterdam", "North Holland", "NL", 52.3676, 4.9041, 1, pfx("94.8.0.0/16"), 64607},
	{"Stockholm", "Stockholm", "SE", 59.3293, 18.0686, 1, pfx("95.9.0.0/16"), 64608},
	{"Warsaw", "Mazovia", "PL", 52.2297, 21.0122, 1, pfx("83.10.0.0/16"), 64609},
	{"New York", "New York", "US", 40.7128, -74.006, -5, pfx("24.11.0.0/16"), 64610},
	{"Chicago", "Illinois", "US", 41.8781, -87.6298, -6, pfx("67.12.0.0/16"), 64611},
	{"Austin", "Texas", "US", 30.2672, -97.7431, -6, pfx("70.13.0.0/16"), 64612},
	{"San Francisco", "California", "US", 37.7749, -122.4194, -8, pfx("73.14.0.0/16"), 64613},
	{"Seattle", "Washington", "US", 47.6062, -122.3321, -8, pfx("76.15.0.0/16"), 64614},
	{"Toronto", "Ontario", "CA", 43.6532, -79.3832, -5, pfx("99.16.0.0/16"), 64615},
	{"Sao Paulo", "Sao Paulo", "BR", -23.5505, -46.6333, -3, pfx("177.17.0.0/16"), 64616},
	{"Bangalore", "Karnataka", "IN", 12.9716, 77.5946, 5, pfx("49.18.0.0/16"), 64617},
	{"Singapore", "Singapore", "SG", 1.3521, 103.8198, 8, pfx("116.19.0.0/16"), 64618},
	{"Tokyo", "Tokyo", "JP", 35.6762, 139.6503, 9, pfx("126.20.0.0/16"), 64619},
	{"Sydney", "New South Wales", "AU", -33.8688, 151.2093, 10, pfx("101.21.0.0/16"), 64620},
}

// Attacker places: where takeover attempts come from.
var attackerCities = []City{
	{"Lagos", "Lagos", "NG", 6.5244, 3.3792, 1, pfx("105.30.0.0/16"), 64650},
	{"Moscow", "Moscow", "RU", 55.7558, 37.6173, 3, pfx("95.31.0.0/16"), 64651},
	{"Hanoi", "Hanoi", "VN", 21.0278, 105.8342, 7, pfx("113.32.0.0/16"), 64652},
	{"Jakarta", "Jakarta", "ID", -6.2088, 106.8456, 7, pfx("114.33.0.0/16"), 64653},
}

// Hosting is a simulated hosting provider's range: public datacenter lists
// carry such ranges, so the demo gives it to the server as one. Only the
// campaigns that rent servers (bot infrastructure, persistence) use it;
// credential stuffing comes through residential proxies in the victims'
// own countries, which no list names.
var Hosting = City{"Frankfurt", "Hesse", "DE", 50.1109, 8.6821, 1, pfx("185.220.0.0/16"), 64700}

// CorporateVPN is the egress of a corporate VPN/SASE gateway some users
// use: a cloud range on no list, located in Dublin, whatever city the user
// is in. Its users alternate between it and their homes.
var CorporateVPN = City{"Dublin", "Leinster", "IE", 53.3498, -6.2603, 0, pfx("52.48.0.0/16"), 64800}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// IPIn returns a deterministic address in the /16 of c for n.
func IPIn(block netip.Prefix, n int) netip.Addr {
	b := block.Addr().As4()
	b[2], b[3] = byte(n>>8), byte(n)
	if b[3] == 0 {
		b[3] = 1
	}
	return netip.AddrFrom4(b)
}

// Device is a browser on a machine.
type Device struct {
	ID, UserAgent string
}

// browsers are real user agents: current desktop and mobile browsers, and
// older ones from the uap-core test corpus (Apache-2.0), as real user
// populations mix them.
var browsers = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
	"Mozilla/5.0 (Linux; Android 11; GM1917) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/100.0.4896.127 Mobile Safari/537.36",
	"Mozilla/5.0 (Linux; Android 10; SM-G970F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/75.0.3396.81 Mobile Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Safari/605.1.15",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_3) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/80.0.3987.87 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_3) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0.5 Safari/605.1.15",
	"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:104.0) Gecko/20100101 Firefox/104.0",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:73.0) Gecko/20100101 Firefox/73.0",
}

// User is one simulated account holder.
type User struct {
	Tenant, ID, Email string
	Home              City
	// HomeIP is the user's residential address.
	HomeIP netip.Addr
	// Office, when valid, is the office NAT address the user shares with
	// colleagues on weekdays.
	Office  netip.Addr
	Devices []Device
	// StartHour and EndHour bound the user's local working day.
	StartHour, EndHour int
	// NightShift users work 22:00–06:00.
	NightShift bool
	// VPN users log in through the corporate VPN.
	VPN bool
	// Traveller users make a trip during the history, often long-haul, at
	// plane speed, with their own laptop.
	Traveller bool
	// Joined is the day of the history the user's account starts (new
	// hires join late, with little history when the attacks run).
	Joined int
	// NewLaptop is the day a new device replaces the first (-1: never).
	NewLaptop int
	// Evenings users also log in in the evening or early morning, now and
	// then: ordinary life, not an unusual hour.
	Evenings bool
	// ResetDay is a day the user resets a forgotten password and then
	// changes their email address (-1: never).
	ResetDay int
	// MFA factor enrolled ("" none).
	Factor string
	// lastLogin is where and when the history's last login was.
	lastCity City
	lastAt   time.Time
}

// World is the simulated SaaS: tenants and their users.
type World struct {
	Tenants []string
	Users   []*User
	// Offices maps tenant to its office NAT address.
	Offices map[string]netip.Addr
	rng     *rand.Rand
}

// NewWorld builds a world of usersPerTenant users in each tenant.
func NewWorld(seed uint64, tenants []string, usersPerTenant int) *World {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	w := &World{Tenants: tenants, Offices: map[string]netip.Addr{}, rng: rng}
	for ti, t := range tenants {
		officeCity := Cities[(ti*7)%len(Cities)]
		w.Offices[t] = IPIn(officeCity.Block, 4000+ti)
		for i := range usersPerTenant {
			home := Cities[rng.IntN(len(Cities))]
			if rng.Float64() < 0.5 { // half the staff live near the office
				home = officeCity
			}
			u := &User{
				Tenant: t, ID: fmt.Sprintf("%s-u%04d", t, i), Email: fmt.Sprintf("user%d@%s.example", i, t),
				Home: home, HomeIP: IPIn(home.Block, 100+ti*usersPerTenant+i),
				StartHour: 7 + rng.IntN(3), NightShift: rng.Float64() < 0.03,
				VPN: rng.Float64() < 0.08, Traveller: rng.Float64() < 0.06,
				Joined: -1, NewLaptop: -1, ResetDay: -1, Evenings: rng.Float64() < 0.3,
			}
			if rng.Float64() < 0.04 {
				u.Joined = -2 // set per history: a day in its second half
			}
			if rng.Float64() < 0.05 {
				u.NewLaptop = -2
			}
			if rng.Float64() < 0.02 {
				u.ResetDay = -2
			}
			u.EndHour = u.StartHour + 8 + rng.IntN(3)
			if home == officeCity && rng.Float64() < 0.8 {
				u.Office = w.Offices[t]
			}
			for d := range 1 + rng.IntN(2) {
				u.Devices = append(u.Devices, Device{
					ID:        fmt.Sprintf("dev-%s-%d", u.ID, d),
					UserAgent: browsers[rng.IntN(len(browsers))],
				})
			}
			if rng.Float64() < 0.6 {
				u.Factor = []string{"totp", "webauthn", "sms"}[rng.IntN(3)]
			}
			w.Users = append(w.Users, u)
		}
	}
	return w
}

// Rand exposes the world's generator (deterministic).
func (w *World) Rand() *rand.Rand { return w.rng }

// localHour converts a UTC time to the user's local hour.
func localHour(t time.Time, c City) int {
	return (t.UTC().Hour() + c.UTCOffset + 24) % 24
}

// HardCases counts the benign users who make detection hard, by kind:
// the people a careless rule raises false alarms on. History fills in the
// days, so call it after History.
func (w *World) HardCases() map[string]int {
	out := map[string]int{}
	for _, u := range w.Users {
		for kind, ok := range map[string]bool{
			"corporate VPN/SASE user": u.VPN, "traveller (plane, own laptop)": u.Traveller,
			"night shift": u.NightShift, "new hire": u.Joined > 0, "new laptop": u.NewLaptop >= 0,
			"password reset then email change": u.ResetDay >= 0, "evening and early sessions": u.Evenings,
		} {
			if ok {
				out[kind]++
			}
		}
	}
	return out
}
