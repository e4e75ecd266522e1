package query_test

import (
	"os"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/query"
)

// TestDocListsFields keeps docs/query-language.md in step with Fields and
// checks that its examples parse.
func TestDocListsFields(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/query-language.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, f := range query.Fields() {
		if !strings.Contains(doc, "| `"+f.Name+"` |") {
			t.Errorf("docs/query-language.md has no table row for field %s", f.Name)
		}
	}
	// Every fenced block in the hunts section is a query.
	hunts := doc[strings.Index(doc, "## 7. Hunts"):strings.Index(doc, "## 8.")]
	blocks := strings.Split(hunts, "```")
	n := 0
	for i := 1; i < len(blocks); i += 2 {
		src := strings.TrimSpace(blocks[i])
		mustRoundTrip(t, src)
		n++
	}
	if n < 5 {
		t.Errorf("found %d hunt examples, want at least 5", n)
	}
}
