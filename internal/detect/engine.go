package detect

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect/rulelang"
)

// Defaults of Options.
const (
	DefaultMaxKeys         = 1_000_000
	DefaultMaxTenantKeys   = 250_000
	DefaultAllowedLateness = 2 * time.Minute
	DefaultMaxWindowEvents = 4096
	DefaultMaxProfiles     = 2_000_000
)

// DefaultRelayASNs are networks whose egress location says nothing about the
// user: Cloudflare (WARP), Akamai/Apple iCloud Private Relay, Fastly relay,
// Starlink satellite. Travel and location facts from them are ignored.
var DefaultRelayASNs = []uint32{13335, 36183, 54113, 14593}

// Options configures an Engine.
type Options struct {
	// Rules are the rules to run, usually rules.Builtin() plus operator
	// rules. Ids must be unique.
	Rules []*rulelang.Rule
	// Egress tunes the learning of shared egresses (egress.go).
	Egress EgressOptions
	// RulesDir, when set, adds every rule file of the directory to Rules
	// (operator rules); an id that repeats a built-in replaces it.
	RulesDir string
	// StateStore persists state at Checkpoint and restores it in New. Nil
	// keeps state in memory only.
	StateStore audit.StateStore
	// Logger receives lifecycle and degradation messages; nil discards.
	Logger *slog.Logger
	// Registerer receives the engine's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// MaxKeys caps the keyed window/sequence/suppression states held in
	// all (DefaultMaxKeys). When full, expired keys are swept; if that is
	// not enough, the least recently used keys of the tenant holding the
	// most keys are evicted (vigil_detect_keys_evicted_total).
	MaxKeys int
	// MaxTenantKeys caps the keyed states of one tenant
	// (DefaultMaxTenantKeys, at most MaxKeys). A tenant at its cap has its
	// own least recently used keys (by event time, then key) evicted, never
	// another tenant's; its findings then carry a degradation note.
	MaxTenantKeys int
	// MaxHeld caps the events one tenant's reorder buffer holds
	// (DefaultMaxHeld); beyond it the oldest are evaluated at once and the
	// tenant's findings carry a degradation note.
	MaxHeld int
	// MaxWindowEvents caps the events one key's window holds
	// (DefaultMaxWindowEvents); the oldest are dropped beyond it.
	MaxWindowEvents int
	// MaxProfiles caps the actor profiles held in memory
	// (DefaultMaxProfiles). Beyond it, profiles already persisted are
	// evicted and reloaded from StateStore on demand.
	MaxProfiles int
	// AllowedLateness is how long events are held to be evaluated in
	// event-time order (DefaultAllowedLateness): an event is evaluated once
	// its tenant's robust front (see reorder.go) or, when the tenant is
	// quiet, the consumer's wall clock is this far past it. An event older
	// than one already evaluated is late: evaluated at once in its own
	// time, counted and noted on the tenant's findings.
	AllowedLateness time.Duration
	// RelayASNs are networks whose location is unreliable (nil:
	// DefaultRelayASNs).
	RelayASNs []uint32
	// Namespace is the engine's StateStore namespace (DefaultNamespace
	// when empty). Engines sharing one StateStore each need their own.
	Namespace string
	// Scope selects the rules evaluated (default ScopeAll). Every rule is
	// still known (Rules, tuning and its validation); only evaluation is
	// limited. An installation-wide rule that sets a flag is refused in
	// any other scope than ScopeAll: tenants' rules read flags, and an
	// engine of ScopeTenants could not see it.
	Scope Scope
}

// DefaultNamespace is the StateStore namespace of an engine whose
// Options.Namespace is empty.
const DefaultNamespace = "detect"

// Scope says which rules an engine evaluates. Partitioned detection runs
// one engine per partition of the tenants (ScopeTenants) and one over the
// whole stream for the installation-wide rules (ScopeInstallation); each
// evaluates the events it is given exactly as an engine of ScopeAll would,
// so together they find what one engine over everything finds.
type Scope int

const (
	// ScopeAll evaluates every rule (one engine for the installation).
	ScopeAll Scope = iota
	// ScopeTenants evaluates the rules grouped within a tenant, not the
	// installation-wide ones.
	ScopeTenants
	// ScopeInstallation evaluates only the installation-wide rules
	// (group_by: [installation]). It learns no profiles and scores no
	// logins (the tenants' engines do): the installation-wide rules it
	// runs may read neither, nor the tenants' flags (partitionable).
	ScopeInstallation
)

