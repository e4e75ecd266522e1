package detect

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect/rulelang"
)

// durParam returns a duration parameter override, or def.
func durParam(p map[string]any, name string, def time.Duration) time.Duration {
	if d, ok := p[name].(time.Duration); ok && d > 0 {
		return d
	}
	return def
}

func numParam(p map[string]any, name string, def float64) float64 {
	switch v := p[name].(type) {
	case int64:
		return float64(v)
	case float64:
		return v
	}
	return def
}

func intsParam(p map[string]any, name string) []int64 {
	v, _ := p[name].([]int64)
	return v
}

func riskByte(in *input) uint8 {
	if in.risk == nil {
		return 0
	}
	return uint8(min(max(in.risk.Score, 0), 100))
}

// key returns (creating) the keyed state of r for the event's group, or nil
// when the event lacks the group key or the key cap bites. The state's key
// (tenant|rule|group) is built in a scratch buffer: looking up an existing
// key allocates nothing.
func (e *Engine) key(r *crule, in *input) *keyState {
	tenant := in.ev.Tenant
	if r.installation {
		tenant = ""
	}
	b := append(e.sbuf[:0], tenant...)
	b = append(b, '|')
	b = append(b, r.ID...)
	b = append(b, '|')
	pre := len(b)
	b, ok := in.appendGroupKey(b, r.Rule)
	e.sbuf = b
	if !ok {
		return nil
	}
	ks := e.keys[string(b)]
	if ks == nil {
		if !e.admitKey(tenant, in.t) {
			return nil
		}
		sk := string(b)
		ks = e.newKeyState()
		ks.Tenant, ks.Rule, ks.Group, ks.sk, ks.live = tenant, r.ID, sk[pre:], sk, true
		e.keys[sk] = ks
		e.tkeys[tenant]++
		e.keysPeak = max(e.keysPeak, len(e.keys))
		delete(e.deadKeys, sk)
		e.schedule(ks, in.t+r.Window.Milliseconds()+e.opts.AllowedLateness.Milliseconds())
	}
	if !ks.dirty && e.opts.StateStore != nil {
		ks.dirty = true
		e.dirtyKeys = append(e.dirtyKeys, ks)
	}
	return ks
}

// evalMatch handles a match rule: every passing event is a hit.
func (e *Engine) evalMatch(r *crule, in *input, ev *audit.Event, t int64) {
	in.setAgg(aggVals{count: 1, maxRisk: int64(riskByte(in))})
	if ok, _ := r.Condition.Bool(in); !ok {
		return
	}
	ks := e.key(r, in)
	if ks == nil {
		return
	}
	if t > ks.Newest {
		ks.Newest = t
	}
	e.hit(r, ks, ev, in, t, []string{evidenceRef(r, ev)}, 1, t, nil)
}

