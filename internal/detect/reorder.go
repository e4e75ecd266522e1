package detect

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/vigilhq/vigil/internal/audit"
)

// Event-time order and the watermark
//
// Findings must not depend on the order in which a tenant's events arrive
// (SDK retries, several application servers, one batch overtaking another),
// nor on other tenants' traffic, nor on one sender whose clock runs fast.
// So the engine does not evaluate an event when it arrives: it holds it in
// its tenant's reorder buffer and evaluates the tenant's held events in
// event-time order (time, then id) once the tenant's watermark has passed
// them. The watermark is the tenant's robust front minus AllowedLateness.
//
// The robust front is the median of the tenant's last clockSamples event
// times (in arrival order), never moving backwards. One event stamped in
// the future, or a sender whose clock runs ahead but sends fewer than half
// of the tenant's recent events, cannot move it: the median ignores them.
// A tenant's clock is its own; another tenant's events never advance it.
//
// A tenant that goes quiet would keep its last events held forever, so the
// stream consumer calls Advance with the wall clock when it has caught up:
// held events whose time is at least AllowedLateness behind the wall clock
// are released too. An event that arrives after the tenant's evaluation
// has passed its time (it is older than an event already evaluated) is
// late: it is still evaluated, in its own time (windows insert it at its
// time, profiles learn from it), counted in vigil_detect_late_events_total
// and in the tenant's degradation, and the findings it touches carry the
// degradation note. It is never silently skipped.

// clockSamples is how many recent event times the robust front is the
// median of.
const clockSamples = 31

// DefaultMaxHeld is the default of Options.MaxHeld.
const DefaultMaxHeld = 200_000

// degradedFor is how long (event time) after a degradation the tenant's
// findings carry its note.
const degradedFor = 24 * time.Hour

// heldEvent is one event in its tenant's reorder buffer.
type heldEvent struct {
	ev  audit.Event
	t   int64
	seq uint64
	// batch is the persisted row (hb/<batch>) that holds the event, 0 while
	// no checkpoint has persisted it, or legacyBatch for an event restored
	// from a row of its own (h/...), written by versions before batches.
	batch uint64
}

// legacyBatch marks a held event persisted in a row of its own.
const legacyBatch = math.MaxUint64

// heldQueue is a min-heap of held events by (time, id, seq).
type heldQueue []*heldEvent

func (q heldQueue) Len() int { return len(q) }
func (q heldQueue) Less(i, j int) bool {
	a, b := q[i], q[j]
	if a.t != b.t {
		return a.t < b.t
	}
	if a.ev.ID != b.ev.ID {
		return a.ev.ID < b.ev.ID
	}
	return a.seq < b.seq
}
func (q heldQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *heldQueue) Push(x any)   { *q = append(*q, x.(*heldEvent)) }
func (q *heldQueue) Pop() any {
	old := *q
	n := len(old)
	x := old[n-1]
	old[n-1] = nil
	*q = old[:n-1]
	return x
}

// tick records an arriving event time t in the tenant's recent samples and
// moves the robust front to their median when that is later.
func (ts *tenantStats) tick(t int64) {
	if len(ts.Recent) < clockSamples {
		ts.Recent = append(ts.Recent, t)
	} else {
		ts.Recent[ts.RecentAt%clockSamples] = t
	}
	ts.RecentAt = (ts.RecentAt + 1) % clockSamples
	if t > ts.MaxT {
		ts.MaxT = t
	}
	var buf [clockSamples]int64
	s := buf[:len(ts.Recent)]
	copy(s, ts.Recent)
	slices.Sort(s)
	if m := s[(len(s)-1)/2]; m > ts.Front {
		ts.Front = m
	}
}

// degrade records that the tenant's detection was degraded at event time t.
func (ts *tenantStats) degrade(t int64, why string) {
	ts.DegradedAt = max(ts.DegradedAt, t)
	ts.DegradedWhy = why
}

