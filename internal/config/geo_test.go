package config_test

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/config"
)

func TestSeveralCityAndASNDatabases(t *testing.T) {
	c := config.Default()
	err := config.Decode([]byte("enrich:\n  city_db: old.mmdb\n  city_dbs: [v4.mmdb, v6.mmdb, old.mmdb]\n  asn_csv: a.csv\n  asn_csvs: [a4.csv, a6.csv]\n"), &c)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Enrich.CityDatabases(); !slices.Equal(got, []string{"old.mmdb", "v4.mmdb", "v6.mmdb"}) {
		t.Errorf("city databases %v: the old key first, then the list, no repeats", got)
	}
	if got := c.Enrich.ASNDatabases(); !slices.Equal(got, []string{"a.csv", "a4.csv", "a6.csv"}) {
		t.Errorf("ASN databases %v", got)
	}
	// The single old key alone still works.
	c = config.Default()
	if err := config.Decode([]byte("enrich:\n  city_db: only.mmdb\n"), &c); err != nil || !slices.Equal(c.Enrich.CityDatabases(), []string{"only.mmdb"}) {
		t.Errorf("city_db alone: %v %v", c.Enrich.CityDatabases(), err)
	}
	// From the environment, comma-separated.
	env := map[string]string{"VIGIL_ENRICH_CITY_DBS": "/geo/v4.mmdb, /geo/v6.mmdb", "VIGIL_ENRICH_ASN_CSVS": "/geo/a4.csv,/geo/a6.csv"}
	c, err = config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Enrich.CityDBs, []string{"/geo/v4.mmdb", "/geo/v6.mmdb"}) || !slices.Equal(c.Enrich.ASNCSVs, []string{"/geo/a4.csv", "/geo/a6.csv"}) {
		t.Errorf("from env: %v %v", c.Enrich.CityDBs, c.Enrich.ASNCSVs)
	}
	c = config.Default()
	c.Enrich.CityDBs = []string{"a.mmdb", " "}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "enrich.city_dbs[1]") {
		t.Errorf("an empty entry: %v", err)
	}
}

// TestFetchGeodataPrintsAValidConfig checks that the configuration
// scripts/fetch-geodata.sh prints uses keys that exist.
func TestFetchGeodataPrintsAValidConfig(t *testing.T) {
	b, err := os.ReadFile("../../scripts/fetch-geodata.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)\n(enrich:\n.*?)\nEOF`).FindSubmatch(b)
	if m == nil {
		t.Fatal("fetch-geodata.sh prints no enrich: block")
	}
	snippet := strings.ReplaceAll(string(m[1]), "$abs", "/data/geo")
	c := config.Default()
	if err := config.Decode([]byte(snippet), &c); err != nil {
		t.Fatalf("the printed configuration does not decode: %v\n%s", err, snippet)
	}
	if len(c.Enrich.CityDatabases()) != 2 || len(c.Enrich.ASNDatabases()) != 2 || c.Validate() != nil {
		t.Fatalf("printed configuration: cities %v, asn %v, %v", c.Enrich.CityDatabases(), c.Enrich.ASNDatabases(), c.Validate())
	}
	for _, key := range regexp.MustCompile(`enrich\.[a-z_.]+`).FindAllString(string(b), -1) {
		if err := c.Set(strings.TrimSuffix(key, "."), "x"); err != nil {
			t.Errorf("fetch-geodata.sh names %s: %v", key, err)
		}
	}
}

// TestEnrichmentDocMatchesDefaults keeps docs/enrichment.md's stated
// defaults equal to the code's.
func TestEnrichmentDocMatchesDefaults(t *testing.T) {
	b, err := os.ReadFile("../../docs/enrichment.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	d := config.Default().Enrich
	for _, want := range []string{
		"`enrich.reload_interval` (default " + d.ReloadInterval.String() + ")",
		"reload_interval: " + d.ReloadInterval.String(),
		"`enrich.budget` (default " + d.Budget.String() + ")",
		"budget: " + d.Budget.String(),
		"cache_size: " + strconv.Itoa(d.CacheSize),
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("docs/enrichment.md does not say %q", want)
		}
	}
}
