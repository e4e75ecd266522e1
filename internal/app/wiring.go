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
	"github.com/vigilhq/vigil/internal/rules"
)

// detection bundles what the detection engine offers the rest of the app.
type detection struct {
	engine          *detect.Engine
	detector        audit.Detector
	scorer          httpapi.Scorer
	tuningChanged   func(ctx context.Context, tenant string)
	validateSetting httpapi.ValidateSetting
}

// NewEngine builds the detection engine with the built-in pack, the
// opt-in packs the configuration names, the operator rule directory and
// the stores' persisted state.
func NewEngine(c config.Detect, state audit.StateStore, log *slog.Logger, reg prometheusRegisterer) (*detect.Engine, error) {
	builtin, err := loadRules(c)
	if err != nil {
		return nil, err
	}
	e, err := detect.New(detect.Options{
		Rules: builtin, RulesDir: c.RulesDir, StateStore: state, Logger: log, Registerer: reg,
		MaxKeys: c.MaxKeys, MaxTenantKeys: c.MaxTenantKeys, AllowedLateness: c.AllowedLateness,
		Egress: egressOptions(c.Egress),
	})
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
	d := &detection{engine: e, detector: e, scorer: e, validateSetting: e.ValidateSetting}
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
