package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/rules"
)

// TestDocsStandAlone checks that README.md and every document under docs/
// stand on their own: no reference to a specification outside the
// repository (../shared), and every relative link names a file or
// directory that exists.
func TestDocsStandAlone(t *testing.T) {
	files := []string{"../../README.md"}
	err := filepath.WalkDir("../../docs", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".md") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(f, "../../")
		if strings.Contains(string(b), "../shared") {
			t.Errorf("%s refers to ../shared, which is not part of the repository", name)
		}
		if strings.Contains(string(b), "PRODUCT.md") {
			t.Errorf("%s refers to PRODUCT.md, which is not part of the repository", name)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") || strings.HasPrefix(target, "#") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), target)); err != nil {
				t.Errorf("%s links to %s, which does not exist", name, m[1])
			}
		}
	}
}

// TestReadmeStartsWithTheTwoCommands keeps the README's first block the two
// commands a new user runs.
func TestReadmeStartsWithTheTwoCommands(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```sh\n")
	block, _, _ := strings.Cut(rest, "```")
	var cmds []string
	for _, l := range strings.Split(strings.TrimSpace(block), "\n") {
		cmd, _, _ := strings.Cut(l, "#")
		if cmd = strings.TrimSpace(cmd); cmd != "" { // a comment continued on its own line
			cmds = append(cmds, cmd)
		}
	}
	if !ok || strings.Join(cmds, "|") != "go run ./cmd/vigil demo|./scripts/test.sh" {
		t.Fatalf("README's first block is %q", block)
	}
}

// TestRulesDocCoversEveryBuiltinRule keeps docs/rules.md's list of built-in
// detections in step with the embedded pack: a section per rule naming its
// severity and every tunable parameter.
func TestRulesDocCoversEveryBuiltinRule(t *testing.T) {
	b, err := os.ReadFile("../../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, r := range rules.MustBuiltin() {
		head := "### " + r.ID + " — "
		i := strings.Index(doc, head)
		if i < 0 {
			t.Errorf("docs/rules.md has no section %q", head)
			continue
		}
		section := doc[i+len(head):]
		if j := strings.Index(section, "\n#"); j >= 0 {
			section = section[:j]
		}
		if !strings.Contains(section, "severity "+string(r.Severity)) {
			t.Errorf("docs/rules.md: %s does not say severity %s", r.ID, r.Severity)
		}
		for _, p := range r.Params {
			if !strings.Contains(section, "`"+p.Name+"`=") {
				t.Errorf("docs/rules.md: %s does not document parameter %s", r.ID, p.Name)
			}
		}
	}
}
