package sqlite

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// The event codec is a compact binary form of audit.Event used for stream
// records and for the payload column of event partitions. JSON of a typical
// event is ~400 bytes; this form drops the field names, stores times as
// varints and lets low-cardinality strings (tenant, action, user agent,
// country, AS organisation, browser…) be replaced by a reference into a
// per-file dictionary. Metadata stays JSON, because it is free-form.
//
// Layout: a version byte, then the fields in a fixed order. A "dstr" is a
// dictionary-eligible string: tag 0 = empty, 1 = inline (uvarint length +
// bytes), n+2 = dictionary entry n. A "str" is uvarint length + bytes.

const codecVersion = 1

// maxStringBytes bounds any one decoded string or blob, so a corrupt length
// cannot make the decoder allocate without limit.
const maxStringBytes = 1 << 20

// dictionary maps low-cardinality strings to small integers. lookup returns
// the id of s, adding it when add is true; name returns the string of id.
type dictionary interface {
	lookup(s string) (uint64, bool)
	name(id uint64) (string, bool)
}

// encodeOpts controls which fields the encoder writes.
type encodeOpts struct {
	// omitKey leaves out ID, Tenant, Time and Action, which partitions keep
	// in columns of their own.
	omitKey bool
	dict    dictionary
	// rawMeta, when set, makes the decoder store the metadata JSON there
	// (aliasing the input) instead of unmarshalling it: the query runner
	// decodes metadata only when a query needs it.
	rawMeta *[]byte
}

type encoder struct {
	b    []byte
	dict dictionary
}

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) byte1(v byte)     { e.b = append(e.b, v) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bytes(s []byte)   { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }

func (e *encoder) dstr(s string) {
	if s == "" {
		e.byte1(0)
		return
	}
	if e.dict != nil {
		if id, ok := e.dict.lookup(s); ok {
			e.uvarint(id + 2)
			return
		}
	}
	e.byte1(1)
	e.str(s)
}

func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.byte1(0)
		return
	}
	e.byte1(1)
	e.varint(t.Unix())
	e.uvarint(uint64(t.Nanosecond()))
}

func (e *encoder) float(f float64) {
	e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(f))
}

func (e *encoder) optFloat(f *float64) {
	if f == nil {
		e.byte1(0)
		return
	}
	e.byte1(1)
	e.float(*f)
}

// encodeEvent appends the binary form of ev to dst.
func encodeEvent(dst []byte, ev *audit.Event, o encodeOpts) ([]byte, error) {
	e := encoder{b: dst, dict: o.dict}
	e.byte1(codecVersion)
	if !o.omitKey {
		e.str(ev.ID)
		e.dstr(ev.Tenant)
		e.time(ev.Time)
		e.dstr(ev.Action)
	}
	e.time(ev.ReceivedAt)
	e.dstr(string(ev.Outcome))
	e.dstr(ev.Reason)
	e.str(ev.Actor.ID)
	e.dstr(ev.Actor.Type)
	e.str(ev.Actor.Email)
	e.str(ev.Actor.Name)
	e.dstr(ev.Target.Type)
	e.str(ev.Target.ID)
	e.str(ev.Target.Name)

	c := &ev.Context
	if c.IP.IsValid() {
		ip, _ := c.IP.MarshalBinary()
		e.bytes(ip)
	} else {
		e.uvarint(0)
	}
	e.dstr(c.UserAgent)
	e.str(c.SessionID)
	e.str(c.RequestID)
	e.dstr(c.AuthMethod)
	e.str(c.DeviceID)
	if g := c.Geo; g != nil {
		e.byte1(1)
		e.dstr(g.Country)
		e.dstr(g.Region)
		e.dstr(g.City)
		e.optFloat(g.Latitude)
		e.optFloat(g.Longitude)
	} else {
		e.byte1(0)
	}

	if ev.Metadata == nil {
		e.uvarint(0)
	} else {
		m, err := json.Marshal(ev.Metadata)
		if err != nil {
			return nil, fmt.Errorf("encode metadata of event %s: %w", ev.ID, err)
		}
		e.bytes(m)
	}

	en := &ev.Enrichment
	if g := en.Geo; g != nil {
		e.byte1(1)
		e.dstr(g.Country)
		e.dstr(g.Region)
		e.dstr(g.City)
		e.float(g.Latitude)
		e.float(g.Longitude)
		var flags byte
		if g.HasLocation {
			flags = 1
		}
		e.byte1(flags)
		e.varint(int64(g.AccuracyKM))
		e.dstr(g.TimeZone)
		e.dstr(g.Source)
	} else {
		e.byte1(0)
	}
	if n := en.Network; n != nil {
		e.byte1(1)
		e.dstr(n.Scope)
		e.uvarint(uint64(n.ASN))
		e.dstr(n.ASOrg)
		var flags byte
		if n.Tor {
			flags |= 1
		}
		if n.Datacenter {
			flags |= 2
		}
		if n.VPN {
			flags |= 4
		}
		if n.Lists != nil {
			flags |= 8
		}
		e.byte1(flags)
		if n.Lists != nil {
			e.uvarint(uint64(len(n.Lists)))
			for _, l := range n.Lists {
				e.dstr(l)
			}
		}
	} else {
		e.byte1(0)
	}
	if u := en.UserAgent; u != nil {
		e.byte1(1)
		e.dstr(u.Browser)
		e.dstr(u.BrowserVersion)
		e.dstr(u.OS)
		e.dstr(u.OSVersion)
		e.dstr(u.Device)
		e.dstr(u.Class)
	} else {
		e.byte1(0)
	}

	if r := ev.Risk; r != nil {
		e.byte1(1)
		e.varint(int64(r.Score))
		var flags byte
		if r.Reasons != nil {
			flags = 1
		}
		e.byte1(flags)
		if r.Reasons != nil {
			e.uvarint(uint64(len(r.Reasons)))
			for _, s := range r.Reasons {
				e.dstr(s)
			}
		}
		e.dstr(r.Decision)
	} else {
		e.byte1(0)
	}
	return e.b, nil
}

