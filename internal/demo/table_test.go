package demo_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/demo"
)

const (
	tableBegin = "<!-- demo-table:begin (written by go test ./internal/demo -run TestDemoGoals -update) -->"
	tableEnd   = "<!-- demo-table:end -->"
)

// writeQualityTable rewrites the demo table of docs/detection-quality.md
// from the goal runs: per campaign kind and seed, the own-family rules that
// caught it and their highest severity; then the false alarms and the
// benign population.
func writeQualityTable(t *testing.T, reps []*demo.Report) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", tableBegin)
	b.WriteString("| campaign |")
	for _, s := range goalSeeds {
		fmt.Fprintf(&b, " seed %d |", s)
	}
	b.WriteString("\n|---|")
	for range goalSeeds {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for i, c := range reps[0].Campaigns {
		fmt.Fprintf(&b, "| %s |", c.Name)
		for _, r := range reps {
			rc := r.Campaigns[i]
			if !rc.Caught {
				b.WriteString(" **missed** |")
				continue
			}
			fmt.Fprintf(&b, " %s (%s) |", strings.Join(rc.Rules, ", "), rc.Severity)
		}
		b.WriteString("\n")
	}
	row := func(name string, f func(r *demo.Report) string) {
		fmt.Fprintf(&b, "| %s |", name)
		for _, r := range reps {
			fmt.Fprintf(&b, " %s |", f(r))
		}
		b.WriteString("\n")
	}
	row("campaigns caught (medium+, own family)", func(r *demo.Report) string {
		return fmt.Sprintf("%.0f%%", r.CaughtShare()*100)
	})
	row("benign events (users)", func(r *demo.Report) string { return fmt.Sprintf("%d (%d)", r.BenignEvents, r.BenignUsers) })
	row("false alarms, any severity", func(r *demo.Report) string {
		var parts []string
		total := 0
		for rule, n := range r.FalseAlarms {
			parts = append(parts, fmt.Sprintf("%s %d", rule, n))
			total += n
		}
		sort.Strings(parts)
		if total == 0 {
			return "0"
		}
		return fmt.Sprintf("%d: %s", total, strings.Join(parts, ", "))
	})
	row("false alarms per 10,000 benign events", func(r *demo.Report) string { return fmt.Sprintf("%.2f", r.FalseAlarmsPer10k()) })
	row("false alarms above low", func(r *demo.Report) string { return fmt.Sprint(r.FalseAboveLow()) })
	var kinds []string
	for k := range reps[0].HardCases {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		row("benign "+k+" (users)", func(r *demo.Report) string { return fmt.Sprint(r.HardCases[k]) })
	}
	fmt.Fprintf(&b, "\n%s", tableEnd)

	path := filepath.Join("..", "..", "docs", "detection-quality.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i, j := strings.Index(string(doc), tableBegin), strings.Index(string(doc), tableEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the demo table markers", path)
	}
	out := string(doc[:i]) + b.String() + string(doc[j+len(tableEnd):])
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
}
