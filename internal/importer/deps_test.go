package importer_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportersKnowOnlyTheDomain checks that every importer package
// depends on nothing of Vigil's but audit and importer itself, so a
// decoder can be used by the CLI and the API alike.
func TestImportersKnowOnlyTheDomain(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test=false", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/vigilhq/vigil/"
	allowed := map[string]bool{mod + "internal/audit": true, mod + "internal/importer": true}
	for _, p := range strings.Fields(string(out)) {
		if !strings.HasPrefix(p, mod) || allowed[p] || strings.HasPrefix(p, mod+"internal/importer/") {
			continue
		}
		t.Errorf("an importer depends on %s", p)
	}
}
