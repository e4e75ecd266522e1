package app_test

import (
	"errors"
	"net/http"
	"regexp"
	"testing"

	"github.com/vigilhq/vigil/client"
)

// TestRuleListShowsDefaultsAndTenantTuning lists the rules over HTTP, tunes
// two of them for one tenant, and checks the listing shows the tuning to
// that tenant only, with defaults intact for another tenant and for an
// operator who names none.
func TestRuleListShowsDefaultsAndTenantTuning(t *testing.T) {
	n := startNode(t)
	a, keyA := n.tenantClient(t, "acme")
	b, _ := n.tenantClient(t, "globex")
	ctx := t.Context()

	list, err := a.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := func(l *client.RuleList) map[string]client.Rule {
		m := map[string]client.Rule{}
		for _, r := range l.Rules {
			m[r.ID] = r
		}
		return m
	}
	rules := byID(list)
	if list.Tenant != "acme" || len(rules) < 15 {
		t.Fatalf("tenant %q, %d rules", list.Tenant, len(rules))
	}
	bf := rules["brute-force"]
	if !bf.Enabled || bf.Family != "brute-force" || bf.Source != "builtin" || bf.Severity != "medium" || bf.Kind != "distinct" || bf.Description == "" {
		t.Fatalf("brute-force: %+v", bf)
	}
	// The descriptions are for users: none may point at a document outside
	// the repository or at an issue of ours (they did: "(PRODUCT.md §3,
	// detection 3)").
	internalRef := regexp.MustCompile(`(?i)PRODUCT\.md|§|\bissue\s*#?\d`)
	for _, r := range list.Rules {
		texts := []string{r.Name, r.Description}
		for _, p := range r.Params {
			texts = append(texts, p.Doc)
		}
		for _, s := range texts {
			if m := internalRef.FindString(s); m != "" {
				t.Errorf("rule %s serves %q, an internal reference, in %q", r.ID, m, s)
			}
		}
	}
	if lo := rules["lockout-attack"]; lo.Family != "brute-force" {
		t.Errorf("lockout-attack family %q, want its file's, brute-force", lo.Family)
	}
	param := func(r client.Rule, name string) client.RuleParam {
		for _, p := range r.Params {
			if p.Name == name {
				return p
			}
		}
		t.Fatalf("%s has no param %s: %+v", r.ID, name, r.Params)
		return client.RuleParam{}
	}
	if p := param(bf, "min_failures"); p.Type != "int" || p.Default != float64(10) || p.Value != float64(10) || p.Min == nil || *p.Min != 2 {
		t.Fatalf("min_failures: %+v", p)
	}
	if p := param(bf, "window"); p.Default != "10m" {
		t.Fatalf("window default %v, want \"10m\"", p.Default)
	}

	// Tune acme: raise brute-force's threshold, switch automated-client off.
	for _, put := range []struct{ rule, body string }{
		{"brute-force", `{"params":{"min_failures":25}}`},
		{"automated-client", `{"disabled":true}`},
	} {
		if status, body := raw(t, http.MethodPut, n.url+"/v1/rules/"+put.rule+"/settings", keyA, put.body); status != 200 {
			t.Fatalf("PUT %s: %d %s", put.rule, status, body)
		}
	}
	list, err = a.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rules = byID(list)
	if p := param(rules["brute-force"], "min_failures"); p.Value != float64(25) || p.Default != float64(10) {
		t.Fatalf("tuned min_failures: %+v", p)
	}
	if o := rules["brute-force"].Overrides; o["min_failures"] != float64(25) {
		t.Fatalf("overrides: %v", o)
	}
	if rules["automated-client"].Enabled {
		t.Fatal("automated-client is switched off for acme but listed enabled")
	}

	// Another tenant and an operator without a tenant see the defaults.
	for name, c := range map[string]*client.Client{"globex": b, "operator": n.op} {
		l, err := c.Rules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		r := byID(l)
		if !r["automated-client"].Enabled || r["brute-force"].Overrides != nil || param(r["brute-force"], "min_failures").Value != float64(10) {
			t.Errorf("%s sees acme's tuning: %+v", name, r["brute-force"])
		}
	}
	if l, err := n.op.ForTenant("acme").Rules(ctx); err != nil || byID(l)["automated-client"].Enabled {
		t.Errorf("operator naming acme does not see acme's tuning: %v", err)
	}

	// The route needs findings:read.
	w, _ := n.tenantClient(t, "acme", "events:write")
	if _, err := w.Rules(ctx); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("events:write key: %v, want forbidden", err)
	}
}