// String names the scope as configuration and logs do.
func (s Scope) String() string {
	switch s {
	case ScopeTenants:
		return "tenants"
	case ScopeInstallation:
		return "installation"
	}
	return "all"
}

// crule is a rule with engine bookkeeping.
type crule struct {
	*rulelang.Rule
	idx      int
	defaults map[string]any
	// usesMaxRisk is set when the condition or an escalation reads max_risk,
	// which costs a walk over the window.
	usesMaxRisk bool
	// usesMaxPer is set when the condition reads max_per_value.
	usesMaxPer bool
	// broad is set for tenant- and installation-wide keys, whose windows
	// mix an attack with everyday traffic.
	broad bool
	// installation is set for installation-wide rules (group_by:
	// [installation]).
	installation bool
}

// Engine is the streaming detection engine. It implements audit.Detector.
//
// Locking: Process, Advance, Checkpoint, Rebuild and TakeIncidents run one
// at a time (wmu) and change state under the write lock mu; Score takes the
// read lock. A long batch gives the lock up between evaluations (see
// releaseTo) and a checkpoint writes to the store without it, so the
// synchronous risk endpoint waits for at most a few evaluations, never for
// a whole batch or a disk write, and always sees the state between two
// events.
type Engine struct {
	wmu     sync.Mutex
	mu      sync.RWMutex
	opts    Options
	ns      string // StateStore namespace
	log     *slog.Logger
	rules   []*crule
	byID    map[string]*crule
	byAct   map[string][]*crule
	flagSet []string // names of flags any rule sets
	// bruteForce is the brute-force rule, whose per-account window the
	// risk score reads (recent_failures); nil without it.
	bruteForce *crule
	relay      map[uint32]bool
	risk       riskParams

	tenants  map[string]*tenantConf
	keys     map[string]*keyState
	profiles map[string]*profEntry
	// profilesOut is set once the store may hold profiles that memory
	// does not (evicted, or left out at restore beyond MaxProfiles): from
	// then on a profile missing from memory is looked up in the store.
	profilesOut bool
	// unsaved counts the staged checkpoints (PrepareCheckpoint) not yet
	// saved; while any is, no profile is evicted.
	unsaved atomic.Int32
	flags   map[string]int64 // flag key → expiry (ms)
	tstats  map[string]*tenantStats
	lastSeq uint64
	maxT    int64 // newest event time seen, ms
	sweptAt int64
	// queue holds keyed states by the minute (of event time) at which they
	// may expire; qCursor is the last minute processed. Neither is
	// persisted: expiry never changes results, only memory.
	queue   map[int64][]*keyState
	qCursor int64
	free    []*keyState // dropped states kept for reuse
	// tkeys counts the keyed states held per tenant ("" installation).
	tkeys map[string]int
	// held are the reorder buffers per tenant; nHeld their total.
	held     map[string]*heldQueue
	nHeld    int
	deadHeld map[string]bool // released held events persisted in rows of their own
	// heldRows counts, per persisted row of held events, those still held;
	// deadRows are the rows all of whose events were released; newRows the
	// rows the running checkpoint writes; nextRow the last row id taken.
	heldRows map[uint64]int
	deadRows map[uint64]bool
	newRows  []heldRow
	nextRow  uint64

	// Incidents (incident.go): open incidents by id, link key → incident
	// (tenant|key), finding → incident (tenant|finding), and the changes
	// not yet persisted or taken.
	incs        map[string]*incState
	incIdx      map[string]string
	findInc     map[string]string
	deadIncs    map[string]string // forgotten incident id → tenant
	dirtyIncs   []*incState
	incOut      map[string]bool
	incOutOrder []*incState
	waveFlags   []string // flags of wave rules (values: distinct)
	// capSweptAt is when the key cap last forced a full sweep.
	capSweptAt int64
	// keysPeak is the most keys held since the map was last rebuilt: Go
	// maps never shrink, so after a burst the map is copied (see expire).
	keysPeak int

	// Changes since the last checkpoint, tracked only with a StateStore.
	dirtyKeys  []*keyState
	deadKeys   map[string]bool
	dirtyProfs []string
	deadProfs  map[string]bool

	resolvers []resolver
	in        input  // scratch of processEvent
	kbuf      []byte // scratch for building map keys without allocating
	sbuf      []byte // scratch for state keys
	encBuf    []byte // scratch for encoding profiles

	out      []audit.Finding
	outIdx   map[string]int
	outRecv  []time.Time // Event.ReceivedAt of the evidence that last changed out[i]
	prof     Profile     // scratch
	scoreBuf Profile     // scratch of Score, guarded by profMu
	profMu   sync.Mutex
	m        *metrics
}

