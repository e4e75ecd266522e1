// Package rules holds Vigil's built-in account-takeover detection pack
// (docs/rules.md) as embedded YAML rule files, with fixtures per rule under
// testdata/<rule-id>/<case>/, and the opt-in packs under packs/<name>/
// (each with its own testdata/), which a configuration enables by name.
package rules

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/vigilhq/vigil/internal/detect/rulelang"
)

//go:embed *.yaml packs/*/*.yaml
var files embed.FS

// Builtin parses and returns the built-in rules, in file-name order. The
// files are embedded, so an error here is a programmer error caught by the
// package's tests.
func Builtin() ([]*rulelang.Rule, error) { return Load(nil) }

// PackNames lists the opt-in packs, sorted.
func PackNames() []string {
	dirs, _ := fs.ReadDir(files, "packs")
	var out []string
	for _, d := range dirs {
		if d.IsDir() {
			out = append(out, d.Name())
		}
	}
	return out
}

// ErrUnknownPack is returned by Load for a pack name no pack has.
var ErrUnknownPack = errors.New("unknown rule pack")

// Load returns the built-in rules followed by the rules of each named
// opt-in pack. A name no pack has is an error wrapping ErrUnknownPack that
// lists the packs there are; a rule id defined twice is an error.
func Load(packs []string) ([]*rulelang.Rule, error) {
	out, err := parseGlob("*.yaml", "builtin")
	if err != nil {
		return nil, err
	}
	known := PackNames()
	for _, p := range packs {
		if !slices.Contains(known, p) {
			return nil, fmt.Errorf("%w %q (packs: %s)", ErrUnknownPack, p, strings.Join(known, ", "))
		}
		rs, err := parseGlob(path.Join("packs", p, "*.yaml"), path.Join("pack", p))
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	if err := unique(out); err != nil {
		return nil, err
	}
	return out, nil
}

// parseGlob parses the embedded rule files matching pattern, in file-name
// order, naming each file prefix/<name> in errors.
func parseGlob(pattern, prefix string) ([]*rulelang.Rule, error) {
	names, err := fs.Glob(files, pattern)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []*rulelang.Rule
	var errs []error
	for _, n := range names {
		data, err := files.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("read rule file %s: %w", n, err)
		}
		rs, err := rulelang.Parse(path.Join(prefix, path.Base(n)), data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, rs...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func unique(rs []*rulelang.Rule) error {
	seen := map[string]bool{}
	for _, r := range rs {
		if seen[r.ID] {
			return fmt.Errorf("rule %s is defined twice", r.ID)
		}
		seen[r.ID] = true
	}
	return nil
}

// MustBuiltin is Builtin for program start-up: a built-in rule that fails to
// compile is a programmer error, so it panics.
func MustBuiltin() []*rulelang.Rule {
	rs, err := Builtin()
	if err != nil {
		panic("rules: built-in rule pack does not compile: " + err.Error())
	}
	return rs
}