// degradedNote is the note findings of the tenant carry at time t, or "".
func (ts *tenantStats) degradedNote(t int64) string {
	if ts == nil || ts.DegradedAt == 0 || t > ts.DegradedAt+degradedFor.Milliseconds() {
		return ""
	}
	var parts []string
	if ts.Late > 0 {
		parts = append(parts, strconv.FormatUint(ts.Late, 10)+" events arrived after later events of the tenant had been evaluated (beyond the allowed lateness) and were evaluated late")
	}
	if ts.Evicted > 0 {
		parts = append(parts, strconv.FormatUint(ts.Evicted, 10)+" detection states were evicted at the tenant's state cap")
	}
	if ts.Forced > 0 {
		parts = append(parts, strconv.FormatUint(ts.Forced, 10)+" events were evaluated early because the tenant's reorder buffer was full")
	}
	if len(parts) == 0 {
		return ts.DegradedWhy
	}
	s := "detection degraded for this tenant in the last 24h: "
	for i, p := range parts {
		if i > 0 {
			s += "; "
		}
		s += p
	}
	return s
}

// accept takes one arriving record: it advances the tenant's clock, gives a
// login its risk score against the state evaluated so far, and either holds
// the event for ordered evaluation or, when it is late, evaluates it now.
func (e *Engine) accept(rec *audit.Record) {
	ev := &rec.Event
	t := ev.Time.UnixMilli()
	ts := e.stats(ev.Tenant)
	ts.tick(t)
	if ts.Done != 0 && t <= ts.Done {
		// Its tenant has already evaluated later events: evaluate it now,
		// in its own time, and say so.
		ts.Late++
		ts.degrade(ts.Done, "late events")
		e.m.late.Inc()
		e.processEvent(ev)
		return
	}
	if ev.Action == audit.ActionLoginSuccess {
		r := e.scoreNow(ev)
		ev.Risk = &r
	}
	q := e.held[ev.Tenant]
	if q == nil {
		q = &heldQueue{}
		e.held[ev.Tenant] = q
	}
	h := &heldEvent{ev: *ev, t: t, seq: rec.Seq}
	h.ev.Risk = nil
	heap.Push(q, h)
	e.nHeld++
	if q.Len() > e.opts.MaxHeld {
		// A flood within the lateness: evaluate the oldest now rather than
		// hold without bound.
		ts.Forced++
		ts.degrade(t, "reorder buffer full")
		e.releaseOne(ev.Tenant, q, ts)
	}
}

// scoreNow scores a login against the state evaluated so far without
// changing it: the risk stored with the event.
func (e *Engine) scoreNow(ev *audit.Event) audit.Risk {
	tc := e.tenantConf(ev.Tenant)
	in := &e.in
	*in = input{ev: ev, t: ev.Time.UnixMilli(), e: e, tstats: e.tstats[ev.Tenant], allowlisted: tc.allows(ev), flags: in.flags[:0], fbuf: in.fbuf}
	var prof *Profile
	if ev.Actor.ID != "" {
		e.kbuf = actorKey(e.kbuf[:0], ev)
		prof = e.loadProfile(e.profiles[string(e.kbuf)], e.kbuf, &e.prof)
	}
	return e.score(ev, prof, in, tc)
}

// releaseTo evaluates the held events of the given tenants, each those
// before its limit (ms), merged into one event-time order across the tenants.
// A tenant's own findings depend only on the order of its own events; the
// merge keeps installation-wide rules (which see every tenant) in time
// order too.
func (e *Engine) releaseTo(tenants []string, limit func(tenant string, ts *tenantStats) int64) {
	hs := make(tenantHeads, 0, len(tenants))
	for _, tn := range tenants {
		q := e.held[tn]
		if q == nil || q.Len() == 0 {
			continue
		}
		ts := e.stats(tn)
		hs = append(hs, tenantHead{tenant: tn, q: q, ts: ts, upto: limit(tn, ts)})
	}
	heap.Init(&hs)
	for n := 1; hs.Len() > 0; n++ {
		h := &hs[0]
		if (*h.q)[0].t >= h.upto {
			heap.Pop(&hs)
			continue
		}
		e.releaseOne(h.tenant, h.q, h.ts)
		if n%yieldEvery == 0 {
			e.letReadersIn()
		}
		if h.q.Len() == 0 {
			delete(e.held, h.tenant)
			heap.Pop(&hs)
			continue
		}
		heap.Fix(&hs, 0)
	}
}