var _ audit.Detector = (*Engine)(nil)

// tenantStats are per-tenant facts: the tenant's clock (newest event
// time, recent samples, robust front, evaluated frontier), its
// degradations, device-id habit and the organisation's hour-of-week
// histogram (the prior for new actors).
type tenantStats struct {
	MaxT int64 `json:"max_t"`
	// Recent are the latest event times in arrival order (a ring; RecentAt
	// is the next slot) and Front their running median, never decreasing.
	Recent   []int64 `json:"recent,omitempty"`
	RecentAt int     `json:"recent_at,omitempty"`
	Front    int64   `json:"front,omitempty"`
	// Done is the newest event time evaluated: an arriving event older
	// than it is late. DoneID and DoneSeq are the id and stream sequence
	// of the last event released from the reorder buffer, at time Done.
	Done    int64  `json:"done,omitempty"`
	DoneID  string `json:"done_id,omitempty"`
	DoneSeq uint64 `json:"done_seq,omitempty"`
	// Degradations: late events, evicted keys, events evaluated early
	// because the reorder buffer was full; DegradedAt is the event time of
	// the latest.
	Late        uint64      `json:"late,omitempty"`
	Evicted     uint64      `json:"evicted,omitempty"`
	Forced      uint64      `json:"forced,omitempty"`
	DegradedAt  int64       `json:"degraded_at,omitempty"`
	DegradedWhy string      `json:"degraded_why,omitempty"`
	Logins      uint64      `json:"logins"`
	WithDevice  uint64      `json:"with_device"`
	Hours       [168]uint16 `json:"hours"`
	HourTotal   uint32      `json:"hour_total"`
	// Egress holds the tenant's shared-egress candidates (egress.go).
	Egress egressTable `json:"egress"`
}

// profEntry is one actor's encoded profile in memory.
type profEntry struct {
	data  []byte
	last  int64 // event time of last use, for eviction
	dirty bool  // changed since the last checkpoint
}

