package rulelang_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect/rulelang"
)

const good = `id: demo
name: Demo
kind: distinct
severity: high
on: [auth.login.failure, auth.*]
when: '!allowlisted'
group_by: [ip]
window: 10m
distinct: event.actor.id
condition: distinct >= params.n
explain: "{distinct} accounts from {ip}"
params:
  n: {type: int, default: 10, min: 2}
  w: {type: duration, default: 5m}
  roles: {type: strings, default: [admin]}
`

func TestParseGood(t *testing.T) {
	rs, err := rulelang.Parse("demo.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	r := rs[0]
	if r.ID != "demo" || r.Kind != rulelang.KindDistinct || r.Window.Minutes() != 10 || r.Line != 1 {
		t.Fatalf("parsed %+v", r)
	}
	if !r.Matches("auth.login.failure") || !r.Matches("auth.mfa.removed") || r.Matches("data.exported") {
		t.Error("on/prefix matching wrong")
	}
	if d := r.Defaults(); d["n"] != int64(10) {
		t.Errorf("defaults %v", d)
	}
}

// TestParseErrors maps bad rules to the field and line the error must name.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown field", "id: x\nname: X\nkind: match\nseverity: low\ngroup_by: [ip]\nexplain: e\nwindo: 5m\n", "demo.yaml:7: rule x: windo: unknown field"},
		{"bad kind", "id: x\nname: X\nkind: magic\nseverity: low\ngroup_by: [ip]\nexplain: e\n", "demo.yaml:3: rule x: kind:"},
		{"bad severity", "id: x\nname: X\nkind: match\nseverity: huge\ngroup_by: [ip]\nexplain: e\n", "demo.yaml:4: rule x: severity:"},
		{"bad cel", "id: x\nname: X\nkind: match\nseverity: low\ngroup_by: [ip]\nexplain: e\nwhen: event.nope == 1\n", "demo.yaml:7: rule x: when:"},
		{"cel not bool", "id: x\nname: X\nkind: match\nseverity: low\ngroup_by: [ip]\nexplain: e\nwhen: event.action\n", "when: expression must be bool"},
		{"agg var in filter", "id: x\nname: X\nkind: match\nseverity: low\ngroup_by: [ip]\nexplain: e\nwhen: count > 1\n", "rule x: when:"},
		{"bad group", "id: x\nname: X\nkind: match\nseverity: low\ngroup_by: [planet]\nexplain: e\n", "group_by[0]: unknown key"},
		{"no window", "id: x\nname: X\nkind: threshold\nseverity: low\ngroup_by: [ip]\nexplain: e\ncondition: count > 1\n", "window: window is required"},
		{"bad param default", "id: x\nname: X\nkind: match\nseverity: low\ngroup_by: [ip]\nexplain: e\nparams:\n  n: {type: int, default: ten}\n", "demo.yaml:8: rule x: params.n.default: must be an integer"},
		{"param out of range", "id: x\nname: X\nkind: match\nseverity: low\ngroup_by: [ip]\nexplain: e\nparams:\n  n: {type: int, default: 1, min: 2}\n", "params.n.default: must be at least 2"},
		{"sequence one step", "id: x\nname: X\nkind: sequence\nseverity: low\ngroup_by: [actor]\nexplain: e\nwindow: 1h\nsteps:\n  - {name: a, when: 'true'}\n", "steps: a sequence needs at least two steps"},
		{"travel not per actor", "id: x\nname: X\nkind: travel\nseverity: low\ngroup_by: [ip]\nexplain: e\nparams:\n  max_speed_kmh: {type: int, default: 900}\n  min_distance_km: {type: int, default: 500}\n", "group_by must be [actor]"},
		{"missing explain", "id: x\nname: X\nkind: match\nseverity: low\ngroup_by: [ip]\n", "explain: explain is required"},
		{"bad id", "id: X Y\nname: X\nkind: match\nseverity: low\ngroup_by: [ip]\nexplain: e\n", "id: id"},
		{"not a map", "- a\n- b\n", "a rule must be a YAML mapping"},
		{"bad yaml", "id: [\n", "yaml:"},
		{"duplicate", "id: x\nname: X\nkind: match\nseverity: low\ngroup_by: [ip]\nexplain: e\n---\nid: x\nname: X\nkind: match\nseverity: low\ngroup_by: [ip]\nexplain: e\n", "demo.yaml:8: rule x: id: duplicate rule id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rulelang.Parse("demo.yaml", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.want)
			}
			var re *rulelang.Error
			if !errors.As(err, &re) {
				t.Fatalf("error %T is not a *rulelang.Error", err)
			}
		})
	}
}

func TestValidateParams(t *testing.T) {
	rs, err := rulelang.Parse("demo.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	eff, err := rs[0].ValidateParams(map[string]any{"n": float64(20), "w": "1h", "roles": []any{"owner"}})
	if err != nil {
		t.Fatal(err)
	}
	if eff["n"] != int64(20) || eff["roles"].([]string)[0] != "owner" {
		t.Fatalf("effective %v", eff)
	}
	for in, field := range map[string]map[string]any{
		"params.n":     {"n": 1.5},
		"params.w":     {"w": 3},
		"params.roles": {"roles": []any{1}},
		"params.zzz":   {"zzz": 1},
	} {
		_, err := rs[0].ValidateParams(field)
		if audit.ErrorField(err) != in {
			t.Errorf("%v: field %q (%v), want %s", field, audit.ErrorField(err), err, in)
		}
	}
}

func TestParseDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.yml"), []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := rulelang.ParseDir(dir)
	if err == nil || !strings.Contains(err.Error(), "duplicate rule id") {
		t.Fatalf("err = %v", err)
	}
}

// FuzzParse asserts that any input either parses into rules that satisfy
// the checker's invariants or fails with a located *Error — never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("id: x\nname: X\nkind: sequence\nseverity: low\ngroup_by: [actor]\nexplain: e\nwindow: 1h\nsteps:\n  - {name: a, when: 'true'}\n  - {name: b, when: 'risk.score > 3'}\n"))
	f.Add([]byte("id: [\n"))
	if ents, err := os.ReadDir("../../rules"); err == nil {
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".yaml") {
				if b, err := os.ReadFile(filepath.Join("../../rules", e.Name())); err == nil {
					f.Add(b)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		rs, err := rulelang.Parse("fuzz.yaml", data)
		if err != nil {
			if rs != nil {
				t.Fatal("rules returned with an error")
			}
			return
		}
		for _, r := range rs {
			if r.ID == "" || r.Name == "" || r.Explain == "" || len(r.GroupBy) == 0 || r.Severity.Rank() == 0 || r.Suppress <= 0 {
				t.Fatalf("checker let through %+v", r)
			}
			if _, err := r.ValidateParams(nil); err != nil {
				t.Fatalf("defaults do not validate: %v", err)
			}
		}
	})
}