// evalAggregate handles threshold and distinct rules.
func (e *Engine) evalAggregate(r *crule, in *input, ev *audit.Event, t int64) {
	m := true
	if r.CountIf.Present() {
		m, _ = r.CountIf.Bool(in)
	}
	v := ""
	if r.Distinct.Present() {
		v = r.Distinct.String(in)
	}
	ks := e.key(r, in)
	if ks == nil {
		return
	}
	window := durParam(in.params, "window", r.Window)
	// Evidence is what the rule counts: the events with a distinct value,
	// else the matched ones, else all.
	isEvidence := func(en entry) bool {
		switch {
		case r.Distinct.Present():
			return en.V != ""
		case r.CountIf.Present():
			return en.M
		}
		return true
	}
	if r.Baseline != nil {
		ks.roll(t, window, r.Baseline.Alpha)
		ks.BCount++
		if m {
			ks.BMatched++
		}
	}
	if d := ks.add(entry{T: t, ID: evidenceRef(r, ev), V: v, M: m, R: riskByte(in)}, window, e.opts.MaxWindowEvents); d > 0 {
		e.m.entriesDropped.Add(float64(d))
	}
	agg := in.setAgg(aggVals{count: int64(ks.count), matched: int64(ks.matched), distinct: int64(ks.distinctCount()), baseline: -1, baselineM: -1})
	if r.usesMaxRisk {
		for _, en := range ks.Entries {
			agg.maxRisk = max(agg.maxRisk, int64(en.R))
		}
	}
	if r.Baseline != nil && ks.Closed >= r.Baseline.Warmup {
		agg.baseline, agg.baselineM = ks.Base, ks.BaseM
	}
	active := ks.Finding != nil && t <= ks.Until
	if active {
		if !isEvidence(entry{V: v, M: m}) {
			return
		}
		if r.broad {
			// A tenant- or installation-wide key mixes the attack with
			// everyday traffic: a later event belongs to the open finding
			// only while the window still meets the condition, or when it
			// comes from a source already part of the attack.
			if _, known := ks.FVals[v]; v == "" || !known {
				if agg.maxPer = -1; r.usesMaxPer {
					agg.maxPer = int64(ks.maxPerValue())
				}
				if ok, _ := r.Condition.Bool(in); !ok {
					return
				}
			}
		}
		ks.absorb(v, m)
		e.hit(r, ks, ev, in, t, []string{evidenceRef(r, ev)}, 1, t, aggFacts(r, ks, agg))
		if r.Flag != nil && r.Flag.Values == "distinct" && v != "" && ks.valueCount(v) >= flagMinPer(in) {
			e.flags[flagKey(ks.Tenant, r.Flag.Name, v)] = t + r.Flag.TTL.Milliseconds()
		}
		return
	}
	if agg.maxPer = -1; r.usesMaxPer {
		agg.maxPer = int64(ks.maxPerValue())
	}
	if ok, _ := r.Condition.Bool(in); !ok {
		return
	}
	ids := make([]string, 0, min(len(ks.Entries), audit.MaxEvidence))
	first, n := t, 0
	ks.FVals, ks.FMatched, ks.FValsCapped = nil, 0, false
	ks.fMax, ks.fLow, ks.fDerived = 0, ks.fLow[:0], true
	for _, en := range ks.Entries {
		if !isEvidence(en) {
			continue
		}
		first = min(first, en.T)
		n++
		if len(ids) < audit.MaxEvidence {
			ids = append(ids, en.ID)
		}
		ks.absorb(en.V, en.M)
	}
	ks.Finding = nil // a new finding opens
	e.hit(r, ks, ev, in, t, ids, n, first, aggFacts(r, ks, agg))
	if r.Flag != nil && r.Flag.Values == "distinct" {
		tenant := ks.Tenant
		exp := t + r.Flag.TTL.Milliseconds()
		minPer := flagMinPer(in)
		ks.values(func(v string) {
			if ks.valueCount(v) >= minPer {
				e.flags[flagKey(tenant, r.Flag.Name, v)] = exp
			}
		})
	}
}

// flagMinPer is how many of the window's events a value needs before a
// distinct flag marks it (the rule's flag_min_per_source, default 1): a
// wave spread over hours flags the addresses that kept trying, not every
// office address where someone mistyped a password meanwhile.
func flagMinPer(in *input) int32 {
	return int32(numParam(in.params, "flag_min_per_source", 1))
}

// valueCount is how many of the window's events have value v.
func (ks *keyState) valueCount(v string) int32 {
	if ks.per != nil {
		return ks.per[v]
	}
	if ks.one == v {
		return ks.oneN
	}
	return 0
}

// maxFindingValues bounds the distinct values an open finding tracks.
const maxFindingValues = 4096

// absorb counts one evidence event (distinct value v, matched m) into the
// open finding's totals.
func (ks *keyState) absorb(v string, m bool) {
	if m {
		ks.FMatched++
	}
	if v == "" {
		return
	}
	if ks.FVals == nil {
		ks.FVals = map[string]int32{}
	}
	c, ok := ks.FVals[v]
	if !ok && len(ks.FVals) >= maxFindingValues {
		ks.FValsCapped = true
		return
	}
	ks.FVals[v] = c + 1
	if !ks.fDerived {
		return // derived on the next aggFacts
	}
	ks.fMax = max(ks.fMax, c+1)
	if !ok {
		ks.fLow = insertLow(ks.fLow, v)
	}
}

// factValues is how many of a finding's distinct values its facts list.
const factValues = 20