// New builds an engine, loading operator rules from RulesDir and restoring
// state from StateStore.
func New(opts Options) (*Engine, error) {
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	if opts.MaxWindowEvents <= 0 {
		opts.MaxWindowEvents = DefaultMaxWindowEvents
	}
	if opts.MaxTenantKeys <= 0 {
		opts.MaxTenantKeys = DefaultMaxTenantKeys
	}
	opts.MaxTenantKeys = min(opts.MaxTenantKeys, opts.MaxKeys)
	if opts.MaxHeld <= 0 {
		opts.MaxHeld = DefaultMaxHeld
	}
	if opts.MaxProfiles <= 0 {
		opts.MaxProfiles = DefaultMaxProfiles
	}
	if opts.AllowedLateness < 0 {
		return nil, audit.FieldErrorf("allowed_lateness", "allowed lateness must not be negative")
	}
	if opts.AllowedLateness == 0 {
		opts.AllowedLateness = DefaultAllowedLateness
	}
	if opts.RelayASNs == nil {
		opts.RelayASNs = DefaultRelayASNs
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	rules := slices.Clone(opts.Rules)
	if opts.RulesDir != "" {
		extra, err := rulelang.ParseDir(opts.RulesDir)
		if err != nil {
			return nil, fmt.Errorf("load operator rules: %w", err)
		}
		for _, r := range extra {
			rules = slices.DeleteFunc(rules, func(o *rulelang.Rule) bool { return o.ID == r.ID })
			rules = append(rules, r)
		}
	}
	if opts.Scope < ScopeAll || opts.Scope > ScopeInstallation {
		return nil, audit.FieldErrorf("scope", "unknown detection scope %d", opts.Scope)
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	e := &Engine{
		opts: opts, ns: opts.Namespace, log: log.With("component", "detect"),
		byID: map[string]*crule{}, byAct: map[string][]*crule{}, relay: map[uint32]bool{},
		tenants: map[string]*tenantConf{}, keys: map[string]*keyState{}, profiles: map[string]*profEntry{},
		flags: map[string]int64{}, tstats: map[string]*tenantStats{},
		deadKeys: map[string]bool{}, deadProfs: map[string]bool{},
		outIdx: map[string]int{}, risk: defaultRiskParams(), queue: map[int64][]*keyState{},
		tkeys: map[string]int{}, held: map[string]*heldQueue{}, deadHeld: map[string]bool{},
		heldRows: map[uint64]int{}, deadRows: map[uint64]bool{},
		incs: map[string]*incState{}, incIdx: map[string]string{}, findInc: map[string]string{},
		deadIncs: map[string]string{}, incOut: map[string]bool{},
	}
	var err error
	if e.resolvers, err = buildResolvers(); err != nil {
		return nil, err
	}
	for _, a := range opts.RelayASNs {
		e.relay[a] = true
	}
	for i, r := range rules {
		if _, dup := e.byID[r.ID]; dup {
			return nil, audit.FieldErrorf("rules", "duplicate rule id %s", r.ID)
		}
		cr := &crule{Rule: r, idx: i, defaults: r.Defaults()}
		cr.installation = len(r.GroupBy) > 0 && r.GroupBy[0] == rulelang.KeyInstallation
		if cr.installation && opts.Scope != ScopeAll {
			if err := partitionable(r); err != nil {
				return nil, err
			}
		}
		cr.broad = !slices.ContainsFunc(r.GroupBy, func(k string) bool {
			return k != rulelang.KeyTenant && k != rulelang.KeyInstallation
		})
		if r.Condition != nil && strings.Contains(r.Condition.Source, "max_risk") {
			cr.usesMaxRisk = true
		}
		if r.Condition != nil && strings.Contains(r.Condition.Source, "max_per_value") {
			cr.usesMaxPer = true
		}
		for _, esc := range r.Escalate {
			if esc.When != nil && strings.Contains(esc.When.Source, "max_risk") {
				cr.usesMaxRisk = true
			}
		}
		e.rules = append(e.rules, cr)
		e.byID[r.ID] = cr
		if r.Flag != nil && !slices.Contains(e.flagSet, r.Flag.Name) {
			e.flagSet = append(e.flagSet, r.Flag.Name)
		}
		if r.Flag != nil && r.Flag.Values == "distinct" && !slices.Contains(e.waveFlags, r.Flag.Name) {
			e.waveFlags = append(e.waveFlags, r.Flag.Name)
		}
	}
	e.bruteForce = e.byID["brute-force"]
	e.m = newMetrics(opts.Registerer)
	e.registerGauges(opts.Registerer)
	if opts.StateStore != nil {
		if err := e.load(context.Background()); err != nil {
			return nil, err
		}
	}
	e.qCursor = e.maxT / time.Minute.Milliseconds()
	for _, ks := range e.keys {
		e.schedule(ks, e.expiresAt(ks))
		e.tkeys[ks.Tenant]++
	}
	e.log.Info("detection engine ready", "rules", len(e.rules), "keys", len(e.keys), "profiles", len(e.profiles))
	return e, nil
}

// Rules returns the engine's rules in evaluation order.
func (e *Engine) Rules() []*rulelang.Rule {
	out := make([]*rulelang.Rule, len(e.rules))
	for i, r := range e.rules {
		out[i] = r.Rule
	}
	return out
}

// Evaluates implements audit.ActionFilter: whether a rule of the engine's
// scope looks at events of action. Safe for concurrent use.
func (e *Engine) Evaluates(action string) bool {
	for _, r := range e.rules {
		if (e.opts.Scope == ScopeAll || r.installation == (e.opts.Scope == ScopeInstallation)) && r.Matches(action) {
			return true
		}
	}
	return false
}

// rulesFor returns the rules of the engine's scope that look at action,
// cached per action.
func (e *Engine) rulesFor(action string) []*crule {
	if rs, ok := e.byAct[action]; ok {
		return rs
	}
	var rs []*crule
	for _, r := range e.rules {
		if e.opts.Scope != ScopeAll && r.installation != (e.opts.Scope == ScopeInstallation) {
			continue
		}
		if r.Matches(action) {
			rs = append(rs, r)
		}
	}
	if len(e.byAct) < 4096 { // custom actions are unbounded; stop caching
		e.byAct[action] = rs
	}
	return rs
}

// Process takes records in stream order and returns the findings opened or
// changed by the events it evaluated, each once in its latest form, in
// order of first change. Events are held and evaluated in event-time order
// once their tenant's watermark passes them (see reorder.go), so the
// findings of a record may come from a later Process, Advance or Flush.
// Records at or below the last processed Seq are skipped. It sets
// Event.Risk on every auth.login.success, scored against the state
// evaluated so far.
func (e *Engine) Process(ctx context.Context, recs []*audit.Record) ([]audit.Finding, error) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	// The context is checked once, before any state changes: a batch is
	// evaluated whole or not at all, because state advanced by half a
	// batch whose findings were then dropped could not be replayed (its
	// records would be skipped as already seen).
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.out, e.outRecv = e.out[:0], e.outRecv[:0]
	clear(e.outIdx)
	var touched []string
	for i, rec := range recs {
		if i > 0 && i%yieldEvery == 0 {
			// A batch of 20,000 would otherwise hold the lock for its
			// whole intake.
			e.letReadersIn()
		}
		if rec.Seq != 0 && rec.Seq <= e.lastSeq {
			e.m.skipped.Inc()
			continue
		}
		if len(touched) == 0 || touched[len(touched)-1] != rec.Event.Tenant {
			if !slices.Contains(touched, rec.Event.Tenant) {
				touched = append(touched, rec.Event.Tenant)
			}
		}
		e.accept(rec)
		if rec.Seq != 0 {
			e.lastSeq = rec.Seq
		}
	}
	late := e.opts.AllowedLateness.Milliseconds()
	e.releaseTo(touched, func(_ string, ts *tenantStats) int64 { return ts.Front - late })
	return e.output(), nil
}

// output copies the findings queued by emit for the caller.
func (e *Engine) output() []audit.Finding {
	if len(e.out) == 0 {
		return nil
	}
	out := make([]audit.Finding, len(e.out))
	copy(out, e.out)
	for i := range out {
		out[i].Evidence = slices.Clone(out[i].Evidence)
	}
	e.m.findings.Add(float64(len(out)))
	return out
}

// EvidenceReceived implements audit.EvidenceReceipts: for each finding of
// the last Process, Advance or Flush result, the receive time of the event
// whose evaluation last changed it in that call (zero when unknown).
func (e *Engine) EvidenceReceived() []time.Time {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return slices.Clone(e.outRecv)
}

// ProfileCount returns the number of actor profiles held in memory.
func (e *Engine) ProfileCount() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.profiles)
}

