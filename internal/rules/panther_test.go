package rules_test

// Panther's multi-event Okta scenarios (testdata/panther/scenarios,
// Apache-2.0, see its README): each record goes through the Okta importer,
// the ingest validation and the default enrichers (as in
// panther_peers_test.go), the pack runs over the whole stream and we
// compare with what the scenario is about. Panther's single-event rule
// tests are in panther_peers_test.go.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/detect/rulelang"
	"github.com/vigilhq/vigil/internal/importer/okta"
	"github.com/vigilhq/vigil/internal/rules"
)

// runPack runs events (sorted by time) through a fresh engine with the
// built-in pack and returns the final findings.
func runPack(t *testing.T, events []audit.Event) []audit.Finding {
	t.Helper()
	return runRules(t, rules.MustBuiltin(), events)
}

// runRules runs events (sorted by time) through a fresh engine with rs and
// returns the final findings.
func runRules(t *testing.T, rs []*rulelang.Rule, events []audit.Event) []audit.Finding {
	t.Helper()
	e, err := detect.New(detect.Options{Rules: rs})
	if err != nil {
		t.Fatal(err)
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].Time.Before(events[j].Time) })
	recs := make([]*audit.Record, len(events))
	for i := range events {
		if events[i].ID == "" {
			events[i].ID = fmt.Sprintf("p%03d", i+1)
		}
		events[i].Normalize(events[i].Time)
		recs[i] = &audit.Record{Seq: uint64(i + 1), Event: events[i]}
	}
	fs, err := e.Process(t.Context(), recs)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := e.Flush(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return detect.Latest(append(fs, rest...))
}

func ruleIDs(fs []audit.Finding) []string {
	var out []string
	for _, f := range fs {
		if !slices.Contains(out, f.RuleID) {
			out = append(out, f.RuleID)
		}
	}
	sort.Strings(out)
	return out
}

// TestPantherScenarios runs the pack over Panther's Okta scenario streams.
func TestPantherScenarios(t *testing.T) {
	tests := []struct {
		dir string
		// want are our rules that must fire, exactly, with why.
		want []string
		why  string
	}{
		{"okta-add-administrator", []string{"new-location", "privilege-escalation"},
			"five logins from San Francisco/Austin; nine failures from four countries in nine minutes (below our " +
				"brute-force bar of 10, and Panther's BruteForceByUser threshold of 20), then a success from France: " +
				"new country (25) + recent failures (20) = risk 45; the next day the account grants Organization " +
				"administrator to an outside gmail account: privilege escalation 23h46m after the risky login"},
		{"compromised-root-creds", nil,
			"the Okta part is two failures a day apart for a misspelt user, then the real user's login from home: " +
				"nothing to detect there; the compromise itself is in CloudTrail, outside our catalog"},
	}
	p := peerPipeline(t)
	for _, tc := range tests {
		t.Run(tc.dir, func(t *testing.T) {
			files, err := filepath.Glob(filepath.Join("testdata", "panther", "scenarios", tc.dir, "*.yml"))
			if err != nil || len(files) == 0 {
				t.Fatalf("no scenario files: %v", err)
			}
			var events []audit.Event
			skipped := 0
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				var doc struct {
					Logs []map[string]any `yaml:"Logs"`
				}
				if err := yaml.Unmarshal(data, &doc); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				for _, l := range doc.Logs {
					raw, err := json.Marshal(l)
					if err != nil {
						t.Fatal(err)
					}
					ev, err := importPeer(okta.Decode, raw)
					if err != nil {
						t.Fatalf("%s: %v", f, err)
					}
					if !audit.InCatalog(ev.Action) {
						skipped++
					}
					_ = p.Enrich(t.Context(), ev)
					events = append(events, *ev)
				}
			}
			fs := runPack(t, events)
			for _, f := range fs {
				t.Logf("%s (%s): %s", f.RuleID, f.Severity, f.Explanation)
			}
			t.Logf("%d events imported, %d of them outside the catalog; expected: %s", len(events), skipped, tc.why)
			if got := ruleIDs(fs); !slices.Equal(got, tc.want) {
				t.Errorf("our rules fired %v, want %v", got, tc.want)
			}
		})
	}
}

func dedup(s []string) []string {
	sort.Strings(s)
	return slices.Compact(s)
}
