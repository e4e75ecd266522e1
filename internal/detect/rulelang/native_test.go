package rulelang_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/vigilhq/vigil/internal/detect/rulelang"
	"github.com/vigilhq/vigil/internal/rules"
)

// vars is a test activation over random values.
type vars struct {
	vals   []rulelang.Value
	params map[string]any
}

func (v *vars) Var(id int) rulelang.Value {
	if rulelang.VarName(id) == "params" {
		return rulelang.MapVal(v.params)
	}
	return v.vals[id]
}

func (v *vars) ResolveName(name string) (any, bool) {
	id := rulelang.VarID(name)
	if id < 0 {
		return nil, false
	}
	return v.Var(id).Native(), true
}

func (v *vars) Parent() rulelang.Activation { return nil }

var strPool = []string{"", "auth.login.success", "auth.login.failure", "user.role.changed", "auth.password.reset",
	"data.exported", "failure", "success", "api_key", "user", "service", "scripted", "headless", "browser", "empty",
	"admin", "member", "owner", "completed", "requested", "stuffing_source", "FR", "Chrome", "Windows", "é☃"}

func randValue(r *rand.Rand, typ string) rulelang.Value {
	switch typ {
	case "string":
		return rulelang.StringVal(strPool[r.IntN(len(strPool))])
	case "int":
		return rulelang.IntVal([]int64{0, 1, 2, 3, 10, 19, 20, 21, 39, 40, 41, 70, 100, -1}[r.IntN(14)])
	case "bool":
		return rulelang.BoolVal(r.IntN(2) == 0)
	case "double":
		return rulelang.DoubleVal([]float64{-1, 0, 0.0005, 0.002, 0.5, 0.8, 1, 5, 12.5, 900}[r.IntN(10)])
	case "list":
		n := r.IntN(3)
		l := make([]string, n)
		for i := range l {
			l[i] = strPool[r.IntN(len(strPool))]
		}
		return rulelang.StringsVal(l)
	}
	// metadata: random keys with values of random JSON types
	m := map[string]any{}
	for _, k := range []string{"stage", "new_role", "old_role", "records", "factor", "tags"} {
		switch r.IntN(8) {
		case 0, 1:
		case 2:
			m[k] = float64(r.IntN(3000))
		case 3:
			m[k] = r.IntN(2) == 0
		case 4:
			m[k] = nil
		case 5:
			m[k] = []any{"admin", 1.0}
		default:
			m[k] = strPool[r.IntN(len(strPool))]
		}
	}
	return rulelang.MapVal(m)
}

// varTypes maps each variable to its generator type.
func varTypes() []string {
	out := make([]string, rulelang.NumVars())
	for id := range out {
		switch n := rulelang.VarName(id); n {
		case "event.metadata", "params":
			out[id] = "map"
		case "event.net.lists", "risk.reasons", "flags", "new":
			out[id] = "list"
		case "event.geo.has_location", "event.net.tor", "event.net.datacenter", "event.net.vpn", "allowlisted":
			out[id] = "bool"
		case "event.hour", "event.weekday", "event.geo.accuracy_km", "event.net.asn", "risk.score", "tenant.logins",
			"count", "distinct", "matched", "max_per_value", "max_risk", "steps":
			out[id] = "int"
		case "tenant.device_ratio", "baseline", "baseline_matched", "probability", "speed_kmh", "distance_km":
			out[id] = "double"
		default:
			out[id] = "string"
		}
	}
	return out
}

// extraExprs exercise the native subset beyond what the built-ins use.
var extraExprs = []string{
	`event.metadata.records >= 1000`,
	`has(event.metadata.stage) && event.metadata.stage == "completed"`,
	`"tags" in event.metadata && "admin" in event.metadata.tags`,
	`event.metadata.new_role != event.metadata.old_role`,
	`size(event.actor.id) > 3 || event.actor.id.startsWith("adm")`,
	`event.ctx.user_agent.contains("python") || event.ctx.user_agent.endsWith("Chrome")`,
	`event.net.asn in [64500, 64501] || event.hour in [1, 2, 3]`,
	`(event.hour + 1) * 2 - 3 > 10 && double(event.net.asn) > 0.5`,
	`event.geo.accuracy_km < 100.5 && tenant.device_ratio > 0`,
	`event.metadata.records > 10 ? event.metadata.records < 2000 : event.metadata.stage == "x"`,
	`event.outcome == "failure" ? event.actor.id : event.geo.country + "/" + event.ua.os`,
	`event.metadata.records`,
	`[event.actor.id, event.target.id] == [event.target.id, event.actor.id]`,
	`!(event.net.tor || event.net.vpn) && !allowlisted`,
	`event.metadata.stage < "m" || false`,
	`event.hour + event.weekday + 1 > 5 && event.metadata.records + 1.0 + 2.0 > 10.0`,
	`event.actor.id + "/" + event.metadata.stage + "/" + event.target.id == "a/completed/b"`,
}