// Position returns the Seq of the last processed record.
func (e *Engine) Position() uint64 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.lastSeq
}

// isRelay reports whether an event's network makes its location unreliable.
func (e *Engine) isRelay(ev *audit.Event, extra []int64) bool {
	if e.isEgress(ev) {
		return true // a shared egress the tenant's actors taught (egress.go)
	}
	n := ev.Enrichment.Network
	if n == nil {
		return false
	}
	if n.VPN || n.Tor || (n.Scope != "" && n.Scope != audit.ScopePublic) || e.relay[n.ASN] {
		return true
	}
	return slices.Contains(extra, int64(n.ASN))
}

func (e *Engine) stats(tenant string) *tenantStats {
	ts := e.tstats[tenant]
	if ts == nil {
		ts = &tenantStats{}
		e.tstats[tenant] = ts
	}
	return ts
}

// processEvent runs one event through risk scoring, the rules and the
// profile update.
func (e *Engine) processEvent(ev *audit.Event) {
	e.m.events.Inc()
	t := ev.Time.UnixMilli()
	ts := e.stats(ev.Tenant)
	tc := e.tenantConf(ev.Tenant)
	in := &e.in
	*in = input{ev: ev, t: t, e: e, tstats: ts, allowlisted: tc.allows(ev), flags: in.flags[:0], fbuf: in.fbuf}

	if e.opts.Scope == ScopeInstallation {
		// Only installation-wide rules, which read no profile, risk or
		// tenant statistics (partitionable): nothing to learn here.
		for _, r := range e.rulesFor(ev.Action) {
			e.evalRule(r, in, ev, t, tc, nil)
		}
		e.expire()
		return
	}
	var prof *Profile
	var pe *profEntry
	if ev.Actor.ID != "" {
		e.kbuf = actorKey(e.kbuf[:0], ev)
		pe = e.profiles[string(e.kbuf)]
		prof = e.loadProfile(pe, e.kbuf, &e.prof)
	}
	if ev.Action == audit.ActionLoginSuccess {
		r := e.score(ev, prof, in, tc)
		ev.Risk = &r
		in.risk = ev.Risk
	}
	for _, r := range e.rulesFor(ev.Action) {
		e.evalRule(r, in, ev, t, tc, prof)
	}
	e.observe(ev, pe, prof, ts, tc)
	e.expire()
}

