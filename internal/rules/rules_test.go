package rules_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/detect"
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
	results, err := detect.FixtureResults(t.Context(), rs, "testdata")
	if err != nil {
		t.Fatal(err)
	}
	cover := map[string][2]int{}
	for _, r := range results {
		c := cover[r.Rule]
		if strings.HasPrefix(r.Case, "positive") {
			c[0]++
		} else {
			c[1]++
		}
		cover[r.Rule] = c
		t.Run(r.Rule+"/"+r.Case, func(t *testing.T) {
			if *update && strings.HasPrefix(r.Case, "positive") {
				b, _ := json.MarshalIndent(r.Got, "", "  ")
				if err := os.WriteFile(filepath.Join("testdata", r.Rule, r.Case, "want.json"), append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if r.Err != nil {
				t.Error(r.Err)
			}
		})
	}
	for _, r := range rs {
		c := cover[r.ID]
		if c[0] < 1 || c[1] < 1 {
			t.Errorf("rule %s has %d positive and %d near-miss fixture cases; want at least one of each", r.ID, c[0], c[1])
		}
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
