package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/detect/rulelang"
	"github.com/vigilhq/vigil/internal/httpapi"
	"github.com/vigilhq/vigil/internal/integrity"
	"github.com/vigilhq/vigil/internal/rules"
)

// detection bundles what detection offers the rest of the app: one engine
// on this node, or, when detection is partitioned over a cluster's nodes,
// the engines of the detection units wherever they run (units.go).
type detection struct {
	// detector is the pipeline's engine; nil when detection is
	// partitioned (each unit's pipeline has its own).
	detector        audit.Detector
	scorer          httpapi.Scorer
	egresses        func(tenant string, all bool) []audit.Egress
	rules           []*rulelang.Rule
	tuningChanged   func(ctx context.Context, tenant string)
	validateSetting httpapi.ValidateSetting
	// forgetProfile drops an actor's profile (erasure); scrubIncidents
	// removes erased values from the open incidents detection holds.
	forgetProfile  func(ctx context.Context, tenant, actor string) (bool, error)
	scrubIncidents func(ctx context.Context, tenant string, values []string) error
}

// NewEngine builds the detection engine with the built-in pack, the
// opt-in packs the configuration names, the operator rule directory and
// the stores' persisted state.
func NewEngine(c config.Detect, state audit.StateStore, log *slog.Logger, reg prometheusRegisterer) (*detect.Engine, error) {
	return newEngine(c, detect.Options{StateStore: state, Logger: log, Registerer: reg, MaxKeys: c.MaxKeys})
}

// newScopedEngine builds the engine of one detection unit of partitioned
// detection (units.go) out of units: its state in namespace ns, and a
// share of detect.max_keys and of the profiles held in memory — twice an
// even share, so that a busy partition has room, and never less than one
// tenant's cap of keys. A node holding every unit can thus hold up to
// twice the configured keys.
func newScopedEngine(c config.Detect, state audit.StateStore, scope detect.Scope, ns string, units int, log *slog.Logger, reg prometheusRegisterer) (*detect.Engine, error) {
	return newEngine(c, detect.Options{StateStore: state, Logger: log, Registerer: reg, Scope: scope, Namespace: ns,
		MaxKeys:     min(c.MaxKeys, max(c.MaxTenantKeys, 2*c.MaxKeys/units)),
		MaxProfiles: max(10_000, 2*detect.DefaultMaxProfiles/units)})
}

// newEngine builds an engine of the configuration's rules and limits,
// with o's state store, scope, key cap and metrics.
func newEngine(c config.Detect, o detect.Options) (*detect.Engine, error) {
	builtin, err := loadRules(c)
	if err != nil {
		return nil, err
	}
	o.Rules, o.RulesDir = builtin, c.RulesDir
	o.MaxTenantKeys, o.AllowedLateness, o.Egress = c.MaxTenantKeys, c.AllowedLateness, egressOptions(c.Egress)
	e, err := detect.New(o)
	if err != nil {
		return nil, fmt.Errorf("detection engine: %w", err)
	}
	return e, nil
}

// loadRules returns the built-in rules and those of the packs the
// configuration enables.
func loadRules(c config.Detect) ([]*rulelang.Rule, error) {
	rs, err := rules.Load(c.Packs)
	if errors.Is(err, rules.ErrUnknownPack) {
		return nil, fmt.Errorf("detect.packs: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("built-in rules: %w", err)
	}
	return rs, nil
}

// egressOptions translates the configuration's egress learning (checked
// by config.Validate) into the engine's.
func egressOptions(c config.DetectEgress) detect.EgressOptions {
	o := detect.EgressOptions{Off: !c.Learn, MinActors: c.MinActors}
	for _, d := range c.Deny {
		if p, err := config.ParsePrefix(d); err == nil {
			o.Deny = append(o.Deny, p)
		}
	}
	return o
}

func (a *App) buildDetection(ctx context.Context, c config.Detect) (*detection, error) {
	if !c.Enabled {
		return nil, nil
	}
	e, err := NewEngine(c, a.stores.State, a.log, a.registry) // the engine tags its own component
	if err != nil {
		return nil, err
	}
	d := &detection{detector: e, scorer: e, egresses: e.Egresses, rules: e.Rules(), validateSetting: e.ValidateSetting,
		forgetProfile: e.ForgetProfile,
		scrubIncidents: func(_ context.Context, tenant string, values []string) error {
			e.RewriteOpenIncidents(tenant, integrity.NewScrubber(values).Incident)
			return nil
		}}
	d.tuningChanged = func(ctx context.Context, tenant string) {
		if err := loadTuning(ctx, e, a.stores.Rules, tenant); err != nil {
			a.log.LogAttrs(ctx, slog.LevelError, "reload tenant tuning", slog.String("tenant_id", tenant), slog.String("error", err.Error()))
		}
	}
	tenants, err := a.stores.Tenants.ListTenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	for _, t := range tenants {
		if err := loadTuning(ctx, e, a.stores.Rules, t.ID); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// loadTuning hands one tenant's stored rule settings and allowlist to the engine.
func loadTuning(ctx context.Context, e *detect.Engine, rs audit.RuleStore, tenant string) error {
	settings, err := rs.ListRuleSettings(ctx, tenant)
	if err != nil {
		return fmt.Errorf("rule settings of %s: %w", tenant, err)
	}
	allow, err := rs.ListAllowEntries(ctx, tenant)
	if err != nil {
		return fmt.Errorf("allowlist of %s: %w", tenant, err)
	}
	if err := e.SetTenantConfig(tenant, settings, allow); err != nil {
		return fmt.Errorf("tuning of %s: %w", tenant, err)
	}
	return nil
}
