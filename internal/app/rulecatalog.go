package app

import (
	"path/filepath"
	"strings"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/detect/rulelang"
	"github.com/vigilhq/vigil/internal/httpapi"
)

// ruleCatalog turns the engine's rules into the wire form of GET /v1/rules,
// with defaults only (the API adds each tenant's tuning). The rules are
// fixed for the process's life, so the catalog is built once.
func ruleCatalog(rs []*rulelang.Rule) httpapi.RuleCatalog {
	catalog := buildCatalog(rs)
	return func() []client.Rule { return catalog }
}

func buildCatalog(rs []*rulelang.Rule) []client.Rule {
	out := make([]client.Rule, 0, len(rs))
	for _, r := range rs {
		source := r.File
		if strings.HasPrefix(source, "builtin/") {
			source = "builtin"
		}
		if rest, ok := strings.CutPrefix(source, "pack/"); ok {
			source = "pack:" + strings.Split(rest, "/")[0] // an opt-in pack of the binary
		}
		cr := client.Rule{
			ID: r.ID, Family: strings.TrimSuffix(filepath.Base(r.File), filepath.Ext(r.File)), Name: r.Name,
			Kind: string(r.Kind), Severity: string(r.Severity), Description: strings.TrimSpace(r.Description),
			Source: source, Enabled: true, Params: make([]client.RuleParam, 0, len(r.Params)),
		}
		for _, p := range r.Params {
			cr.Params = append(cr.Params, client.RuleParam{Name: p.Name, Type: p.Type, Default: wireValue(p.Default),
				Min: p.Min, Max: p.Max, Doc: p.Doc})
		}
		out = append(out, cr)
	}
	return out
}

// wireValue renders a parameter value for JSON: durations as "10m", not
// nanoseconds.
func wireValue(v any) any {
	d, ok := v.(time.Duration)
	if !ok {
		return v
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