// errCorrupt is wrapped by every decoding failure.
var errCorrupt = errors.New("corrupt event encoding")

type decoder struct {
	b     []byte
	dict  dictionary
	field string // the field being decoded, for error messages
	err   error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", errCorrupt, d.field, fmt.Sprintf(format, args...))
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte1() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) raw() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > maxStringBytes || n > uint64(len(d.b)) {
		d.fail("length %d out of range", n)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.raw()) }

func (d *decoder) dstr() string {
	tag := d.uvarint()
	switch {
	case d.err != nil || tag == 0:
		return ""
	case tag == 1:
		s := d.str()
		if s == "" && d.err == nil {
			d.fail("empty inline string")
		}
		return s
	}
	if d.dict == nil {
		d.fail("dictionary reference without dictionary")
		return ""
	}
	s, ok := d.dict.name(tag - 2)
	if !ok {
		d.fail("unknown dictionary entry %d", tag-2)
	}
	return s
}

func (d *decoder) time() time.Time {
	switch d.byte1() {
	case 0:
		return time.Time{}
	case 1:
	default:
		d.fail("bad time tag")
		return time.Time{}
	}
	sec := d.varint()
	nsec := d.uvarint()
	if nsec >= 1e9 {
		d.fail("nanoseconds %d out of range", nsec)
		return time.Time{}
	}
	t := time.Unix(sec, int64(nsec)).UTC()
	if t.IsZero() {
		// The encoder writes the zero time with tag 0, so this form is
		// never produced; rejecting it keeps encodings canonical.
		d.fail("zero time with tag 1")
	}
	return t
}

func (d *decoder) float() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail("truncated float")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *decoder) optFloat() *float64 {
	switch d.byte1() {
	case 0:
		return nil
	case 1:
		v := d.float()
		return &v
	}
	d.fail("bad optional tag")
	return nil
}

func (d *decoder) flag() bool {
	switch d.byte1() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bad presence flag")
	return false
}

func (d *decoder) count() int {
	n := d.uvarint()
	// Every element takes at least one byte.
	if n > uint64(len(d.b)) {
		d.fail("count %d out of range", n)
		return 0
	}
	return int(n)
}

