package app_test

import (
	osexec "os/exec"
	"slices"
	"strings"
	"testing"
)

const modPath = "github.com/vigilhq/vigil/"

// goListDeps returns the packages pkg depends on (itself included),
// without test files; with nonStd only those outside the standard library.
func goListDeps(t *testing.T, pkg string, nonStd bool) []string {
	t.Helper()
	args := []string{"list", "-deps", "-test=false"}
	if nonStd {
		args = append(args, "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}")
	}
	out, err := osexec.Command("go", append(args, pkg)...).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// existing returns the packages of pkgs that exist in the module, so that
// an adapter is checked from the day it lands.
func existing(t *testing.T, pkgs ...string) []string {
	t.Helper()
	out, err := osexec.Command("go", "list", modPath+"...").Output()
	if err != nil {
		t.Fatalf("go list %s...: %v", modPath, err)
	}
	all := strings.Fields(string(out))
	var have []string
	for _, p := range pkgs {
		if slices.Contains(all, modPath+p) {
			have = append(have, modPath+p)
		}
	}
	return have
}

// TestDependencyDirection keeps the shape of docs/ARCHITECTURE: the domain
// imports only the standard library; no storage or stream adapter imports
// the query engine (it reads stores through audit.EventScanner) or another
// adapter; the console and the JSON API never import each other.
func TestDependencyDirection(t *testing.T) {
	t.Parallel()
	if deps := goListDeps(t, modPath+"internal/audit", true); !slices.Equal(deps, []string{modPath + "internal/audit"}) {
		t.Errorf("internal/audit depends on more than the standard library: %v", deps)
	}
	adapters := existing(t, "internal/sqlite", "internal/postgres", "internal/memstream", "internal/natsstream", "internal/natsjs")
	if !slices.Contains(adapters, modPath+"internal/sqlite") {
		t.Fatalf("adapters found: %v; internal/sqlite must be among them", adapters)
	}
	banned := append([]string{modPath + "internal/query"}, adapters...)
	for _, a := range adapters {
		deps := goListDeps(t, a, true)
		for _, b := range banned {
			if b != a && slices.Contains(deps, b) {
				t.Errorf("%s imports %s", strings.TrimPrefix(a, modPath), strings.TrimPrefix(b, modPath))
			}
		}
	}
	faces := existing(t, "internal/httpapi", "internal/console")
	for _, a := range faces {
		deps := goListDeps(t, a, true)
		for _, b := range faces {
			if b != a && slices.Contains(deps, b) {
				t.Errorf("%s imports %s", strings.TrimPrefix(a, modPath), strings.TrimPrefix(b, modPath))
			}
		}
	}
}