// TestNativeMatchesCEL checks that the native evaluator gives cel-go's
// result (value, and error versus no error) for every built-in rule
// expression and a set of extra ones over random variables.
func TestNativeMatchesCEL(t *testing.T) {
	rs, err := rules.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	type tc struct {
		name   string
		x      *rulelang.Expr
		params map[string]any
		str    bool
	}
	var cases []tc
	for _, r := range rs {
		add := func(f string, x *rulelang.Expr, str bool) {
			if x != nil {
				cases = append(cases, tc{r.ID + "." + f, x, r.Defaults(), str})
			}
		}
		add("when", r.When, false)
		add("condition", r.Condition, false)
		add("count_if", r.CountIf, false)
		add("distinct", r.Distinct, true)
		for i, s := range r.Steps {
			add(fmt.Sprintf("steps[%d]", i), s.When, false)
		}
		for i, e := range r.Escalate {
			add(fmt.Sprintf("escalate[%d]", i), e.When, false)
		}
	}
	for i, src := range extraExprs {
		yaml := fmt.Sprintf("id: x%d\nname: X\nkind: distinct\nseverity: low\ngroup_by: [ip]\nwindow: 1m\nexplain: e\ncondition: count > 0\n", i)
		str := src == extraExprs[10] || src == extraExprs[11]
		if str {
			yaml += "distinct: '" + src + "'\n"
		} else {
			yaml += "distinct: event.actor.id\nwhen: '" + src + "'\n"
		}
		got, err := rulelang.Parse("extra.yaml", []byte(yaml))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		x := got[0].When
		if str {
			x = got[0].Distinct
		}
		cases = append(cases, tc{src, x, map[string]any{}, str})
	}
	types := varTypes()
	actionID := rulelang.VarID("event.action")
	r := rand.New(rand.NewPCG(1, 2))
	notNative := 0
	for _, c := range cases {
		if !c.x.IsNative() {
			notNative++
			t.Logf("not native: %s: %s", c.name, c.x.Source)
			continue
		}
		for range 3000 {
			v := &vars{vals: make([]rulelang.Value, len(types)), params: c.params}
			for id, typ := range types {
				v.vals[id] = randValue(r, typ)
			}
			if c.str {
				if got, want := c.x.String(v), c.x.CELString(v); got != want {
					t.Fatalf("%s: %s: native %q, CEL %q", c.name, c.x.Source, got, want)
				}
				continue
			}
			nb, nfail, handled := c.x.NativeBool(v)
			if !handled {
				continue
			}
			cb, cerr := c.x.CELBool(v)
			if nb != cb || nfail != (cerr != nil) {
				t.Fatalf("%s: %s: native (%v, failed %v), CEL (%v, %v); vars %+v", c.name, c.x.Source, nb, nfail, cb, cerr, v.vals)
			}
			if acts := c.x.StaticActions(); cb && acts != nil && !slices.Contains(acts, v.vals[actionID].Native().(string)) {
				t.Fatalf("%s: %s: true for action %v outside its static actions %v", c.name, c.x.Source, v.vals[actionID], acts)
			}
		}
	}
	if notNative > 0 {
		t.Errorf("%d expressions are outside the native subset", notNative)
	}
}

func TestStaticActions(t *testing.T) {
	tests := []struct {
		when string
		want []string
	}{
		{`event.action == "a"`, []string{"a"}},
		{`"a" == event.action && risk.score > 3`, []string{"a"}},
		{`event.action in ["a", "b"] || (event.action == "c" && event.metadata.stage == "x")`, []string{"a", "b", "c"}},
		{`event.action in ["a", "b"] && event.action == "b"`, []string{"b"}},
		{`event.action == "a" || risk.score > 3`, nil},
		{`event.action != "a"`, nil},
		{`!allowlisted`, nil},
	}
	for _, tc := range tests {
		yaml := "id: s\nname: S\nkind: sequence\nseverity: low\ngroup_by: [actor]\nwindow: 1m\nexplain: e\nordered: true\n" +
			"steps:\n  - {name: a, when: '" + tc.when + "'}\n  - {name: b, when: 'true'}\n"
		rs, err := rulelang.Parse("s.yaml", []byte(yaml))
		if err != nil {
			t.Fatalf("%s: %v", tc.when, err)
		}
		if got := rs[0].Steps[0].Actions; !slices.Equal(got, tc.want) {
			t.Errorf("%s: actions %v, want %v", tc.when, got, tc.want)
		}
	}
}