// evalRule evaluates one rule on the event (prof: the actor's profile, nil
// when it has none).
func (e *Engine) evalRule(r *crule, in *input, ev *audit.Event, t int64, tc *tenantConf, prof *Profile) {
	if tc.disabled[r.ID] {
		return
	}
	in.params = tc.paramsFor(r)
	in.agg = nil
	ok, err := r.When.Bool(in)
	if err != nil {
		e.m.evalErrors.Inc()
	}
	if !ok {
		return
	}
	switch r.Kind {
	case rulelang.KindMatch:
		e.evalMatch(r, in, ev, t)
	case rulelang.KindThreshold, rulelang.KindDistinct:
		e.evalAggregate(r, in, ev, t)
	case rulelang.KindSequence:
		e.evalSequence(r, in, ev, t)
	case rulelang.KindNewValue, rulelang.KindTravel, rulelang.KindRareTime:
		if prof != nil {
			e.evalProfile(r, in, ev, t, prof)
		}
	}
}

// partitionable refuses an installation-wide rule that partitioned
// detection could not evaluate as one engine does: the engine of
// ScopeInstallation learns no profiles, scores no logins and runs none of
// the tenants' rules, so such a rule may not set or read flags (the
// tenants' rules read and set them), read risk or the tenant's statistics,
// or be of a kind that needs profiles.
func partitionable(r *rulelang.Rule) error {
	refuse := func(why string) error {
		return audit.FieldErrorf("rules", "rule %s is installation-wide and %s, which partitioned detection cannot evaluate as one engine does: change the rule or run detection unpartitioned (detect.partitioned: false)", r.ID, why)
	}
	if r.Flag != nil {
		return refuse("sets flag " + r.Flag.Name)
	}
	switch r.Kind {
	case rulelang.KindNewValue, rulelang.KindTravel, rulelang.KindRareTime:
		return refuse("is of kind " + string(r.Kind) + ", which learns actor profiles")
	}
	exprs := []*rulelang.Expr{r.When, r.Condition, r.Distinct, r.CountIf}
	for _, esc := range r.Escalate {
		exprs = append(exprs, esc.When)
	}
	for _, x := range exprs {
		if x == nil {
			continue
		}
		for _, v := range []string{"risk", "flags", "tenant.logins", "tenant.device_ratio"} {
			if strings.Contains(x.Source, v) {
				return refuse("reads " + v)
			}
		}
	}
	return nil
}

// actorKey appends the profile key of the event's actor: tenant|actor.
func actorKey(b []byte, ev *audit.Event) []byte {
	b = append(b, ev.Tenant...)
	b = append(b, '|')
	return append(b, ev.Actor.ID...)
}