// insertLow inserts v into low, the sorted factValues smallest values
// seen, if it belongs there.
func insertLow(low []string, v string) []string {
	if len(low) == factValues && v >= low[len(low)-1] {
		return low
	}
	i, _ := slices.BinarySearch(low, v)
	if len(low) == factValues {
		low = low[:factValues-1]
	}
	return slices.Insert(low, i, v)
}

// deriveFacts recomputes fMax and fLow from FVals (after a restore).
func (ks *keyState) deriveFacts() {
	ks.fMax, ks.fLow = 0, ks.fLow[:0]
	for v, c := range ks.FVals {
		ks.fMax = max(ks.fMax, c)
		ks.fLow = insertLow(ks.fLow, v)
	}
	ks.fDerived = true
}

// aggFacts are the facts of an aggregate finding. They describe the whole
// finding, from its first evidence event to its last (distinct values,
// matched events, most events of one value), not just the current window;
// the baseline is the key's current one.
func aggFacts(r *crule, ks *keyState, a *aggVals) map[string]any {
	f := make(map[string]any, 9)
	f["matched"] = int64(ks.FMatched)
	if r.Distinct.Present() {
		if !ks.fDerived {
			ks.deriveFacts()
		}
		f["distinct"] = int64(len(ks.FVals))
		if ks.FValsCapped {
			f["distinct_capped"] = true
		}
		f["max_per_value"] = int64(ks.fMax)
		vals := make([]string, len(ks.fLow))
		copy(vals, ks.fLow)
		f["values"] = vals
	}
	if r.Baseline != nil {
		f["baseline"] = round1(max(a.baseline, 0))
		f["baseline_matched"] = round1(max(a.baselineM, 0))
		f["window_count"] = a.count
		f["window_matched"] = a.matched
	}
	return f
}

// evalSequence handles sequence rules.
func (e *Engine) evalSequence(r *crule, in *input, ev *audit.Event, t int64) {
	var mbuf [16]int
	matched := mbuf[:0]
	for i := range r.Steps {
		s := &r.Steps[i]
		if !s.CanMatch(ev.Action) {
			continue
		}
		if ok, _ := s.When.Bool(in); ok {
			matched = append(matched, i)
		}
	}
	if len(matched) == 0 {
		return
	}
	ks := e.key(r, in)
	if ks == nil {
		return
	}
	window := durParam(in.params, "window", r.Window)
	for _, s := range matched {
		h := stepHit{Step: s, T: t, ID: evidenceRef(r, ev), R: riskByte(in)}
		i := sort.Search(len(ks.Steps), func(i int) bool { return ks.Steps[i].T > t })
		ks.Steps = slices.Insert(ks.Steps, i, h)
	}
	if t > ks.Newest {
		ks.Newest = t
	}
	cut := ks.Newest - window.Milliseconds()
	n := 0
	for n < len(ks.Steps) && (ks.Steps[n].T < cut || len(ks.Steps)-n > 64) {
		n++
	}
	ks.Steps = slices.Delete(ks.Steps, 0, n)

	agg := in.setAgg(aggVals{count: int64(len(ks.Steps))})
	var seenSteps uint32 // bit per step (at most 16)
	for _, h := range ks.Steps {
		seenSteps |= 1 << uint(h.Step)
		agg.maxRisk = max(agg.maxRisk, int64(h.R))
	}
	agg.steps = int64(bits.OnesCount32(seenSteps))
	if ks.Finding != nil && t <= ks.Until {
		// While the finding is open, more of the attack updates it: any
		// step of an unordered sequence, but only the final step of an
		// ordered one (another export after the change). An earlier step
		// (a new login) is kept in the window for a later chain but does
		// not rewrite the finding ("exported data (auth.login.success)").
		if r.Ordered && !slices.Contains(matched, len(r.Steps)-1) {
			return
		}
		e.hit(r, ks, ev, in, t, []string{evidenceRef(r, ev)}, 1, t, seqFacts(r, ks.Steps, agg))
		return
	}
	var chain []stepHit
	if r.Ordered {
		last := len(r.Steps) - 1
		if !slices.Contains(matched, last) {
			return
		}
		// Walk back from the final step: each earlier step must have a hit
		// at or before the next one's, within the window of the final.
		cur := t
		chain = []stepHit{{Step: last, T: t, ID: evidenceRef(r, ev), R: riskByte(in)}}
		for s := last - 1; s >= 0; s-- {
			found := -1
			for i := len(ks.Steps) - 1; i >= 0; i-- {
				h := ks.Steps[i]
				if h.Step == s && h.T <= cur && h.T >= t-window.Milliseconds() && h.ID != evidenceRef(r, ev) {
					found = i
					break
				}
			}
			if found < 0 {
				return
			}
			cur = ks.Steps[found].T
			chain = append(chain, ks.Steps[found])
		}
		slices.Reverse(chain)
		agg.maxRisk = 0
		for _, h := range chain {
			agg.maxRisk = max(agg.maxRisk, int64(h.R))
		}
	} else {
		if int(agg.steps) < r.MinSteps {
			return
		}
		chain = ks.Steps
	}
	if ok, _ := r.Condition.Bool(in); !ok {
		return
	}
	ids := make([]string, 0, len(chain))
	first := t
	for _, h := range chain {
		if !slices.Contains(ids, h.ID) {
			ids = append(ids, h.ID)
		}
		first = min(first, h.T)
	}
	e.hit(r, ks, ev, in, t, ids, len(ids), first, seqFacts(r, chain, agg))
}

