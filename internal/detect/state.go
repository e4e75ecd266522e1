package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// Persisted layout, all in namespace "detect" so one SaveState is atomic:
//
//	m/meta                 position, tenant statistics, flags (JSON)
//	k/<tenant>|<rule>|<group>  one keyed state (JSON)
//	p/<tenant>|<actor>     one actor profile (binary, see Profile.encode)
//	h/<tenant>|<seq>|<id>  one held event (JSON; read only, older versions wrote it)
//	hb/<row id>            up to 256 events held in reorder buffers (JSON list)
//	i/<incident id>        one open incident and its link keys (JSON)
const metaKey = "m/meta"

// meta is the engine-wide persisted state.
type meta struct {
	Seq     uint64                  `json:"seq"`
	MaxT    int64                   `json:"max_t"`
	SweptAt int64                   `json:"swept_at"`
	Tenants map[string]*tenantStats `json:"tenants"`
	Flags   map[string]int64        `json:"flags"`
}

// load restores state saved by Checkpoint.
func (e *Engine) load(ctx context.Context) error {
	rows := map[uint64][]heldEntry{}
	err := e.opts.StateStore.ScanState(ctx, e.ns, func(key string, value []byte) error {
		switch {
		case key == metaKey:
			var m meta
			if err := json.Unmarshal(value, &m); err != nil {
				return fmt.Errorf("decode detection meta: %w", err)
			}
			e.lastSeq, e.maxT, e.sweptAt = m.Seq, m.MaxT, m.SweptAt
			if m.Tenants != nil {
				e.tstats = m.Tenants
			}
			if m.Flags != nil {
				e.flags = m.Flags
			}
		case strings.HasPrefix(key, "k/"):
			var ks keyState
			if err := decodeKeyState(value, &ks); err != nil {
				return fmt.Errorf("decode detection state %q: %w", key, err)
			}
			// Tenant ids and rule ids have no '|': the group is the rest.
			parts := strings.SplitN(key[2:], "|", 3)
			if len(parts) != 3 || e.byID[parts[1]] == nil {
				e.deadKeys[key[2:]] = true // the rule is gone
				return nil
			}
			ks.Tenant, ks.Rule, ks.Group = parts[0], parts[1], parts[2]
			ks.rebuild()
			ks.sk, ks.live = key[2:], true
			e.keys[ks.sk] = &ks
		case strings.HasPrefix(key, "h/"):
			return e.loadHeld(key[2:], value)
		case strings.HasPrefix(key, "hb/"):
			return e.loadHeldRow(key, value, rows)
		case strings.HasPrefix(key, "i/"):
			return e.loadIncident(value)
		case strings.HasPrefix(key, "p/"):
			if len(e.profiles) < e.opts.MaxProfiles {
				e.profiles[key[2:]] = &profEntry{data: value}
			} else {
				e.profilesOut = true
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore detection state: %w", err)
	}
	e.restoreHeldRows(rows)
	return nil
}

// Checkpoint persists what changed since the last checkpoint (keyed states,
// profiles) and the position, atomically. After it, a new engine on the
// same StateStore continues exactly where this one stopped.
func (e *Engine) Checkpoint(ctx context.Context) error {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if e.opts.StateStore == nil {
		return nil
	}
	e.mu.Lock()
	puts, dels, err := e.prepareCheckpoint()
	e.mu.Unlock()
	if err != nil {
		return err
	}
	// The store write runs without the engine lock: wmu keeps every other
	// change out meanwhile, and risk scores only read.
	if err := e.opts.StateStore.SaveState(ctx, e.ns, puts, dels); err != nil {
		return fmt.Errorf("save detection state: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.checkpointSaved()
	return nil
}

// PrepareCheckpoint captures what changed since the last checkpoint and
// returns a save that makes it durable later, without the engine's locks:
// it implements audit.StagedCheckpointer, so the pipeline can store the
// state from its store stage, after the events it covers, while detection
// goes on. Saves must run in the order they were prepared, each retried
// until it succeeds: a later save holds only what changed after the one
// before it. Until every prepared save has succeeded the engine keeps all
// profiles in memory, so it never reads one back from the store older than
// what it has evaluated.
func (e *Engine) PrepareCheckpoint(ctx context.Context) (func(context.Context) error, error) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if e.opts.StateStore == nil {
		return func(context.Context) error { return nil }, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.unsaved.Load() == 0 {
		// Every profile not dirty is durable: those past the cap can go.
		e.evictProfiles()
	}
	puts, dels, err := e.prepareCheckpoint()
	if err != nil {
		return nil, err
	}
	// A profile's bytes are rewritten in place by later events: the save
	// must carry the bytes as they are now.
	for k, v := range puts {
		if strings.HasPrefix(k, "p/") {
			puts[k] = bytes.Clone(v)
		}
	}
	e.markSaved()
	e.unsaved.Add(1)
	var once sync.Once
	return func(ctx context.Context) error {
		if err := e.opts.StateStore.SaveState(ctx, e.ns, puts, dels); err != nil {
			return fmt.Errorf("save detection state: %w", err)
		}
		once.Do(func() { e.unsaved.Add(-1) })
		return nil
	}, nil
}

// checkpoint is Checkpoint for a caller holding the write lock (Rebuild).
func (e *Engine) checkpoint(ctx context.Context) error {
	if e.opts.StateStore == nil {
		return nil
	}
	puts, dels, err := e.prepareCheckpoint()
	if err != nil {
		return err
	}
	if err := e.opts.StateStore.SaveState(ctx, e.ns, puts, dels); err != nil {
		return fmt.Errorf("save detection state: %w", err)
	}
	e.checkpointSaved()
	return nil
}

// prepareCheckpoint collects what changed since the last checkpoint.
func (e *Engine) prepareCheckpoint() (map[string][]byte, []string, error) {
	puts := make(map[string][]byte, len(e.dirtyKeys)+len(e.dirtyProfs)+1)
	var dels []string
	for _, ks := range e.dirtyKeys {
		if !ks.live {
			continue // expired since
		}
		b, err := ks.encode(make([]byte, 0, 16+40*len(ks.Entries)))
		if err != nil {
			return nil, nil, fmt.Errorf("encode detection state %q: %w", ks.sk, err)
		}
		puts["k/"+ks.sk] = b
	}
	for k := range e.deadKeys {
		dels = append(dels, "k/"+k)
	}
	for _, k := range e.dirtyProfs {
		if pe := e.profiles[k]; pe != nil {
			puts["p/"+k] = pe.data
		}
	}
	for k := range e.deadProfs {
		dels = append(dels, "p/"+k)
	}
	dels, err := e.saveHeld(puts, dels)
	if err != nil {
		return nil, nil, err
	}
	if dels, err = e.saveIncidents(puts, dels); err != nil {
		return nil, nil, err
	}
	sort.Strings(dels)
	m, err := json.Marshal(meta{Seq: e.lastSeq, MaxT: e.maxT, SweptAt: e.sweptAt, Tenants: e.tstats, Flags: e.flags})
	if err != nil {
		return nil, nil, fmt.Errorf("encode detection meta: %w", err)
	}
	puts[metaKey] = m
	return puts, dels, nil
}

// checkpointSaved marks what prepareCheckpoint collected as persisted and
// evicts profiles beyond the cap, unless a staged save is still pending.
func (e *Engine) checkpointSaved() {
	e.markSaved()
	if e.unsaved.Load() == 0 {
		e.evictProfiles()
	}
}

// markSaved clears the changes prepareCheckpoint collected.
func (e *Engine) markSaved() {
	e.heldSaved()
	e.incidentsSaved()
	for _, ks := range e.dirtyKeys {
		ks.dirty = false
	}
	e.dirtyKeys = e.dirtyKeys[:0]
	for _, k := range e.dirtyProfs {
		if pe := e.profiles[k]; pe != nil {
			pe.dirty = false
		}
	}
	e.dirtyProfs = e.dirtyProfs[:0]
	clear(e.deadKeys)
	clear(e.deadProfs)
}

// evictProfiles drops the least recently used persisted profiles when the
// in-memory cap is exceeded; they are reloaded from the store on demand.
func (e *Engine) evictProfiles() {
	if len(e.profiles) <= e.opts.MaxProfiles || e.opts.StateStore == nil {
		return
	}
	type kv struct {
		k    string
		last int64
	}
	all := make([]kv, 0, len(e.profiles))
	for k, pe := range e.profiles {
		if !pe.dirty {
			all = append(all, kv{k, pe.last})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].last != all[j].last {
			return all[i].last < all[j].last
		}
		return all[i].k < all[j].k
	})
	target := e.opts.MaxProfiles * 9 / 10
	for _, x := range all {
		if len(e.profiles) <= target {
			break
		}
		delete(e.profiles, x.k)
		e.profilesOut = true
	}
}

// sweep forgets every keyed state and flag that no future accepted event
// can touch, walking all keys. It runs only when MaxKeys is reached;
// ordinary expiry goes through the queue (expire). It never changes
// results, only memory.
func (e *Engine) sweep() {
	e.sweptAt = e.maxT
	for _, ks := range e.keys {
		if e.expiresAt(ks) <= e.tenantNow(ks.Tenant) {
			e.drop(ks)
		}
	}
	e.expireFlags()
}

// tenantNow is the newest event time a tenant has evaluated ("" is the
// installation: the newest of all tenants). Its keys and flags expire
// against it, so another tenant's traffic never changes them.
func (e *Engine) tenantNow(tenant string) int64 {
	if tenant != "" {
		if ts := e.tstats[tenant]; ts != nil {
			return ts.Done
		}
		return 0
	}
	return e.maxT
}

// expiresAt is the earliest tenant time (ms) at which no accepted event
// can reach the key any more: past its window (and, for baselines, a week
// of idleness) and its open finding's suppression, plus the allowed
// lateness. A key of a removed rule expires at once.
func (e *Engine) expiresAt(ks *keyState) int64 {
	r := e.byID[ks.Rule]
	if r == nil {
		return math.MinInt64
	}
	w := max(durParam(e.tenantConf(ks.Tenant).paramsFor(r), "window", r.Window), r.Window)
	t := ks.Newest + w.Milliseconds()
	if r.Baseline != nil {
		t = max(t, ks.Newest+baselineIdle.Milliseconds())
	}
	if ks.Finding != nil {
		t = max(t, ks.Until)
	}
	return t + e.opts.AllowedLateness.Milliseconds() + 1
}

// schedule queues ks to be looked at once event time passes at (ms).
func (e *Engine) schedule(ks *keyState, at int64) {
	b := at/time.Minute.Milliseconds() + 1
	if b <= e.qCursor {
		b = e.qCursor + 1
	}
	ks.qAt = b
	e.queue[b] = append(e.queue[b], ks)
}

// drop forgets a key and keeps its memory for reuse.
func (e *Engine) drop(ks *keyState) {
	delete(e.keys, ks.sk)
	if e.tkeys[ks.Tenant]--; e.tkeys[ks.Tenant] <= 0 {
		delete(e.tkeys, ks.Tenant)
	}
	ks.live = false
	if e.opts.StateStore != nil {
		e.deadKeys[ks.sk] = true
	}
	if len(e.free) < maxFreeKeys {
		ks.reset()
		e.free = append(e.free, ks)
	}
}

// maxFreeKeys bounds the pool of dropped keyed states kept for reuse:
// most keys (one per address or session) live minutes, and reusing them
// spares the allocator and the garbage collector.
const maxFreeKeys = 4096

// newKeyState returns a clean keyed state, reused when one is pooled.
func (e *Engine) newKeyState() *keyState {
	if n := len(e.free); n > 0 {
		ks := e.free[n-1]
		e.free[n-1] = nil
		e.free = e.free[:n-1]
		return ks
	}
	return &keyState{}
}

// expire processes the queue up to the newest event's minute: each queued
// key is forgotten when expired, else queued again at its new expiry. The
// cost is proportional to the keys that come due, not to all keys. Flags
// are cleaned once a minute of event time.
func (e *Engine) expire() {
	const minute = int64(time.Minute / time.Millisecond)
	cur := e.maxT / minute
	if cur <= e.qCursor {
		return
	}
	var due []int64
	if cur-e.qCursor > int64(len(e.queue)) {
		// A jump in event time: visit only the buckets that exist.
		for b := range e.queue {
			if b <= cur {
				due = append(due, b)
			}
		}
		slices.Sort(due)
	} else {
		for b := e.qCursor + 1; b <= cur; b++ {
			if _, ok := e.queue[b]; ok {
				due = append(due, b)
			}
		}
	}
	e.qCursor = cur
	for _, b := range due {
		list := e.queue[b]
		delete(e.queue, b)
		for _, ks := range list {
			if ks.qAt != b || !ks.live {
				continue // queued again later, or already gone
			}
			now := e.tenantNow(ks.Tenant)
			at := e.expiresAt(ks)
			switch {
			case at <= now:
				e.drop(ks)
			case at/minute >= cur:
				e.schedule(ks, at)
			default:
				// Its tenant's clock lags the installation's: look again
				// in an hour rather than every minute.
				e.schedule(ks, (cur+60)*minute)
			}
		}
	}
	if e.maxT-e.sweptAt >= minute {
		e.sweptAt = e.maxT
		e.expireFlags()
		e.expireIncidents()
	}
	if e.keysPeak > 1<<16 && len(e.keys) < e.keysPeak/4 {
		// The map's buckets stay at their peak size after a burst of keys
		// (a stuffing wave, a busy day's sessions) expired: copy it.
		m := make(map[string]*keyState, len(e.keys))
		for k, ks := range e.keys {
			m[k] = ks
		}
		e.keys, e.keysPeak = m, len(m)
	}
}

// expireFlags forgets flags past their expiry and the lateness, each in its
// own tenant's time (installation-wide flags in the installation's).
func (e *Engine) expireFlags() {
	late := e.opts.AllowedLateness.Milliseconds()
	for k, exp := range e.flags {
		tenant, _, _ := strings.Cut(k, "|")
		if exp+late < e.tenantNow(tenant) {
			delete(e.flags, k)
		}
	}
}

// admitKey makes room for one new keyed state of tenant and reports
// whether it may be created. Expired keys go first (a full sweep, at most
// once a minute of event time); then, at the tenant's cap, the tenant's
// own least recently used keys; at the installation's cap, those of the
// tenant holding the most keys. Eviction takes a tenth of the cap at once,
// so its cost is amortised over the keys that follow.
func (e *Engine) admitKey(tenant string, t int64) bool {
	full := func() bool {
		return e.tkeys[tenant] >= e.opts.MaxTenantKeys || len(e.keys) >= e.opts.MaxKeys
	}
	if !full() {
		return true
	}
	if e.maxT-e.capSweptAt >= time.Minute.Milliseconds() {
		e.capSweptAt = e.maxT
		e.sweep()
	}
	if e.tkeys[tenant] >= e.opts.MaxTenantKeys {
		e.evictLRU(tenant, max(e.opts.MaxTenantKeys/10, 1), t)
	}
	if len(e.keys) >= e.opts.MaxKeys {
		big, n := tenant, -1
		for tn, c := range e.tkeys {
			if c > n || c == n && tn < big {
				big, n = tn, c
			}
		}
		e.evictLRU(big, max(e.opts.MaxKeys/10, 1), t)
	}
	if full() {
		e.m.keysDropped.Inc()
		return false
	}
	return true
}

// evictLRU drops the n least recently used keys of tenant (by newest event
// time, then key, so the choice is a function of the tenant's own events),
// counting them and marking the tenant's detection degraded.
func (e *Engine) evictLRU(tenant string, n int, t int64) {
	var mine []*keyState
	for _, ks := range e.keys {
		if ks.Tenant == tenant {
			mine = append(mine, ks)
		}
	}
	sort.Slice(mine, func(i, j int) bool {
		if mine[i].Newest != mine[j].Newest {
			return mine[i].Newest < mine[j].Newest
		}
		return mine[i].sk < mine[j].sk
	})
	n = min(n, len(mine))
	for _, ks := range mine[:n] {
		e.drop(ks)
	}
	e.m.keysEvicted.Add(float64(n))
	if tenant != "" && n > 0 {
		ts := e.stats(tenant)
		ts.Evicted += uint64(n)
		ts.degrade(t, "state cap")
	}
	e.log.Warn("detection state cap reached; least recently used keys evicted", "tenant_id", tenant, "evicted", n)
}

// Rebuild recomputes every actor profile and the tenants' statistics from
// stored events. next yields events in time order and returns io.EOF (or a
// nil event) at the end. Windows, findings and the stream position are kept.
// With a StateStore the result is persisted before Rebuild returns.
func (e *Engine) Rebuild(ctx context.Context, next func() (*audit.Event, error)) error {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	for k := range e.profiles {
		e.deadProfs[k] = true
	}
	if e.opts.StateStore != nil {
		// Profiles evicted from memory are in the store only.
		err := e.opts.StateStore.ScanState(ctx, e.ns, func(key string, _ []byte) error {
			if k, ok := strings.CutPrefix(key, "p/"); ok {
				e.deadProfs[k] = true
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("list profiles: %w", err)
		}
	}
	e.profiles = map[string]*profEntry{}
	e.dirtyProfs = e.dirtyProfs[:0]
	for _, ts := range e.tstats {
		ts.Logins, ts.WithDevice, ts.Hours, ts.HourTotal = 0, 0, [168]uint16{}, 0
	}
	n := 0
	for {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		ev, err := next()
		if errors.Is(err, io.EOF) || (err == nil && ev == nil) {
			break
		}
		if err != nil {
			return fmt.Errorf("rebuild profiles after %d events: %w", n, err)
		}
		n++
		var p *Profile
		var pe *profEntry
		if ev.Actor.ID != "" {
			e.kbuf = actorKey(e.kbuf[:0], ev)
			pe = e.profiles[string(e.kbuf)]
			p = e.loadProfile(pe, e.kbuf, &e.prof)
		}
		ts := e.stats(ev.Tenant)
		if t := ev.Time.UnixMilli(); t > ts.MaxT {
			ts.MaxT = t
		}
		e.observe(ev, pe, p, ts, e.tenantConf(ev.Tenant))
	}
	e.log.Info("profiles rebuilt", "events", n, "profiles", len(e.profiles))
	return e.checkpoint(ctx)
}

// ForgetProfile drops the profile of one actor of tenant (its known
// countries, cities, networks, devices and hours), in memory and in the
// state store, and reports whether there was one. It is how an erasure
// reaches detection: the actor's next login is judged as a first login.
// Unlike everything else the engine learns, this is an operator action,
// not driven by events, so replaying the stream after it may learn the
// profile again from events the stream still holds.
//
// It runs between batches and checkpoints (wmu), so no evaluation sees
// the profile half gone; the store copy is deleted first, so a risk score
// never reads it back after the memory copy is gone.
func (e *Engine) ForgetProfile(ctx context.Context, tenant, actor string) (bool, error) {
	if tenant == "" || actor == "" {
		return false, audit.Errorf(audit.EINVALID, "forget a profile: tenant and actor are required")
	}
	e.wmu.Lock()
	defer e.wmu.Unlock()
	key := tenant + "|" + actor
	e.mu.RLock()
	_, found := e.profiles[key]
	e.mu.RUnlock()
	if e.opts.StateStore != nil {
		// Evicted profiles are in the store only.
		data, err := e.opts.StateStore.GetState(ctx, e.ns, "p/"+key)
		if err != nil && audit.ErrorCode(err) != audit.ENOTFOUND {
			return false, fmt.Errorf("read the profile of %s: %w", actor, err)
		}
		found = found || data != nil
		if err := e.opts.StateStore.SaveState(ctx, e.ns, nil, []string{"p/" + key}); err != nil {
			return false, fmt.Errorf("delete the profile of %s: %w", actor, err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if pe := e.profiles[key]; pe != nil {
		// A dirty entry stays listed in dirtyProfs; prepareCheckpoint
		// skips keys without an entry.
		delete(e.profiles, key)
	}
	delete(e.deadProfs, key)
	return found, nil
}
