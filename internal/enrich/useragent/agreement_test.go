package useragent_test

import (
	"compress/gzip"
	"io"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/enrich/useragent"
)

type uapCase struct {
	UA         string  `yaml:"user_agent_string"`
	Family     string  `yaml:"family"`
	Major      *string `yaml:"major"`
	Minor      *string `yaml:"minor"`
	Patch      *string `yaml:"patch"`
	PatchMinor *string `yaml:"patch_minor"`
	Brand      *string `yaml:"brand"`
	Model      *string `yaml:"model"`
}

func readCases(t *testing.T, name string) []uapCase {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(name, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r = gz
	}
	var doc struct {
		Cases []uapCase `yaml:"test_cases"`
	}
	if err := yaml.NewDecoder(r).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc.Cases
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// agreement counts matching values per field and reports them.
type agreement struct {
	t      *testing.T
	fields []string
	ok     map[string]int
	total  int
	shown  int
}

func (a *agreement) check(ua string, field, want, got string) {
	if want == got {
		a.ok[field]++
		return
	}
	if a.shown < 5 && testing.Verbose() {
		a.shown++
		a.t.Logf("%s: want %q, got %q for %q", field, want, got, ua)
	}
}

func (a *agreement) report(min map[string]float64) {
	for _, f := range a.fields {
		pct := 100 * float64(a.ok[f]) / float64(a.total)
		a.t.Logf("agreement %-12s %6d / %6d = %7.3f%%", f, a.ok[f], a.total, pct)
		if pct < min[f] {
			a.t.Errorf("%s agreement %.3f%% is below %.1f%%", f, pct, min[f])
		}
	}
}

// TestUAPAgreement measures Vigil's parser against the ua-parser test
// suites and fails when browser family agreement drops below 99%.
// Run with -v to see the per-field figures.
func TestUAPAgreement(t *testing.T) {
	p, err := useragent.New(useragent.Options{CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("test_ua", func(t *testing.T) {
		a := &agreement{t: t, fields: []string{"family", "major", "minor", "patch"}, ok: map[string]int{}}
		for _, c := range readCases(t, "test_ua.yaml") {
			r := p.Details(c.UA)
			a.total++
			a.check(c.UA, "family", c.Family, r.Family)
			a.check(c.UA, "major", str(c.Major), r.Major)
			a.check(c.UA, "minor", str(c.Minor), r.Minor)
			a.check(c.UA, "patch", str(c.Patch), r.Patch)
		}
		a.report(map[string]float64{"family": 99, "major": 99, "minor": 99, "patch": 99})
	})
	t.Run("test_os", func(t *testing.T) {
		a := &agreement{t: t, fields: []string{"family", "major", "minor", "patch", "patch_minor"}, ok: map[string]int{}}
		for _, c := range readCases(t, "test_os.yaml") {
			r := p.Details(c.UA)
			a.total++
			a.check(c.UA, "family", c.Family, r.OSFamily)
			a.check(c.UA, "major", str(c.Major), r.OSMajor)
			a.check(c.UA, "minor", str(c.Minor), r.OSMinor)
			a.check(c.UA, "patch", str(c.Patch), r.OSPatch)
			a.check(c.UA, "patch_minor", str(c.PatchMinor), r.OSPatchMinor)
		}
		a.report(map[string]float64{"family": 99, "major": 99, "minor": 99, "patch": 99, "patch_minor": 99})
	})
	t.Run("test_device", func(t *testing.T) {
		if testing.Short() {
			t.Skip("16,000 cases")
		}
		a := &agreement{t: t, fields: []string{"family", "brand", "model"}, ok: map[string]int{}}
		spider, spiderCrawler := 0, 0
		for _, c := range readCases(t, "test_device.yaml.gz") {
			r := p.Details(c.UA)
			a.total++
			a.check(c.UA, "family", c.Family, r.DeviceFamily)
			a.check(c.UA, "brand", str(c.Brand), r.DeviceBrand)
			a.check(c.UA, "model", str(c.Model), r.DeviceModel)
			if c.Family == "Spider" {
				spider++
				if cl := p.Parse(c.UA).Class; cl == "crawler" || cl == "scripted" || cl == "headless" {
					spiderCrawler++
				}
			}
		}
		a.report(map[string]float64{"family": 99, "brand": 99, "model": 99})
		t.Logf("Spider cases classed crawler/scripted/headless: %d / %d", spiderCrawler, spider)
		if spiderCrawler < spider*95/100 {
			t.Errorf("only %d of %d Spider cases are classed automated", spiderCrawler, spider)
		}
	})
}