func seqFacts(r *crule, hits []stepHit, a *aggVals) map[string]any {
	names := make([]string, 0, len(hits))
	for _, h := range hits {
		names = append(names, r.Steps[h.Step].Name)
	}
	f := map[string]any{"steps": names, "max_risk": a.maxRisk, "count": len(hits)}
	if len(hits) > 1 {
		f["span"] = fmtDur(time.Duration(hits[len(hits)-1].T-hits[0].T) * time.Millisecond)
	}
	return f
}

// evalProfile handles new_value, travel and rare_time rules against the
// actor's profile as it was before this event. Facts are built only when
// the rule fires.
func (e *Engine) evalProfile(r *crule, in *input, ev *audit.Event, t int64, p *Profile) {
	var facts func() map[string]any
	agg := in.setAgg(aggVals{})
	switch r.Kind {
	case rulelang.KindNewValue:
		nv := newValues(p, ev, in.params, e.isRelay(ev, nil))
		if !nv.established {
			return
		}
		var names []string
		for _, v := range r.Values {
			if nv.has(v) {
				names = append(names, v)
			}
		}
		if len(names) == 0 {
			return
		}
		agg.newVals = names
		// How the actor got here: the speed from the last login's place
		// (-1 when either place is unknown or a relay), so that a trip at
		// plane speed on the actor's own device is told from a takeover.
		agg.speed, agg.distance = -1, -1
		if tf, ok := e.travel(p, ev, in.params, "last_login"); ok {
			agg.speed, agg.distance = tf.speed, tf.distance
		}
		facts = func() map[string]any {
			f := nv.facts(p)
			f["new"] = names
			return f
		}
	case rulelang.KindTravel:
		tf, ok := e.travel(p, ev, in.params, r.Against)
		if !ok {
			return
		}
		agg.speed, agg.distance = tf.speed, tf.distance
		if tf.distance <= numParam(in.params, "min_distance_km", 500) || tf.speed <= numParam(in.params, "max_speed_kmh", 900) {
			return
		}
		facts = tf.facts
	case rulelang.KindRareTime:
		rf, ok := e.rareTime(p, ev, in.params)
		if !ok {
			return
		}
		agg.probability = round4(rf.prob)
		facts = func() map[string]any { return rf.facts(ev, p) }
	}
	if ok, _ := r.Condition.Bool(in); !ok {
		return
	}
	ks := e.key(r, in)
	if ks == nil {
		return
	}
	if t > ks.Newest {
		ks.Newest = t
	}
	e.hit(r, ks, ev, in, t, []string{evidenceRef(r, ev)}, 1, t, facts())
}

// newVals is how a successful login compares with an established profile.
type newVals struct {
	established                bool // else nothing else is set
	country, city, asn, device bool
	nearestKM                  float64
	hasNearest                 bool
}