// yieldEvery is how many records a batch's intake, or evaluations a
// release, makes before it lets the readers waiting for the engine lock
// (risk scores) in.
const yieldEvery = 64

// letReadersIn lets the readers waiting for the engine lock in between two
// steps of a batch. The caller holds wmu as well, so no other change can
// slip in but a tenant's new tuning, which applies from the next event on.
func (e *Engine) letReadersIn() {
	e.mu.Unlock()
	e.mu.Lock()
}

// tenantHead is one tenant's reorder buffer in the release merge.
type tenantHead struct {
	tenant string
	q      *heldQueue
	ts     *tenantStats
	upto   int64
}

// tenantHeads orders tenants by their oldest held event: those whose oldest
// event may not be released yet come last and are popped.
type tenantHeads []tenantHead

func (hs tenantHeads) Len() int { return len(hs) }
func (hs tenantHeads) Less(i, j int) bool {
	a, b := (*hs[i].q)[0], (*hs[j].q)[0]
	ra, rb := a.t < hs[i].upto, b.t < hs[j].upto
	if ra != rb {
		return ra
	}
	if a.t != b.t {
		return a.t < b.t
	}
	return hs[i].tenant < hs[j].tenant
}
func (hs tenantHeads) Swap(i, j int) { hs[i], hs[j] = hs[j], hs[i] }
func (hs *tenantHeads) Push(x any)   { *hs = append(*hs, x.(tenantHead)) }
func (hs *tenantHeads) Pop() any {
	old := *hs
	x := old[len(old)-1]
	*hs = old[:len(old)-1]
	return x
}

// releaseOne evaluates the oldest held event of a tenant.
func (e *Engine) releaseOne(tenant string, q *heldQueue, ts *tenantStats) {
	h := heap.Pop(q).(*heldEvent)
	e.nHeld--
	switch h.batch {
	case 0:
	case legacyBatch:
		e.deadHeld[heldKey(tenant, h.seq, h.ev.ID)] = true
	default:
		if n := e.heldRows[h.batch] - 1; n > 0 {
			e.heldRows[h.batch] = n
		} else {
			delete(e.heldRows, h.batch)
			e.deadRows[h.batch] = true
		}
	}
	// Releases of a tenant come in (time, id, seq) order, and a new event
	// is held only when it is later than Done: so the last released event
	// is below every event still held, and a restore knows by it which
	// events of a persisted row were evaluated already.
	if h.t >= ts.Done {
		ts.Done, ts.DoneID, ts.DoneSeq = h.t, h.ev.ID, h.seq
	}
	e.maxT = max(e.maxT, ts.Done)
	e.processEvent(&h.ev)
}

// AllowedLateness is how long the engine holds a tenant's newest events to
// evaluate them in event-time order (Options.AllowedLateness, its default
// applied): the least a live finding waits for.
func (e *Engine) AllowedLateness() time.Duration { return e.opts.AllowedLateness }

// NextDue returns when, by the wall clock Advance is given, the oldest
// held event becomes due: its time plus AllowedLateness, plus the
// millisecond Advance's strict comparison needs. ok is false when nothing
// is held. A consumer that has caught up with the stream waits until then
// rather than polling, so a quiet tenant's last findings come as soon as
// the lateness allows.
func (e *Engine) NextDue() (due time.Time, ok bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	first := int64(math.MaxInt64)
	for _, q := range e.held {
		if q.Len() > 0 {
			first = min(first, (*q)[0].t)
		}
	}
	if first == math.MaxInt64 {
		return time.Time{}, false
	}
	return time.UnixMilli(first + e.opts.AllowedLateness.Milliseconds() + 1), true
}