// observe updates the actor's profile and the tenant's statistics.
// pe is the actor's profile entry (nil: none yet) and prof its decoded
// profile; the actor's key is in e.kbuf.
func (e *Engine) observe(ev *audit.Event, pe *profEntry, prof *Profile, ts *tenantStats, tc *tenantConf) {
	e.learnEgress(ts, ev, prof, tc)
	if ev.Action == audit.ActionLoginSuccess {
		ts.Logins++
		if ev.Context.DeviceID != "" {
			ts.WithDevice++
		}
	}
	if ev.Actor.ID == "" || ev.Outcome == audit.OutcomeFailure || ev.Actor.Type == audit.ActorAnonymous {
		// Failures name attempted identifiers that may not exist: they
		// never create profiles, so spraying cannot grow memory.
		return
	}
	if ev.Outcome != audit.OutcomeFailure && ev.Actor.Type == audit.ActorUser {
		h := localHourOfWeek(ev, prof, e.isRelay(ev, nil) || tc.allows(ev))
		if ts.Hours[h] < 65535 {
			ts.Hours[h]++
			ts.HourTotal++
		}
		if ts.HourTotal > 60000 {
			ts.HourTotal = 0
			for i := range ts.Hours {
				ts.Hours[i] /= 2
				ts.HourTotal += uint32(ts.Hours[i])
			}
		}
	}
	if prof == nil {
		prof = &e.prof
		*prof = Profile{Countries: prof.Countries[:0], ASNs: prof.ASNs[:0], Devices: prof.Devices[:0], Cities: prof.Cities[:0]}
	}
	prof.observe(ev, e.isRelay(ev, nil) || tc.allows(ev))
	if pe == nil {
		k := string(e.kbuf)
		pe = &profEntry{}
		e.profiles[k] = pe
		delete(e.deadProfs, k)
	}
	// Encode into scratch, then copy: the decoded profile still views
	// pe.data (place texts stay encoded), so it must not be overwritten
	// while being encoded.
	e.encBuf = prof.encode(e.encBuf)
	if cap(pe.data) < len(e.encBuf) {
		// Little slack: profiles grow by a few bytes now and then, and a
		// million of them must not carry append's doubling.
		pe.data = make([]byte, 0, len(e.encBuf)+16)
	}
	pe.data = append(pe.data[:0], e.encBuf...)
	pe.last = ev.Time.Unix()
	if !pe.dirty && e.opts.StateStore != nil {
		pe.dirty = true
		e.dirtyProfs = append(e.dirtyProfs, string(e.kbuf))
	}
}

// loadProfile decodes the actor's profile (entry pe, key key) into dst, or
// returns nil when the actor has none.
func (e *Engine) loadProfile(pe *profEntry, key []byte, dst *Profile) *Profile {
	if pe == nil && e.opts.StateStore != nil && e.profilesOut {
		// Perhaps evicted earlier: reload from the store.
		data, err := e.opts.StateStore.GetState(context.Background(), e.ns, "p/"+string(key))
		if err == nil && data != nil {
			pe = &profEntry{data: data}
			e.profiles[string(key)] = pe
		}
	}
	if pe == nil {
		return nil
	}
	if err := decodeProfile(pe.data, dst); err != nil {
		e.m.evalErrors.Inc()
		return nil
	}
	return dst
}