func (nv *newVals) has(v string) bool {
	switch v {
	case "country":
		return nv.country
	case "city":
		return nv.city
	case "asn":
		return nv.asn
	case "device":
		return nv.device
	}
	return false
}

// facts are the evidence of a new-value finding.
func (nv *newVals) facts(p *Profile) map[string]any {
	f := map[string]any{"prior_logins": int64(p.Logins), "known_since": time.Unix(p.First, 0).UTC().Format(time.DateOnly)}
	countries := make([]string, 0, len(p.Countries))
	for _, c := range p.Countries {
		countries = append(countries, c.V)
	}
	sort.Strings(countries)
	f["known_countries"] = strings.Join(countries, ", ")
	for _, x := range []struct {
		name string
		set  bool
	}{{"new_country", nv.country}, {"new_city", nv.city}, {"new_asn", nv.asn}, {"new_device", nv.device}} {
		if x.set {
			f[x.name] = true
		}
	}
	if nv.hasNearest {
		f["nearest_known_km"] = math.Round(max(nv.nearestKM, 0))
	}
	if p.LastLogin.T != 0 {
		f["prev_country"], f["prev_city"] = p.LastLogin.text(textCountry), p.LastLogin.text(textCity)
	}
	return f
}

// newValues compares a successful login with an established profile;
// established is false when the actor is not established yet.
func newValues(p *Profile, ev *audit.Event, params map[string]any, relay bool) newVals {
	minLogins := numParam(params, "min_logins", 5)
	minDays := numParam(params, "min_days", 7)
	if float64(p.Logins) < minLogins || float64(ev.Time.Unix()-p.First) < minDays*86400 {
		return newVals{}
	}
	nv := newVals{established: true}
	if g := ev.Enrichment.Geo; g != nil && g.Country != "" && !relay {
		// Without any located history (only VPN logins so far) no
		// country can be called new.
		nv.country = len(p.Countries) > 0 && !p.hasValue(p.Countries, g.Country)
		if g.HasLocation && g.City != "" && len(p.Cities) > 0 {
			d := p.nearestCityKM(g.Latitude, g.Longitude) - float64(g.AccuracyKM)
			nv.nearestKM, nv.hasNearest = d, true
			nv.city = d > numParam(params, "far_km", 500)
		}
	}
	if n := ev.Enrichment.Network; n != nil && n.ASN != 0 {
		nv.asn = !p.hasASN(n.ASN)
	}
	if d, ok := deviceHash(ev); ok {
		nv.device = !p.hasDevice(d)
	}
	return nv
}

// travelFacts describe the move between two places.
type travelFacts struct {
	prev     place
	distance float64 // km, less both accuracy radii
	raw      float64 // km
	hours    float64
	speed    float64 // km/h
}

func (tf *travelFacts) facts() map[string]any {
	return map[string]any{
		"prev_country": tf.prev.text(textCountry), "prev_city": tf.prev.text(textCity), "prev_ip": tf.prev.text(textIP),
		"prev_time":   time.Unix(tf.prev.T, 0).UTC().Format(time.RFC3339),
		"distance_km": math.Round(tf.raw), "effective_km": math.Round(tf.distance),
		"hours": round2(tf.hours), "speed_kmh": math.Round(tf.speed),
	}
}

