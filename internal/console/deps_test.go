package console_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestConsoleAndAPIStayApart checks that the console and the JSON API,
// two faces of the same services, never import each other.
func TestConsoleAndAPIStayApart(t *testing.T) {
	for _, c := range []struct{ pkg, banned string }{
		{"github.com/vigilhq/vigil/internal/console", "github.com/vigilhq/vigil/internal/httpapi"},
		{"github.com/vigilhq/vigil/internal/httpapi", "github.com/vigilhq/vigil/internal/console"},
	} {
		out, err := exec.Command("go", "list", "-deps", c.pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", c.pkg, err)
		}
		if slices.Contains(strings.Fields(string(out)), c.banned) {
			t.Errorf("%s imports %s", c.pkg, c.banned)
		}
	}
}