// Advance evaluates every held event whose time is more than
// AllowedLateness behind now (the wall clock of a consumer that has caught
// up with the stream), so a tenant that went quiet still gets its findings.
// It returns the findings opened or changed, like Process. Flush is Advance
// to the end of time.
func (e *Engine) Advance(ctx context.Context, now time.Time) ([]audit.Finding, error) {
	upto := int64(math.MaxInt64)
	if !now.IsZero() {
		upto = now.UnixMilli() - e.opts.AllowedLateness.Milliseconds()
	}
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.out, e.outRecv = e.out[:0], e.outRecv[:0]
	clear(e.outIdx)
	tenants := make([]string, 0, len(e.held))
	for t := range e.held {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	e.releaseTo(tenants, func(string, *tenantStats) int64 { return upto })
	return e.output(), nil
}

// Flush evaluates every held event: the end of a replay, a fixture or a
// backtest.
func (e *Engine) Flush(ctx context.Context) ([]audit.Finding, error) {
	return e.Advance(ctx, time.Time{})
}

// Held returns how many events wait in reorder buffers.
func (e *Engine) Held() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.nHeld
}

// heldKey is the StateStore key of a held event persisted in a row of its
// own (without the "h/" prefix), as versions before batches wrote it.
func heldKey(tenant string, seq uint64, id string) string {
	return fmt.Sprintf("%s|%020d|%s", tenant, seq, id)
}

// Held events are persisted in rows of up to heldRowEvents events each
// (hb/<row id>), the events a checkpoint found not yet persisted: a row
// write per checkpoint and a row delete once all of its events have been
// released, instead of a write and a delete per event. Which of a row's
// events were released already is told on restore by their tenant's
// release cursor (tenantStats.Done, DoneID, DoneSeq), persisted with it.
const heldRowEvents = 256

// heldCodec compresses the rows of held events. In live traffic every
// event is held for the allowed lateness, so every event is written here
// once: as JSON about 600 bytes, and the meta store's largest part while
// the pipeline keeps up (two minutes of traffic). The events of a row
// share most of their names and values, so zstd takes them to a fraction.
var heldCodec = sync.OnceValues(func() (*zstd.Encoder, *zstd.Decoder) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(false))
	if err != nil {
		panic(err) // only invalid options fail
	}
	// A row holds at most heldRowEvents events of at most 64 KiB each.
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(heldRowEvents*(64<<10)))
	if err != nil {
		panic(err)
	}
	return enc, dec
})

// zstdMagic starts every zstd frame; a row of held events written before
// they were compressed starts with '[' instead.
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// heldRowKey is the StateStore key of a row of held events.
func heldRowKey(id uint64) string { return fmt.Sprintf("hb/%020d", id) }

// heldEntry is one event in a persisted row of held events.
type heldEntry struct {
	Seq   uint64       `json:"seq"`
	Event *audit.Event `json:"event"`
}

// heldRow is a row of held events a checkpoint is writing.
type heldRow struct {
	id     uint64
	events []*heldEvent
}

