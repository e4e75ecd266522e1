package detect

import (
	"encoding/binary"
	"errors"
	"hash/fnv"
	"math"
	"slices"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// Profile limits: each list keeps its most recently seen entries.
const (
	maxCountries = 12
	maxCities    = 12
	maxASNs      = 12
	maxDevices   = 12
	// hourDecayAt halves the hour-of-week histogram when its total passes
	// this, so old habits fade and counts stay small.
	hourDecayAt = 4000
)

// Profile is an actor's baseline: where, from which networks and devices,
// and when the actor usually acts, plus the last successful login's place.
// It is kept encoded (see encode) so that a million actors fit in memory;
// times are Unix seconds.
type Profile struct {
	First, Last int64  // first and last event time seen
	Logins      uint32 // successful logins
	Countries   []seen // V: ISO code
	Cities      []seenCity
	ASNs        []seen // V: ASN decimal
	Devices     []seen // V: device hash
	Hours       [168]uint16
	HourTotal   uint32
	LastLogin   place
	LastAct     place // latest located activity of any kind
}

// seen is one value with first/last seen times.
type seen struct {
	V           string
	First, Last int64
}

// seenCity is a city, identified by name hash, with its location.
type seenCity struct {
	Hash        uint32
	Lat, Lon    float32
	First, Last int64
}

// place is where and when an actor was.
type place struct {
	T        int64
	HasLoc   bool
	Relay    bool // VPN, Tor, private or relay network: location unreliable
	Lat, Lon float32
	AccKM    uint16
	ASN      uint32
	Country  string
	City     string
	IP       string
	Session  string
	// raw holds the four texts still encoded when the place was decoded
	// from a profile (the fields above are empty then); see text.
	raw []byte
}

func hash32(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// cityHash is hash32(country + "/" + city) without building the string.
func cityHash(country, city []byte) uint32 {
	h := uint32(2166136261)
	for _, part := range [...][]byte{country, {'/'}, city} {
		for _, c := range part {
			h ^= uint32(c)
			h *= 16777619
		}
	}
	return h
}

// familiarCity reports whether the city with hash h is one the actor has
// logged in from over at least span (first to last sighting).
func (p *Profile) familiarCity(h uint32, span time.Duration) bool {
	for _, c := range p.Cities {
		if c.Hash == h {
			return c.Last-c.First >= int64(span.Seconds())
		}
	}
	return false
}

// deviceKey identifies the device of an event: the client's device id when
// given, else the parsed browser/OS/device family (not its version, so a
// browser update is not a new device), else the raw user agent.
func deviceKey(ev *audit.Event) string {
	if ev.Context.DeviceID != "" {
		return "d:" + ev.Context.DeviceID
	}
	if u := ev.Enrichment.UserAgent; u != nil && (u.Browser != "" || u.OS != "") {
		return "u:" + u.Browser + "|" + u.OS + "|" + u.Device
	}
	if ev.Context.UserAgent != "" {
		return "r:" + ev.Context.UserAgent
	}
	return ""
}

// deviceHash is the stored form of deviceKey: its 64-bit FNV-1a hash,
// computed without building the key.
func deviceHash(ev *audit.Event) (d [8]byte, ok bool) {
	var h uint64
	switch u := ev.Enrichment.UserAgent; {
	case ev.Context.DeviceID != "":
		h = fnvString(fnvString(fnvOffset, "d:"), ev.Context.DeviceID)
	case u != nil && (u.Browser != "" || u.OS != ""):
		h = fnvString(fnvOffset, "u:")
		h = fnvString(h, u.Browser)
		h = fnvString(h, "|")
		h = fnvString(h, u.OS)
		h = fnvString(h, "|")
		h = fnvString(h, u.Device)
	case ev.Context.UserAgent != "":
		h = fnvString(fnvString(fnvOffset, "r:"), ev.Context.UserAgent)
	default:
		return d, false
	}
	binary.BigEndian.PutUint64(d[:], h)
	return d, true
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// fnvString continues a 64-bit FNV-1a hash over s.
func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// hasDevice reports whether the device hash d is known.
func (p *Profile) hasDevice(d [8]byte) bool {
	for _, s := range p.Devices {
		if s.V == string(d[:]) {
			return true
		}
	}
	return false
}

// hasASN reports whether the network n is known.
func (p *Profile) hasASN(n uint32) bool {
	var b [10]byte
	v := appendUint(b[:0], uint64(n))
	for _, s := range p.ASNs {
		if s.V == string(v) {
			return true
		}
	}
	return false
}

// localHourOfWeek is the hour of the week of the event in the actor's
// local day (see localOffset).
func localHourOfWeek(ev *audit.Event, p *Profile, relay bool) int {
	return hourOfWeek(ev.Time.Unix() + localOffset(ev, p, relay))
}

// localOffset is the actor's local time offset in seconds, judged by
// longitude (15° an hour), which every located event has and which gives
// the same answer on every machine (a time-zone database would not): the
// event's own place, or, for a relay (whose place is a gateway's), the
// actor's most recently used city; UTC when neither is known. Summer time
// and zones that stray from their meridian shift it by an hour, which the
// hour kernel (±2 h) absorbs.
func localOffset(ev *audit.Event, p *Profile, relay bool) int64 {
	if g := ev.Enrichment.Geo; g != nil && g.HasLocation && !relay {
		return lonOffset(g.Longitude)
	}
	if p != nil && len(p.Cities) > 0 {
		j := 0
		for i := range p.Cities {
			if p.Cities[i].Last > p.Cities[j].Last {
				j = i
			}
		}
		return lonOffset(float64(p.Cities[j].Lon))
	}
	return 0
}

func lonOffset(lon float64) int64 {
	return int64(math.Round(max(min(lon, 180), -180)/15)) * 3600
}

func hourOfWeek(sec int64) int {
	// 1970-01-01 was a Thursday; make Monday 00:00 bin 0.
	h := (sec/3600 + 3*24) % 168
	if h < 0 {
		h += 168
	}
	return int(h)
}

func (p *Profile) hasValue(list []seen, v string) bool {
	for _, s := range list {
		if s.V == v {
			return true
		}
	}
	return false
}

// touchBytes is touch for a value held in bytes: it allocates the string
// only when the value is new.
func touchBytes(list []seen, v []byte, t int64, max int) []seen {
	for i := range list {
		if list[i].V == string(v) {
			list[i].Last = maxInt64(list[i].Last, t)
			list[i].First = min(list[i].First, t)
			return list
		}
	}
	return touch(list, string(v), t, max)
}

func maxInt64(a, b int64) int64 { return max(a, b) }

func touch(list []seen, v string, t int64, max int) []seen {
	for i := range list {
		if list[i].V == v {
			if t > list[i].Last {
				list[i].Last = t
			}
			if t < list[i].First {
				list[i].First = t
			}
			return list
		}
	}
	if len(list) >= max {
		// evict the least recently seen
		j := 0
		for i := range list {
			if list[i].Last < list[j].Last {
				j = i
			}
		}
		list = slices.Delete(list, j, j+1)
	}
	return append(list, seen{V: v, First: t, Last: t})
}

// eventPlace is the place of an event.
func eventPlace(ev *audit.Event, relay bool) place {
	pl := place{T: ev.Time.Unix(), Relay: relay, Session: ev.Context.SessionID}
	if ev.Context.IP.IsValid() {
		pl.IP = ev.Context.IP.String()
	}
	if g := ev.Enrichment.Geo; g != nil {
		pl.Country, pl.City = g.Country, g.City
		if g.HasLocation {
			pl.HasLoc = true
			pl.Lat, pl.Lon = float32(g.Latitude), float32(g.Longitude)
			pl.AccKM = uint16(min(g.AccuracyKM, math.MaxUint16))
		}
	}
	if n := ev.Enrichment.Network; n != nil {
		pl.ASN = n.ASN
	}
	return pl
}

// observe folds an event of the actor into the profile. Successful logins
// update the location lists and the last login; any non-failed event
// updates the hour histogram and the last activity.
func (p *Profile) observe(ev *audit.Event, relay bool) {
	t := ev.Time.Unix()
	if p.First == 0 || t < p.First {
		p.First = t
	}
	if t > p.Last {
		p.Last = t
	}
	if ev.Outcome == audit.OutcomeFailure {
		return
	}
	h := localHourOfWeek(ev, p, relay)
	if p.Hours[h] < math.MaxUint16 {
		p.Hours[h]++
		p.HourTotal++
	}
	if p.HourTotal > hourDecayAt {
		p.HourTotal = 0
		for i := range p.Hours {
			p.Hours[i] /= 2
			p.HourTotal += uint32(p.Hours[i])
		}
	}
	pl := eventPlace(ev, relay)
	if pl.HasLoc && t >= p.LastAct.T {
		p.LastAct = pl
	}
	if ev.Action != audit.ActionLoginSuccess {
		return
	}
	p.Logins++
	if t >= p.LastLogin.T {
		p.LastLogin = pl
	}
	if g := ev.Enrichment.Geo; g != nil {
		// A VPN, relay or allowlisted network's country is its egress,
		// not where the user is: it is not learned.
		if g.Country != "" && !relay {
			p.Countries = touch(p.Countries, g.Country, t, maxCountries)
		}
		if g.City != "" && g.HasLocation && !relay {
			p.touchCity(hash32(g.Country+"/"+g.City), float32(g.Latitude), float32(g.Longitude), t)
		}
	}
	if n := ev.Enrichment.Network; n != nil && n.ASN != 0 {
		var b [10]byte
		p.ASNs = touchBytes(p.ASNs, appendUint(b[:0], uint64(n.ASN)), t, maxASNs)
	}
	if d, ok := deviceHash(ev); ok {
		p.Devices = touchBytes(p.Devices, d[:], t, maxDevices)
	}
}

func (p *Profile) touchCity(h uint32, lat, lon float32, t int64) {
	for i := range p.Cities {
		if p.Cities[i].Hash == h {
			p.Cities[i].Last = max(p.Cities[i].Last, t)
			return
		}
	}
	if len(p.Cities) >= maxCities {
		j := 0
		for i := range p.Cities {
			if p.Cities[i].Last < p.Cities[j].Last {
				j = i
			}
		}
		p.Cities = slices.Delete(p.Cities, j, j+1)
	}
	p.Cities = append(p.Cities, seenCity{Hash: h, Lat: lat, Lon: lon, First: t, Last: t})
}

// nearestCityKM returns the distance to the nearest known city, or -1.
func (p *Profile) nearestCityKM(lat, lon float64) float64 {
	best := -1.0
	for _, c := range p.Cities {
		d := haversineKM(lat, lon, float64(c.Lat), float64(c.Lon))
		if best < 0 || d < best {
			best = d
		}
	}
	return best
}

func asnString(n uint32) string {
	var b [10]byte
	return string(appendUint(b[:0], uint64(n)))
}

func appendUint(b []byte, n uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

// haversineKM is the great-circle distance in kilometres.
func haversineKM(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371.0
	rad := math.Pi / 180
	dlat := (lat2 - lat1) * rad
	dlon := (lon2 - lon1) * rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}

// profileVersion is the first byte of an encoded profile.
const profileVersion = 1

// encode returns the compact binary form: varints, sparse hour bins, times
// as deltas from First.
func (p *Profile) encode(buf []byte) []byte {
	b := append(buf[:0], profileVersion)
	b = binary.AppendVarint(b, p.First)
	b = binary.AppendUvarint(b, uint64(p.Last-p.First))
	b = binary.AppendUvarint(b, uint64(p.Logins))
	rel := func(t int64) uint64 { return uint64(max(t-p.First, 0)) }
	putSeen := func(l []seen) {
		b = binary.AppendUvarint(b, uint64(len(l)))
		for _, s := range l {
			b = binary.AppendUvarint(b, uint64(len(s.V)))
			b = append(b, s.V...)
			b = binary.AppendUvarint(b, rel(s.First))
			b = binary.AppendUvarint(b, uint64(max(s.Last-s.First, 0)))
		}
	}
	putSeen(p.Countries)
	putSeen(p.ASNs)
	putSeen(p.Devices)
	b = binary.AppendUvarint(b, uint64(len(p.Cities)))
	for _, c := range p.Cities {
		b = binary.BigEndian.AppendUint32(b, c.Hash)
		b = binary.BigEndian.AppendUint32(b, math.Float32bits(c.Lat))
		b = binary.BigEndian.AppendUint32(b, math.Float32bits(c.Lon))
		b = binary.AppendUvarint(b, rel(c.First))
		b = binary.AppendUvarint(b, uint64(max(c.Last-c.First, 0)))
	}
	n := 0
	for _, v := range p.Hours {
		if v > 0 {
			n++
		}
	}
	b = binary.AppendUvarint(b, uint64(n))
	for i, v := range p.Hours {
		if v > 0 {
			b = append(b, byte(i))
			b = binary.AppendUvarint(b, uint64(v))
		}
	}
	b = p.LastLogin.encode(b, p.First)
	b = p.LastAct.encode(b, p.First)
	return b
}

func (pl *place) encode(b []byte, base int64) []byte {
	if pl.T == 0 {
		return append(b, 0)
	}
	var fl byte = 1
	if pl.HasLoc {
		fl |= 2
	}
	if pl.Relay {
		fl |= 4
	}
	b = append(b, fl)
	b = binary.AppendVarint(b, pl.T-base)
	if pl.HasLoc {
		b = binary.BigEndian.AppendUint32(b, math.Float32bits(pl.Lat))
		b = binary.BigEndian.AppendUint32(b, math.Float32bits(pl.Lon))
		b = binary.AppendUvarint(b, uint64(pl.AccKM))
	}
	b = binary.AppendUvarint(b, uint64(pl.ASN))
	if pl.raw != nil {
		return append(b, pl.raw...)
	}
	for _, s := range [...]string{pl.Country, pl.City, pl.IP, pl.Session} {
		if len(s) > 255 {
			s = s[:255]
		}
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	return b
}

var errProfile = errors.New("corrupt profile")

// profReader decodes with sticky errors.
type profReader struct {
	b   []byte
	err error
}

func (r *profReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errProfile
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *profReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errProfile
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *profReader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.err = errProfile
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *profReader) u32() uint32 {
	b := r.bytes(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

// decodeProfile parses an encoded profile into p (reusing its slices).
func decodeProfile(data []byte, p *Profile) error {
	*p = Profile{Countries: p.Countries[:0], ASNs: p.ASNs[:0], Devices: p.Devices[:0], Cities: p.Cities[:0]}
	if len(data) == 0 || data[0] != profileVersion {
		return errProfile
	}
	r := &profReader{b: data[1:]}
	p.First = r.varint()
	p.Last = p.First + int64(r.uvarint())
	p.Logins = uint32(r.uvarint())
	getSeen := func(l []seen, max int) []seen {
		n := int(r.uvarint())
		if n > max {
			r.err = errProfile
			return l
		}
		for i := 0; i < n && r.err == nil; i++ {
			v := string(r.bytes(int(r.uvarint())))
			f := p.First + int64(r.uvarint())
			l = append(l, seen{V: v, First: f, Last: f + int64(r.uvarint())})
		}
		return l
	}
	p.Countries = getSeen(p.Countries, maxCountries)
	p.ASNs = getSeen(p.ASNs, maxASNs)
	p.Devices = getSeen(p.Devices, maxDevices)
	n := int(r.uvarint())
	if n > maxCities {
		return errProfile
	}
	for i := 0; i < n && r.err == nil; i++ {
		c := seenCity{Hash: r.u32(), Lat: math.Float32frombits(r.u32()), Lon: math.Float32frombits(r.u32())}
		c.First = p.First + int64(r.uvarint())
		c.Last = c.First + int64(r.uvarint())
		p.Cities = append(p.Cities, c)
	}
	n = int(r.uvarint())
	if n > 168 {
		return errProfile
	}
	for i := 0; i < n && r.err == nil; i++ {
		b := r.bytes(1)
		if b == nil || b[0] >= 168 {
			return errProfile
		}
		v := r.uvarint()
		p.Hours[b[0]] = uint16(min(v, math.MaxUint16))
		p.HourTotal += uint32(p.Hours[b[0]])
	}
	p.LastLogin = r.place(p.First)
	p.LastAct = r.place(p.First)
	if r.err == nil && len(r.b) != 0 {
		return errProfile
	}
	return r.err
}

func (r *profReader) place(base int64) place {
	var pl place
	fl := r.bytes(1)
	if fl == nil || fl[0] == 0 {
		return pl
	}
	pl.T = base + r.varint()
	pl.HasLoc = fl[0]&2 != 0
	pl.Relay = fl[0]&4 != 0
	if pl.HasLoc {
		pl.Lat = math.Float32frombits(r.u32())
		pl.Lon = math.Float32frombits(r.u32())
		pl.AccKM = uint16(min(r.uvarint(), math.MaxUint16))
	}
	pl.ASN = uint32(r.uvarint())
	// The four texts stay encoded until asked for (see place.text): most
	// events never read them, and decoding would allocate four strings.
	start := r.b
	for range 4 {
		l := r.bytes(1)
		if l == nil {
			return pl
		}
		r.bytes(int(l[0]))
	}
	if r.err == nil {
		pl.raw = start[:len(start)-len(r.b)]
	}
	return pl
}

// Texts of a place, by index.
const (
	textCountry = iota
	textCity
	textIP
	textSession
)

// textBytes returns text i without allocating: a view of the encoded
// profile or of the field.
func (pl *place) textBytes(i int) []byte {
	if pl.raw == nil {
		return []byte(pl.text(i))
	}
	b := pl.raw
	for j := 0; ; j++ {
		n := int(b[0])
		if j == i {
			return b[1 : 1+n]
		}
		b = b[1+n:]
	}
}

// text returns text i (country, city, IP or session).
func (pl *place) text(i int) string {
	if pl.raw != nil {
		return string(pl.textBytes(i))
	}
	return [...]string{pl.Country, pl.City, pl.IP, pl.Session}[i]
}

// hourProbability is the smoothed probability of hour-of-week h in a
// histogram whose bins sum to total. People keep hours of the day, not of
// the week, and a working day has an hour or two of jitter at each end:
// with the few dozen logins a profile holds, a weekly histogram is mostly
// empty and every new weekday-hour pair looks rare. So the estimate pools
// the same hour of the day over all seven days with a kernel over the
// neighbouring hours (½ at ±1 h, ¼ at ±2 h) and spreads it evenly over the
// week's days: the result stays on the hour-of-week scale (a uniform habit
// gives 1/168), while a login hours away from any usual one (another time
// zone, the middle of the night) keeps a probability near zero.
func hourProbability(hist *[168]uint16, total uint32, h int) float64 {
	if total == 0 {
		return 0
	}
	return smoothedBin(hist, h) / (float64(total) * hourKernelSum * 7)
}

// hourKernel weighs the hours around the one judged; hourKernelSum is its
// total weight.
var hourKernel = [...]struct {
	off int
	w   float64
}{{-2, 0.25}, {-1, 0.5}, {0, 1}, {1, 0.5}, {2, 0.25}}

const hourKernelSum = 2.5

func smoothedBin(hist *[168]uint16, h int) float64 {
	var s float64
	for d := range 7 {
		for _, k := range hourKernel {
			s += k.w * float64(hist[((h+24*d+k.off)%168+168)%168])
		}
	}
	return s
}