// decodeEvent decodes b into ev. When the encoding omitted the key fields,
// the caller fills them in.
func decodeEvent(b []byte, ev *audit.Event, o encodeOpts) error {
	d := decoder{b: b, dict: o.dict, field: "version"}
	if v := d.byte1(); v != codecVersion && d.err == nil {
		d.fail("unknown version %d", v)
	}
	if !o.omitKey {
		d.field = "id"
		ev.ID = d.str()
		d.field = "tenant"
		ev.Tenant = d.dstr()
		d.field = "time"
		ev.Time = d.time()
		d.field = "action"
		ev.Action = d.dstr()
	}
	d.field = "received_at"
	ev.ReceivedAt = d.time()
	d.field = "outcome"
	ev.Outcome = audit.Outcome(d.dstr())
	d.field = "reason"
	ev.Reason = d.dstr()
	d.field = "actor"
	ev.Actor = audit.Actor{ID: d.str(), Type: d.dstr(), Email: d.str(), Name: d.str()}
	d.field = "target"
	ev.Target = audit.Target{Type: d.dstr(), ID: d.str(), Name: d.str()}

	d.field = "context.ip"
	c := &ev.Context
	*c = audit.Context{}
	if ip := d.raw(); len(ip) > 0 {
		if err := c.IP.UnmarshalBinary(ip); err != nil {
			d.fail("%v", err)
		}
	}
	d.field = "context"
	c.UserAgent = d.dstr()
	c.SessionID = d.str()
	c.RequestID = d.str()
	c.AuthMethod = d.dstr()
	c.DeviceID = d.str()
	d.field = "context.geo"
	if d.flag() {
		c.Geo = &audit.ClientGeo{Country: d.dstr(), Region: d.dstr(), City: d.dstr()}
		c.Geo.Latitude = d.optFloat()
		c.Geo.Longitude = d.optFloat()
	}

	d.field = "metadata"
	ev.Metadata = nil
	if m := d.raw(); o.rawMeta != nil {
		*o.rawMeta = m
	} else if len(m) > 0 && d.err == nil {
		if err := json.Unmarshal(m, &ev.Metadata); err != nil {
			d.fail("%v", err)
		} else if ev.Metadata == nil {
			d.fail("not an object")
		}
	}

	ev.Enrichment = audit.Enrichment{}
	d.field = "enrichment.geo"
	if d.flag() {
		g := &audit.Geo{Country: d.dstr(), Region: d.dstr(), City: d.dstr()}
		g.Latitude = d.float()
		g.Longitude = d.float()
		switch d.byte1() {
		case 0:
		case 1:
			g.HasLocation = true
		default:
			d.fail("bad flags")
		}
		acc := d.varint()
		if acc < math.MinInt32 || acc > math.MaxInt32 {
			d.fail("accuracy out of range")
		}
		g.AccuracyKM = int(acc)
		g.TimeZone = d.dstr()
		g.Source = d.dstr()
		ev.Enrichment.Geo = g
	}
	d.field = "enrichment.network"
	if d.flag() {
		n := &audit.Network{Scope: d.dstr()}
		asn := d.uvarint()
		if asn > math.MaxUint32 {
			d.fail("asn out of range")
		}
		n.ASN = uint32(asn)
		n.ASOrg = d.dstr()
		flags := d.byte1()
		if flags&^15 != 0 {
			d.fail("bad flags")
		}
		n.Tor, n.Datacenter, n.VPN = flags&1 != 0, flags&2 != 0, flags&4 != 0
		if flags&8 != 0 {
			k := d.count()
			n.Lists = make([]string, 0, k)
			for range k {
				n.Lists = append(n.Lists, d.dstr())
			}
		}
		ev.Enrichment.Network = n
	}
	d.field = "enrichment.user_agent"
	if d.flag() {
		ev.Enrichment.UserAgent = &audit.UserAgent{Browser: d.dstr(), BrowserVersion: d.dstr(),
			OS: d.dstr(), OSVersion: d.dstr(), Device: d.dstr(), Class: d.dstr()}
	}
	d.field = "risk"
	ev.Risk = nil
	if d.flag() {
		r := &audit.Risk{}
		s := d.varint()
		if s < math.MinInt32 || s > math.MaxInt32 {
			d.fail("score out of range")
		}
		r.Score = int(s)
		switch d.byte1() {
		case 0:
		case 1:
			k := d.count()
			r.Reasons = make([]string, 0, k)
			for range k {
				r.Reasons = append(r.Reasons, d.dstr())
			}
		default:
			d.fail("bad flags")
		}
		r.Decision = d.dstr()
		ev.Risk = r
	}
	if d.err == nil && len(d.b) != 0 {
		d.field = "end"
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}

// ipKey is the index form of an address: 4 bytes for IPv4, 16 for IPv6, so
// that a CIDR is one contiguous byte range and the families never mix (the
// queries also check length()).
func ipKey(a netip.Addr) []byte {
	if !a.IsValid() {
		return nil
	}
	a = a.Unmap()
	return a.AsSlice()
}

// prefixRange returns the first and last index keys inside p.
func prefixRange(p netip.Prefix) (lo, hi []byte) {
	p = p.Masked()
	lo = p.Addr().AsSlice()
	hi = make([]byte, len(lo))
	copy(hi, lo)
	bits := p.Bits()
	for i := range hi {
		for b := 0; b < 8; b++ {
			if i*8+b >= bits {
				hi[i] |= 0x80 >> b
			}
		}
	}
	return lo, hi
}