// saveHeld adds a row for the held events not yet persisted to puts and
// the rows whose events have all been released to dels. The new rows take
// effect in heldSaved, after the checkpoint's write succeeded.
func (e *Engine) saveHeld(puts map[string][]byte, dels []string) ([]string, error) {
	e.newRows = e.newRows[:0]
	tenants := make([]string, 0, len(e.held))
	for t := range e.held {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	var cur []*heldEvent
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		e.nextRow++
		entries := make([]heldEntry, len(cur))
		for i, h := range cur {
			entries[i] = heldEntry{Seq: h.seq, Event: &h.ev}
		}
		b, err := json.Marshal(entries)
		if err != nil {
			return fmt.Errorf("encode held events: %w", err)
		}
		enc, _ := heldCodec()
		puts[heldRowKey(e.nextRow)] = enc.EncodeAll(b, make([]byte, 0, len(b)/4))
		e.newRows = append(e.newRows, heldRow{id: e.nextRow, events: cur})
		cur = nil
		return nil
	}
	for _, tenant := range tenants {
		for _, h := range *e.held[tenant] {
			if h.batch != 0 {
				continue
			}
			cur = append(cur, h)
			if len(cur) == heldRowEvents {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	for k := range e.deadHeld {
		dels = append(dels, "h/"+k)
	}
	for id := range e.deadRows {
		dels = append(dels, heldRowKey(id))
	}
	return dels, nil
}

// heldSaved records the rows a successful checkpoint wrote and forgets the
// ones it deleted.
func (e *Engine) heldSaved() {
	for _, r := range e.newRows {
		for _, h := range r.events {
			h.batch = r.id
		}
		e.heldRows[r.id] = len(r.events)
	}
	e.newRows = e.newRows[:0]
	clear(e.deadHeld)
	clear(e.deadRows)
}

// loadHeld restores one held event persisted in a row of its own.
func (e *Engine) loadHeld(key string, value []byte) error {
	var ev audit.Event
	if err := json.Unmarshal(value, &ev); err != nil {
		return fmt.Errorf("decode held event %q: %w", key, err)
	}
	// key is tenant|seq|id; the tenant may hold '|', the seq is 20 digits.
	var seq uint64
	if i := len(key) - len(ev.ID) - 22; i >= 0 && i+21 <= len(key) {
		seq, _ = strconv.ParseUint(key[i+1:i+21], 10, 64)
	}
	e.pushHeld(&heldEvent{ev: ev, t: ev.Time.UnixMilli(), seq: seq, batch: legacyBatch})
	return nil
}

// loadHeldRow decodes one persisted row of held events (hb/<id>); its
// events are restored by restoreHeldRows once the tenants' release cursors
// are loaded.
func (e *Engine) loadHeldRow(key string, value []byte, rows map[uint64][]heldEntry) error {
	id, err := strconv.ParseUint(strings.TrimPrefix(key, "hb/"), 10, 64)
	if err != nil || id == 0 || id == legacyBatch {
		return fmt.Errorf("decode held events %q: not a row id", key)
	}
	if bytes.HasPrefix(value, zstdMagic) {
		_, dec := heldCodec()
		if value, err = dec.DecodeAll(value, nil); err != nil {
			return fmt.Errorf("decode held events %q: %w", key, err)
		}
	}
	var entries []heldEntry
	if err := json.Unmarshal(value, &entries); err != nil {
		return fmt.Errorf("decode held events %q: %w", key, err)
	}
	rows[id] = entries
	e.nextRow = max(e.nextRow, id)
	return nil
}

// restoreHeldRows holds again the events of the persisted rows that their
// tenant had not released at the checkpoint; a row with none left is
// deleted by the next checkpoint.
func (e *Engine) restoreHeldRows(rows map[uint64][]heldEntry) {
	for id, entries := range rows {
		live := 0
		for _, en := range entries {
			if en.Event == nil {
				continue
			}
			h := &heldEvent{ev: *en.Event, t: en.Event.Time.UnixMilli(), seq: en.Seq, batch: id}
			if ts := e.tstats[h.ev.Tenant]; ts != nil && !ts.after(h) {
				continue // released before the checkpoint
			}
			e.pushHeld(h)
			live++
		}
		if live > 0 {
			e.heldRows[id] = live
		} else {
			e.deadRows[id] = true
		}
	}
}

// after reports whether h comes after the tenant's last released
// event in release order (time, id, seq): whether it was still held.
func (ts *tenantStats) after(h *heldEvent) bool {
	if h.t != ts.Done {
		return h.t > ts.Done
	}
	if h.ev.ID != ts.DoneID {
		return h.ev.ID > ts.DoneID
	}
	return h.seq > ts.DoneSeq
}

// pushHeld adds a restored event to its tenant's reorder buffer.
func (e *Engine) pushHeld(h *heldEvent) {
	q := e.held[h.ev.Tenant]
	if q == nil {
		q = &heldQueue{}
		e.held[h.ev.Tenant] = q
	}
	heap.Push(q, h)
	e.nHeld++
}
