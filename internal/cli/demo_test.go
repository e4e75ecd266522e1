package cli_test

import (
	"os"
	"strings"
	"testing"
)

// TestDemoExit runs `vigil demo --exit` as `go run ./cmd/vigil demo --exit`
// does, on a tiny world: it prints the report and returns at once, serving
// nothing and leaving nothing in the temporary directory.
func TestDemoExit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	r := run(t, nil, "", "demo", "--exit", "--addr", "127.0.0.1:0", "--users", "15", "--days", "8", "--seed", "7")
	if r.code != 0 || !strings.Contains(r.stdout, "campaigns caught") {
		t.Fatalf("demo --exit: %+v", r)
	}
	for _, unwanted := range []string{"Vigil is serving", "/embed?token=", "Press Ctrl-C"} {
		if strings.Contains(r.stdout, unwanted) {
			t.Errorf("demo --exit offers %q:\n%s", unwanted, r.stdout)
		}
	}
	left, _ := os.ReadDir(tmp)
	for _, e := range left {
		t.Errorf("demo --exit left %s in the temporary directory", e.Name())
	}
}
