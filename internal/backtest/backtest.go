// Package backtest replays a tenant's stored history through two fresh,
// in-memory detection engines — one with the tenant's current tuning, one
// with a proposal (changed parameters, extra allowlist entries, or a new
// rule definition) — and reports, per day, what the rule raises under each.
// Nothing is stored: the engines have no state store and their findings
// are only counted and sampled.
package backtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/detect/rulelang"
)

// Bounds of one backtest.
const (
	// DefaultRange is the reported range when the request names none.
	DefaultRange = 7 * 24 * time.Hour
	// MaxRange is the longest reported range.
	MaxRange = 31 * 24 * time.Hour
	// DefaultWarmup is the history replayed before Since to build
	// profiles and baselines (new-location and unusual-hour need it).
	DefaultWarmup = 14 * 24 * time.Hour
	// MaxWarmup bounds the warm-up.
	MaxWarmup = 60 * 24 * time.Hour
	// DefaultSamples and MaxSamples bound the examples per day.
	DefaultSamples = 3
	MaxSamples     = 20
	// slice is how much event time is read at once: a tenant's events are
	// read an hour at a time and replayed oldest first, so memory follows
	// the busiest hour, not the history.
	slice = time.Hour
)

// Options are a Backtester's dependencies.
type Options struct {
	Events audit.EventStore
	Rules  audit.RuleStore
	// NewEngine builds a fresh engine without a state store running the
	// installation's rules, with extra rules replacing those of the same
	// id (or added).
	NewEngine func(extra []*rulelang.Rule) (*detect.Engine, error)
	// MaxEvents bounds the events one backtest replays (warm-up
	// included); beyond it the result is truncated. Default 1,000,000.
	MaxEvents int64
	// Now is the wall clock (the default range ends at it).
	Now func() time.Time
}

// Backtester runs backtests.
type Backtester struct{ opts Options }