// travel computes the move from the profile's comparison place to the
// event's place; ok is false when either place is unknown or unreliable.
func (e *Engine) travel(p *Profile, ev *audit.Event, params map[string]any, against string) (tf travelFacts, ok bool) {
	g := ev.Enrichment.Geo
	if g == nil || !g.HasLocation || e.isRelay(ev, intsParam(params, "relay_asns")) {
		return tf, false
	}
	prev := &p.LastLogin
	if against == "other_session" {
		prev = &p.LastAct
		active := durParam(params, "session_active", 30*time.Minute)
		if sess := prev.textBytes(textSession); len(sess) == 0 || string(sess) == ev.Context.SessionID || ev.Time.Unix()-prev.T > int64(active.Seconds()) {
			return tf, false
		}
	}
	if prev.T == 0 || !prev.HasLoc || prev.Relay {
		return tf, false
	}
	if prev.ASN != 0 && slices.Contains(intsParam(params, "relay_asns"), int64(prev.ASN)) {
		return tf, false
	}
	if fam := durParam(params, "familiar_after", 0); fam > 0 && g.City != "" &&
		p.familiarCity(cityHash(prev.textBytes(textCountry), prev.textBytes(textCity)), fam) &&
		p.familiarCity(cityHash([]byte(g.Country), []byte(g.City)), fam) {
		// Both places are the actor's own, each used over more than a
		// day: a user alternating between home and the corporate VPN's
		// egress, not a traveller nor an attacker.
		return tf, false
	}
	raw := haversineKM(float64(prev.Lat), float64(prev.Lon), g.Latitude, g.Longitude)
	eff := max(raw-float64(prev.AccKM)-float64(g.AccuracyKM), 0)
	hours := float64(ev.Time.Unix()-prev.T) / 3600
	if hours < 0 {
		hours = -hours // an out-of-order pair is the same move backwards
	}
	hours = max(hours, 1.0/60) // one minute floor: clock skew between sources
	return travelFacts{prev: *prev, distance: eff, raw: raw, hours: hours, speed: eff / hours}, true
}

// rareFacts describe how rare an hour is for an actor.
type rareFacts struct {
	prob, orgP float64
	org        bool // judged by the organisation's histogram
}

func (rf *rareFacts) facts(ev *audit.Event, p *Profile) map[string]any {
	local := ev.Time.Add(time.Duration(localOffset(ev, p, false)) * time.Second).UTC()
	f := map[string]any{"hour": fmt.Sprintf("%s %02d:00 local", local.Weekday().String()[:3], local.Hour()),
		"prior_events": int64(p.HourTotal), "probability": round4(rf.prob), "basis": "actor"}
	if rf.org {
		f["basis"] = "organisation"
		f["org_probability"] = round4(rf.orgP)
	}
	return f
}

// rareTime computes how rare the event's hour-of-week is for the actor,
// mixing in the organisation's histogram as a prior. ok is true only when
// the hour is rare: below max_probability, with enough history to judge.
func (e *Engine) rareTime(p *Profile, ev *audit.Event, params map[string]any) (rf rareFacts, ok bool) {
	h := localHourOfWeek(ev, p, e.isRelay(ev, nil))
	minEvents := numParam(params, "min_events", 20)
	ts := e.tstats[ev.Tenant]
	orgP := -1.0
	if ts != nil && ts.HourTotal >= uint32(numParam(params, "org_min_events", 500)) {
		orgP = hourProbability(&ts.Hours, ts.HourTotal, h)
	}
	maxP := numParam(params, "max_probability", 0.002)
	switch {
	case float64(p.HourTotal) >= minEvents:
		rf.prob = hourProbability(&p.Hours, p.HourTotal, h)
		if orgP >= 0 {
			// a little of the organisation's habit, as pseudo-counts
			k := numParam(params, "org_weight", 5)
			n := float64(p.HourTotal)
			rf.prob = (n*rf.prob + k*orgP) / (n + k)
		}
	case orgP >= 0:
		// New actor: judge by the organisation, with a stricter bar.
		rf.prob = orgP * maxP / max(numParam(params, "org_max_probability", 0.0005), 1e-9)
		rf.org, rf.orgP = true, orgP
	default:
		return rf, false
	}
	if rf.prob >= maxP {
		return rf, false
	}
	return rf, true
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }
func round2(f float64) float64 { return math.Round(f*100) / 100 }
func round4(f float64) float64 { return math.Round(f*10000) / 10000 }

// fmtDur prints a duration the way people say it: 4m10s, 2h5m, 3d4h.
func fmtDur(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
	case d >= time.Hour:
		return strings.TrimSuffix(d.Truncate(time.Minute).String(), "0s")
	}
	return d.String()
}

// evidenceRef names an event as a finding's evidence: its id, or
// "tenant/id" for an installation-wide rule, whose findings have no tenant
// of their own (event ids are unique only within a tenant; neither ids nor
// tenant names may contain '/').
func evidenceRef(r *crule, ev *audit.Event) string {
	if r.installation {
		return ev.Tenant + "/" + ev.ID
	}
	return ev.ID
}
