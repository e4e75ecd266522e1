package httpapi_test

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/httpapi"
	"github.com/vigilhq/vigil/internal/httpx"
)

// TestOpenAPIMatchesRoutes checks docs/openapi.yaml against the route table
// both ways: every route is documented and every documented operation exists.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	var served []string
	for pattern := range new(httpapi.API).Routes() {
		served = append(served, strings.ReplaceAll(pattern, "...}", "}"))
	}
	slices.Sort(documented)
	slices.Sort(served)
	for _, s := range served {
		if !slices.Contains(documented, s) {
			t.Errorf("route %s is not in docs/openapi.yaml", s)
		}
	}
	for _, d := range documented {
		if !slices.Contains(served, d) {
			t.Errorf("docs/openapi.yaml documents %s, which the server does not serve", d)
		}
	}
}

// TestErrorCatalogueMatchesTable checks docs/api-errors.md against the code
// → status table.
func TestErrorCatalogueMatchesTable(t *testing.T) {
	b, err := os.ReadFile("../../docs/api-errors.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^\| ([a-z_]+) \| (\d{3}) \|`)
	seen := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		status, _ := strconv.Atoi(m[2])
		if got := httpx.Status(m[1]); got != status {
			t.Errorf("docs say %s is %d; the server sends %d", m[1], status, got)
		}
		seen[m[1]] = true
	}
	for _, c := range httpx.Codes() {
		if !seen[c] {
			t.Errorf("code %s is missing from docs/api-errors.md", c)
		}
	}
}