// activeFlags appends to out the flags set on the event's sources (IP,
// /24, ASN, actor) in its tenant or installation-wide, still live at the
// event's time.
func (e *Engine) activeFlags(in *input, out []string) []string {
	if len(e.flagSet) == 0 || len(e.flags) == 0 {
		return out
	}
	for _, name := range e.flagSet {
		for _, k := range [...]string{rulelang.KeyIP, rulelang.KeyIP24, rulelang.KeyASN, rulelang.KeyActor} {
			v, ok := in.keyValue(k)
			if !ok {
				continue
			}
			if e.flagLive(in, in.ev.Tenant, name, v) || e.flagLive(in, "", name, v) {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

func flagKey(tenant, name, value string) string { return tenant + "|" + name + "|" + value }

// flagLive looks the flag up at the event's time without allocating its
// key (built in the input's own buffer: Score runs concurrently).
func (e *Engine) flagLive(in *input, tenant, name, value string) bool {
	b := append(in.fbuf[:0], tenant...)
	b = append(b, '|')
	b = append(b, name...)
	b = append(b, '|')
	b = append(b, value...)
	in.fbuf = b
	exp, ok := e.flags[string(b)]
	return ok && in.t <= exp
}

// tenantConf is one tenant's tuning, compiled for lookup.
type tenantConf struct {
	disabled map[string]bool
	params   map[string]map[string]any
	trusted  netSet // allowlist entries of mode trust
	// pinned are entries of mode egress (shared egresses the tenant
	// declares), forbidden those of mode not_egress (never learned).
	pinned, forbidden netSet
	defaults          func(*crule) map[string]any
}

// netSet is a set of IPs, CIDRs and ASNs.
type netSet struct {
	ips      map[netip.Addr]bool
	prefixes []netip.Prefix
	asns     map[uint32]bool
}

func (s *netSet) add(kind, value string) error {
	switch kind {
	case "ip":
		ip, err := netip.ParseAddr(value)
		if err != nil {
			return audit.FieldErrorf("value", "allowlist ip %q is not an IP address", value)
		}
		if s.ips == nil {
			s.ips = map[netip.Addr]bool{}
		}
		s.ips[ip.Unmap()] = true
	case "cidr":
		p, err := netip.ParsePrefix(value)
		if err != nil {
			return audit.FieldErrorf("value", "allowlist cidr %q is not a CIDR like 203.0.113.0/24", value)
		}
		s.prefixes = append(s.prefixes, p.Masked())
	case "asn":
		var n uint32
		v := value
		if len(v) > 2 && (v[:2] == "AS" || v[:2] == "as") {
			v = v[2:]
		}
		if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n == 0 || fmt.Sprint(n) != v {
			return audit.FieldErrorf("value", "allowlist asn %q is not an AS number like AS64500", value)
		}
		if s.asns == nil {
			s.asns = map[uint32]bool{}
		}
		s.asns[n] = true
	default:
		return audit.FieldErrorf("kind", "allowlist kind %q must be ip, cidr or asn", kind)
	}
	return nil
}

func (s *netSet) empty() bool { return len(s.ips) == 0 && len(s.prefixes) == 0 && len(s.asns) == 0 }

// matches reports whether the event's address or network is in the set.
func (s *netSet) matches(ev *audit.Event) bool {
	if s.empty() {
		return false
	}
	if ip := ev.Context.IP.Unmap(); ip.IsValid() {
		if s.ips[ip] {
			return true
		}
		for _, p := range s.prefixes {
			if p.Contains(ip) {
				return true
			}
		}
	}
	n := ev.Enrichment.Network
	return n != nil && n.ASN != 0 && s.asns[n.ASN]
}

// covers reports whether the set holds an egress candidate's key: its
// address or a prefix containing it (for an address or a /24), or its ASN.
func (s *netSet) covers(k egressKey) bool {
	if s.empty() {
		return false
	}
	if k.Kind == egressASN {
		return s.asns[k.ASN]
	}
	if k.Kind == egressIP && s.ips[k.Addr.Addr()] {
		return true
	}
	for _, p := range s.prefixes {
		if p.Bits() <= k.Addr.Bits() && p.Contains(k.Addr.Addr()) {
			return true
		}
	}
	return false
}

var noTuning = &tenantConf{}

func (e *Engine) tenantConf(tenant string) *tenantConf {
	if tc := e.tenants[tenant]; tc != nil {
		return tc
	}
	return noTuning
}

func (tc *tenantConf) paramsFor(r *crule) map[string]any {
	if p, ok := tc.params[r.ID]; ok {
		return p
	}
	return r.defaults
}

func (tc *tenantConf) allows(ev *audit.Event) bool {
	if tc == noTuning {
		return false
	}
	return tc.trusted.matches(ev)
}

// SetTenantConfig replaces a tenant's tuning: rule settings (disable,
// parameter overrides validated against each rule's schema) and
// allowlisted IPs, CIDRs and ASNs. On error nothing changes; the error is
// an EINVALID *audit.Error naming the field.
func (e *Engine) SetTenantConfig(tenant string, settings []audit.RuleSetting, allow []audit.AllowEntry) error {
	tc := &tenantConf{disabled: map[string]bool{}, params: map[string]map[string]any{}}
	for _, s := range settings {
		r := e.byID[s.RuleID]
		if r == nil {
			return audit.FieldErrorf("rule_id", "unknown rule %q", s.RuleID)
		}
		if s.Disabled {
			tc.disabled[r.ID] = true
		}
		if len(s.Params) > 0 {
			p, err := r.ValidateParams(s.Params)
			if err != nil {
				return err
			}
			tc.params[r.ID] = p
		}
	}
	for _, a := range allow {
		set := &tc.trusted
		switch a.Mode {
		case "", audit.AllowTrust:
		case audit.AllowEgress:
			set = &tc.pinned
		case audit.AllowNotEgress:
			set = &tc.forbidden
		default:
			return audit.FieldErrorf("mode", "allowlist mode %q must be trust, egress or not_egress", a.Mode)
		}
		if err := set.add(a.Kind, a.Value); err != nil {
			return err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tenants[tenant] = tc
	return nil
}

// ValidateSetting checks one rule setting without applying it: the rule
// exists and its parameters fit the schema.
func (e *Engine) ValidateSetting(s audit.RuleSetting) error {
	r := e.byID[s.RuleID]
	if r == nil {
		return audit.FieldErrorf("rule_id", "unknown rule %q", s.RuleID)
	}
	_, err := r.ValidateParams(s.Params)
	return err
}
