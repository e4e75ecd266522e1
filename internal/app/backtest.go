package app

import (
	"fmt"
	"log/slog"

	"github.com/vigilhq/vigil/internal/backtest"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/detect/rulelang"
)

// buildBacktester wires backtesting: fresh in-memory engines with the
// server's rules (built-in and the configured packs, then the operator directory, then the
// backtest's own definition, each replacing the same id), reading the
// stores.
func (a *App) buildBacktester(c config.Detect) (*backtest.Backtester, error) {
	// Each engine parses its own rules, so no compiled rule is shared
	// between a backtest and the live engine.
	load := func() ([]*rulelang.Rule, error) {
		base, err := loadRules(c)
		if err != nil {
			return nil, err
		}
		if c.RulesDir != "" {
			dir, err := rulelang.ParseDir(c.RulesDir)
			if err != nil {
				return nil, fmt.Errorf("rules in %s: %w", c.RulesDir, err)
			}
			base = replaceRules(base, dir)
		}
		return base, nil
	}
	if _, err := load(); err != nil {
		return nil, err
	}
	return backtest.New(backtest.Options{
		Events: a.stores.Events, Rules: a.stores.Rules, Now: a.now,
		NewEngine: func(extra []*rulelang.Rule) (*detect.Engine, error) {
			base, err := load()
			if err != nil {
				return nil, err
			}
			return detect.New(detect.Options{
				Rules: replaceRules(base, extra), Logger: slog.New(slog.DiscardHandler),
				MaxKeys: c.MaxKeys, MaxTenantKeys: c.MaxTenantKeys, AllowedLateness: c.AllowedLateness,
				Egress: egressOptions(c.Egress),
			})
		},
	})
}

// replaceRules returns base with each rule of over replacing the one of
// the same id, or appended.
func replaceRules(base, over []*rulelang.Rule) []*rulelang.Rule {
	out := make([]*rulelang.Rule, 0, len(base)+len(over))
	byID := map[string]int{}
	for _, r := range base {
		byID[r.ID] = len(out)
		out = append(out, r)
	}
	for _, r := range over {
		if i, ok := byID[r.ID]; ok {
			out[i] = r
			continue
		}
		byID[r.ID] = len(out)
		out = append(out, r)
	}
	return out
}
