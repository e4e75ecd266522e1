package rules_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/detect/rulelang"
	"github.com/vigilhq/vigil/internal/rules"
)

var update = flag.Bool("update", false, "rewrite want.json of positive fixture cases from the engine's output, and the RBA table of docs/detection-quality.md")

func TestBuiltinCompiles(t *testing.T) {
	rs, err := rules.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) < 15 {
		t.Fatalf("built-in pack has %d rules; the product promises at least 15", len(rs))
	}
	for _, r := range rs {
		if r.Description == "" || r.Explain == "" {
			t.Errorf("rule %s lacks a description or explanation", r.ID)
		}
	}
}

// TestFixtures runs every built-in rule's fixture cases: each rule has a
// positive case and at least one near miss that must not fire.
func TestFixtures(t *testing.T) {
	rs, err := rules.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	cover := runFixtures(t, rs, "testdata", false)
	for _, r := range rs {
		c := cover[r.ID]
		if c[0] < 1 || c[1] < 1 {
			t.Errorf("rule %s has %d positive and %d near-miss fixture cases; want at least one of each", r.ID, c[0], c[1])
		}
	}
}

// TestPackFixtures runs the fixture cases of every opt-in pack
// (packs/<name>/testdata) with the built-ins and the pack: each rule of a
// pack has a positive case and at least one near miss.
func TestPackFixtures(t *testing.T) {
	builtin := map[string]bool{}
	for _, r := range rules.MustBuiltin() {
		builtin[r.ID] = true
	}
	names := rules.PackNames()
	if len(names) == 0 {
		t.Fatal("no opt-in packs")
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			rs, err := rules.Load([]string{name})
			if err != nil {
				t.Fatal(err)
			}
			cover := runFixtures(t, rs, filepath.Join("packs", name, "testdata"), true)
			for _, r := range rs {
				if builtin[r.ID] {
					continue
				}
				if r.Description == "" || r.Explain == "" {
					t.Errorf("rule %s lacks a description or explanation", r.ID)
				}
				if c := cover[r.ID]; c[0] < 1 || c[1] < 1 {
					t.Errorf("rule %s has %d positive and %d near-miss fixture cases; want at least one of each", r.ID, c[0], c[1])
				}
			}
		})
	}
}

// runFixtures runs the fixture cases under dir against rs, one subtest a
// case (with -update, positive cases rewrite their want.json), and returns
// per rule how many positive and near-miss cases it has. positiveFires
// also fails a positive case that raises no finding.
func runFixtures(t *testing.T, rs []*rulelang.Rule, dir string, positiveFires bool) map[string][2]int {
	t.Helper()
	results, err := detect.FixtureResults(t.Context(), rs, dir)
	if err != nil {
		t.Fatal(err)
	}
	cover := map[string][2]int{}
	for _, r := range results {
		positive := strings.HasPrefix(r.Case, "positive")
		c := cover[r.Rule]
		if positive {
			c[0]++
		} else {
			c[1]++
		}
		cover[r.Rule] = c
		t.Run(r.Rule+"/"+r.Case, func(t *testing.T) {
			if *update && positive {
				b, _ := json.MarshalIndent(r.Got, "", "  ")
				if err := os.WriteFile(filepath.Join(dir, r.Rule, r.Case, "want.json"), append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if r.Err != nil {
				t.Error(r.Err)
			}
			if positiveFires && positive && len(r.Got) == 0 {
				t.Error("a positive case raises no finding")
			}
		})
	}
	return cover
}

// TestLoad checks that packs are off by default and that an unknown pack
// is refused by name.
func TestLoad(t *testing.T) {
	base, err := rules.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	builtin := rules.MustBuiltin()
	if len(base) != len(builtin) {
		t.Fatalf("Load(nil) gave %d rules, the built-ins are %d", len(base), len(builtin))
	}
	with, err := rules.Load([]string{"vendor-alerts"})
	if err != nil {
		t.Fatal(err)
	}
	if len(with) <= len(builtin) || with[0].ID != builtin[0].ID {
		t.Fatalf("Load(vendor-alerts) gave %d rules; want the %d built-ins first, then the pack", len(with), len(builtin))
	}
	_, err = rules.Load([]string{"vendor-signals"})
	if !errors.Is(err, rules.ErrUnknownPack) || !strings.Contains(err.Error(), `"vendor-signals"`) || !strings.Contains(err.Error(), "vendor-alerts") {
		t.Fatalf("Load(vendor-signals) = %v; want ErrUnknownPack naming it and the packs there are", err)
	}
}

// TestRunFixturesOutput checks the harness used by `vigil rules test`.
func TestRunFixturesOutput(t *testing.T) {
	var buf bytes.Buffer
	passed, failed, err := detect.RunFixtures(t.Context(), ".", &buf)
	if err != nil {
		t.Fatal(err)
	}
	if failed != 0 || passed == 0 {
		t.Fatalf("passed %d failed %d:\n%s", passed, failed, buf.String())
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != passed || !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "ok   credential-stuffing/") }) {
		t.Fatalf("unexpected output:\n%s", buf.String())
	}
}
