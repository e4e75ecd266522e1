package console

import (
	"fmt"
	"html/template"
	"io/fs"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	},
	"whenp": func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04")
	},
	"iso":     func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"esc":     url.PathEscape,
	"qesc":    url.QueryEscape,
	"sevrank": func(s audit.Severity) int { return s.Rank() },
	"join":    strings.Join,
	"sub":     func(a, b int) int { return a - b },
	"risk":    riskReason,
	// shownfact: facts a finding page already shows in its own fields.
	"shownfact": func(k string) bool {
		switch k {
		case "actor", "ip", "session", "tenant", "count":
			return true
		}
		return false
	},
	"scopes": func(ss []audit.Scope) string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = string(s)
		}
		return strings.Join(out, ", ")
	},
	"mode": modeLabel,
	"changes": func(cs []audit.LifecycleChange) string {
		if len(cs) == 0 {
			return "every change"
		}
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = string(c)
		}
		return strings.Join(out, ", ")
	},
	"fact": func(v any) string {
		switch x := v.(type) {
		case float64:
			if x == float64(int64(x)) {
				return fmt.Sprint(int64(x))
			}
			return fmt.Sprintf("%.2f", x)
		case []any:
			parts := make([]string, len(x))
			for i, e := range x {
				parts[i] = fmt.Sprint(e)
			}
			return strings.Join(parts, ", ")
		}
		return fmt.Sprint(v)
	},
	"ip": func(e audit.Event) string {
		if e.Context.IP.IsValid() {
			return e.Context.IP.String()
		}
		return ""
	},
	"place": func(e audit.Event) string {
		var parts []string
		if g := e.Enrichment.Geo; g != nil {
			if g.City != "" {
				parts = append(parts, g.City)
			}
			if g.Country != "" {
				parts = append(parts, g.Country)
			}
		}
		if n := e.Enrichment.Network; n != nil && n.ASN != 0 {
			parts = append(parts, fmt.Sprintf("AS%d %s", n.ASN, n.ASOrg))
		}
		return strings.Join(parts, " · ")
	},
	"selected": func(a, b string) bool { return a == b },
}

// parsePages parses every page with the shared layout.
func parsePages() (map[string]*template.Template, error) {
	files, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" || name == "findlist" {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/findlist.html", f)
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}
