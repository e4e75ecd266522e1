// Package rules holds Vigil's built-in account-takeover detection pack
// (docs/rules.md) as embedded YAML rule files, with fixtures per rule under
// testdata/<rule-id>/<case>/.
package rules

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"

	"github.com/vigilhq/vigil/internal/detect/rulelang"
)

//go:embed *.yaml
var files embed.FS

// Builtin parses and returns the built-in rules, in file-name order. The
// files are embedded, so an error here is a programmer error caught by the
// package's tests.
func Builtin() ([]*rulelang.Rule, error) {
	names, err := fs.Glob(files, "*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []*rulelang.Rule
	var errs []error
	for _, n := range names {
		data, err := files.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("read built-in rule %s: %w", n, err)
		}
		rs, err := rulelang.Parse(path.Join("builtin", n), data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, rs...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, r := range out {
		if seen[r.ID] {
			return nil, fmt.Errorf("built-in rule %s is defined twice", r.ID)
		}
		seen[r.ID] = true
	}
	return out, nil
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