// New builds a Backtester.
func New(opts Options) (*Backtester, error) {
	if opts.Events == nil || opts.Rules == nil || opts.NewEngine == nil {
		return nil, errors.New("backtest: Events, Rules and NewEngine are required")
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = 1_000_000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Backtester{opts: opts}, nil
}

// normalize fills defaults and checks the request's bounds, naming each
// offending field.
func (b *Backtester) normalize(req *audit.BacktestRequest) error {
	var ps []audit.Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, audit.Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	now := b.opts.Now().UTC()
	if req.Until.IsZero() {
		req.Until = now
	}
	if req.Since.IsZero() {
		req.Since = req.Until.Add(-DefaultRange)
	}
	req.Since, req.Until = req.Since.UTC(), req.Until.UTC()
	switch {
	case !req.Since.Before(req.Until):
		add("since", "since must be before until")
	case req.Until.Sub(req.Since) > MaxRange:
		add("until", "a backtest covers at most %d days; narrow since/until", int(MaxRange/(24*time.Hour)))
	}
	if req.Until.After(now.Add(time.Hour)) {
		add("until", "until is in the future")
	}
	if req.Warmup == 0 {
		req.Warmup = DefaultWarmup
	}
	if req.Warmup < 0 || req.Warmup > MaxWarmup {
		add("warmup", "warmup must be between 0 and %d days", int(MaxWarmup/(24*time.Hour)))
	}
	if req.Samples == 0 {
		req.Samples = DefaultSamples
	}
	if req.Samples < 0 || req.Samples > MaxSamples {
		add("samples", "samples must be between 1 and %d", MaxSamples)
	}
	if req.Tenant == "" {
		add("tenant", "tenant is required")
	}
	if len(req.Allow) > 100 {
		add("allow", "at most 100 allowlist entries")
	}
	if len(ps) > 0 {
		return &audit.Error{Code: audit.EINVALID, Message: ps[0].Field + ": " + ps[0].Message, Problems: ps}
	}
	return nil
}

// side is one engine of the comparison and what it raised.
type side struct {
	e        *detect.Engine
	findings map[string]audit.Finding // of the rule under test, latest version
}

func (s *side) take(rule string, fs []audit.Finding) {
	for _, f := range fs {
		if f.RuleID == rule {
			s.findings[f.ID] = f
		}
	}
}

// Run replays the tenant's history and compares. progress, when set, is
// called after every hour of event time replayed.
func (b *Backtester) Run(ctx context.Context, req audit.BacktestRequest, progress func(audit.BacktestProgress)) (*audit.BacktestResult, error) {
	if err := b.normalize(&req); err != nil {
		return nil, err
	}
	var extra []*rulelang.Rule
	if req.Rule != "" {
		rs, err := rulelang.Parse("backtest.yaml", []byte(req.Rule))
		if err != nil {
			return nil, audit.FieldErrorf("rule", "%v", err)
		}
		if len(rs) != 1 || rs[0].ID != req.RuleID {
			return nil, audit.FieldErrorf("rule", "rule must define exactly one rule, with id %q", req.RuleID)
		}
		extra = rs
	}
	settings, err := b.opts.Rules.ListRuleSettings(ctx, req.Tenant)
	if err != nil {
		return nil, fmt.Errorf("rule settings of %s: %w", req.Tenant, err)
	}
	allow, err := b.opts.Rules.ListAllowEntries(ctx, req.Tenant)
	if err != nil {
		return nil, fmt.Errorf("allowlist of %s: %w", req.Tenant, err)
	}
	cur, err := b.opts.NewEngine(nil)
	if err != nil {
		return nil, err
	}
	prop, err := b.opts.NewEngine(extra)
	if err != nil {
		return nil, err
	}
	rule := ruleByID(prop, req.RuleID)
	if rule == nil {
		return nil, audit.Errorf(audit.ENOTFOUND, "no rule %q; to try a new rule, send its definition in rule", req.RuleID)
	}
	// The current side runs the tenant's tuning as it is; a rule that does
	// not exist yet raises nothing there.
	curSettings := settings
	if ruleByID(cur, req.RuleID) == nil {
		curSettings = slices.DeleteFunc(slices.Clone(settings), func(s audit.RuleSetting) bool { return s.RuleID == req.RuleID })
	}
	if err := cur.SetTenantConfig(req.Tenant, curSettings, allow); err != nil {
		return nil, fmt.Errorf("current tuning of %s: %w", req.Tenant, err)
	}
	propSettings, params, err := propose(settings, rule, req)
	if err != nil {
		return nil, err
	}
	if err := prop.SetTenantConfig(req.Tenant, propSettings, append(slices.Clone(allow), req.Allow...)); err != nil {
		return nil, err
	}
	sides := []*side{{e: cur, findings: map[string]audit.Finding{}}, {e: prop, findings: map[string]audit.Finding{}}}

	res := &audit.BacktestResult{Tenant: req.Tenant, RuleID: req.RuleID, Since: req.Since, Until: req.Until, Params: params}
	start := req.Since.Add(-req.Warmup)
	var seq uint64
	for from := start; from.Before(req.Until); from = from.Add(slice) {
		to := from.Add(slice)
		if to.After(req.Until) {
			to = req.Until
		}
		evs, err := b.read(ctx, req.Tenant, from, to)
		if err != nil {
			return nil, err
		}
		if res.Events+int64(len(evs)) > b.opts.MaxEvents {
			res.Truncated = true
			break
		}
		res.Events += int64(len(evs))
		for _, s := range sides {
			recs := make([]*audit.Record, len(evs))
			for i := range evs {
				// each engine gets its own copy (Process sets Risk)
				recs[i] = &audit.Record{Seq: seq + uint64(i) + 1, Event: evs[i]}
			}
			fs, err := s.e.Process(ctx, recs)
			if err != nil {
				return nil, err
			}
			s.take(req.RuleID, fs)
		}
		seq += uint64(len(evs))
		res.Reached = to
		if progress != nil {
			progress(audit.BacktestProgress{Events: res.Events, Reached: to,
				Fraction: float64(to.Sub(start)) / float64(req.Until.Sub(start))})
		}
	}
	for _, s := range sides {
		fs, err := s.e.Flush(ctx)
		if err != nil {
			return nil, err
		}
		s.take(req.RuleID, fs)
	}
	end := req.Until
	if res.Truncated {
		end = res.Reached
	}
	res.Days = tally(sides[0].findings, sides[1].findings, req.Since, end, req.Samples)
	for _, d := range res.Days {
		res.Current += d.Current
		res.Proposed += d.Proposed
	}
	return res, nil
}

// propose merges the request's parameters over the tenant's settings of
// the rule and validates them; params are the proposal's effective values.
func propose(settings []audit.RuleSetting, rule *rulelang.Rule, req audit.BacktestRequest) ([]audit.RuleSetting, map[string]any, error) {
	out := make([]audit.RuleSetting, 0, len(settings)+1)
	merged := map[string]any{}
	for _, s := range settings {
		if s.RuleID == req.RuleID {
			if req.Rule == "" { // a new definition starts from its own defaults
				maps.Copy(merged, s.Params)
			}
			continue
		}
		out = append(out, s)
	}
	maps.Copy(merged, req.Params)
	eff, err := rule.ValidateParams(merged)
	if err != nil {
		return nil, nil, err
	}
	out = append(out, audit.RuleSetting{Tenant: req.Tenant, RuleID: req.RuleID, Params: merged})
	wire := make(map[string]any, len(eff))
	for k, v := range eff {
		if d, ok := v.(time.Duration); ok {
			v = d.String()
		}
		wire[k] = v
	}
	return out, wire, nil
}

func ruleByID(e *detect.Engine, id string) *rulelang.Rule {
	for _, r := range e.Rules() {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// read returns the tenant's events in [from, to), oldest first.
func (b *Backtester) read(ctx context.Context, tenant string, from, to time.Time) ([]audit.Event, error) {
	f := audit.EventFilter{Tenant: tenant, Since: from, Until: to, Limit: audit.MaxPageSize}
	var out []audit.Event
	for {
		page, err := b.opts.Events.SearchEvents(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("read %s's events from %s: %w", tenant, from.Format(time.RFC3339), err)
		}
		out = append(out, page.Events...)
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	slices.Reverse(out) // pages are newest first
	// Ties in time keep a stable order whatever the store's paging.
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// tally counts each side's findings per UTC day of their first evidence
// (findings older than since count on since's day; findings whose last
// evidence is before since are the warm-up's and not counted).
func tally(cur, prop map[string]audit.Finding, since, until time.Time, samples int) []audit.BacktestDay {
	dayOf := func(f audit.Finding) time.Time {
		t := f.FirstSeen
		if t.Before(since) {
			t = since
		}
		return t.UTC().Truncate(24 * time.Hour)
	}
	counted := func(f audit.Finding) bool { return !f.LastSeen.Before(since) && f.FirstSeen.Before(until) }
	days := map[time.Time]*audit.BacktestDay{}
	get := func(d time.Time) *audit.BacktestDay {
		if days[d] == nil {
			days[d] = &audit.BacktestDay{Day: d}
		}
		return days[d]
	}
	for d := since.UTC().Truncate(24 * time.Hour); d.Before(until); d = d.Add(24 * time.Hour) {
		get(d)
	}
	for _, id := range sortedIDs(cur) {
		f := cur[id]
		if !counted(f) {
			continue
		}
		d := get(dayOf(f))
		d.Current++
		if _, still := prop[id]; !still && len(d.Removed) < samples {
			d.Removed = append(d.Removed, sample(f))
		}
	}
	for _, id := range sortedIDs(prop) {
		f := prop[id]
		if !counted(f) {
			continue
		}
		d := get(dayOf(f))
		d.Proposed++
		if len(d.Samples) < samples {
			d.Samples = append(d.Samples, sample(f))
		}
	}
	out := make([]audit.BacktestDay, 0, len(days))
	for _, d := range days {
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b audit.BacktestDay) int { return a.Day.Compare(b.Day) })
	return out
}

// sortedIDs orders findings by first evidence, then id, so samples are
// the day's earliest and the same on every run.
func sortedIDs(m map[string]audit.Finding) []string {
	ids := slices.Collect(maps.Keys(m))
	slices.SortFunc(ids, func(a, b string) int {
		if c := m[a].FirstSeen.Compare(m[b].FirstSeen); c != 0 {
			return c
		}
		if a < b {
			return -1
		}
		if a > b {
			return 1
		}
		return 0
	})
	return ids
}

func sample(f audit.Finding) audit.BacktestSample {
	return audit.BacktestSample{ID: f.ID, Severity: f.Severity, ActorID: f.ActorID, IP: f.IP, GroupKey: f.GroupKey,
		Count: f.Count, FirstSeen: f.FirstSeen, Explanation: f.Explanation}
}
