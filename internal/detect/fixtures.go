package detect

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect/rulelang"
)

// WantFinding is one expected finding of a fixture case (want.json holds a
// JSON array of them; [] for a near miss that must not fire). Only findings
// of the rule named by the case's directory are compared, in the order they
// opened; each is compared in its final form.
type WantFinding struct {
	RuleID   string         `json:"rule_id"`
	GroupKey string         `json:"group_key"`
	Severity audit.Severity `json:"severity,omitempty"`
	Count    int            `json:"count"`
	Evidence []string       `json:"evidence"`
	// Explanation, when set, must be a substring of the explanation.
	Explanation string `json:"explanation,omitempty"`
}

// Tuning is a fixture case's optional tuning.json: the tenant settings and
// allowlist in force while the case runs.
type Tuning struct {
	Tenant   string              `json:"tenant"`
	Settings []audit.RuleSetting `json:"settings,omitempty"`
	Allow    []audit.AllowEntry  `json:"allow,omitempty"`
}

// CaseResult is the outcome of one fixture case.
type CaseResult struct {
	Rule, Case string
	Err        error
	Got        []WantFinding
}

// RunFixtures parses the rules of dir (*.yaml) and runs every fixture case
// under dir/testdata/<rule-id>/<case>/ (events.jsonl, want.json, optional
// tuning.json), writing one line per case to w. It is the harness of
// `vigil rules test DIR` and of the built-in rules' tests.
func RunFixtures(ctx context.Context, dir string, w io.Writer) (passed, failed int, err error) {
	rules, err := rulelang.ParseDir(dir)
	if err != nil {
		return 0, 0, err
	}
	return RunFixturesWith(ctx, rules, filepath.Join(dir, "testdata"), w)
}

// RunFixturesWith runs the fixture cases under testdata against rules.
// Every case runs the whole rule set (rules interact through flags and
// risk), but compares only the findings of its own rule.
func RunFixturesWith(ctx context.Context, rules []*rulelang.Rule, testdata string, w io.Writer) (passed, failed int, err error) {
	results, err := FixtureResults(ctx, rules, testdata)
	if err != nil {
		return 0, 0, err
	}
	for _, r := range results {
		if r.Err != nil {
			failed++
			fmt.Fprintf(w, "FAIL %s/%s: %v\n", r.Rule, r.Case, r.Err)
			continue
		}
		passed++
		fmt.Fprintf(w, "ok   %s/%s\n", r.Rule, r.Case)
	}
	return passed, failed, nil
}

// FixtureResults runs every case and returns one result per case, sorted.
// A case is a directory testdata/<rule-id>/<case>/ holding events.jsonl;
// other directories under testdata are left alone.
func FixtureResults(ctx context.Context, rules []*rulelang.Rule, testdata string) ([]CaseResult, error) {
	ruleDirs, err := os.ReadDir(testdata)
	if err != nil {
		return nil, fmt.Errorf("read fixtures: %w", err)
	}
	var out []CaseResult
	for _, rd := range ruleDirs {
		if !rd.IsDir() {
			continue
		}
		cases, err := os.ReadDir(filepath.Join(testdata, rd.Name()))
		if err != nil {
			return nil, fmt.Errorf("read fixtures: %w", err)
		}
		for _, c := range cases {
			if !c.IsDir() {
				continue
			}
			if _, err := os.Stat(filepath.Join(testdata, rd.Name(), c.Name(), "events.jsonl")); errors.Is(err, os.ErrNotExist) {
				continue // not a case: other test data kept under testdata/ (third-party samples)
			}
			res := CaseResult{Rule: rd.Name(), Case: c.Name()}
			res.Got, res.Err = runCase(ctx, rules, rd.Name(), filepath.Join(testdata, rd.Name(), c.Name()))
			out = append(out, res)
		}
	}
	return out, nil
}

// ReadEvents reads a JSON-lines file of wire-form events, normalising each
// (outcome from the action suffix, UTC times). Blank lines and lines
// starting with '#' are skipped. Errors name the line.
func ReadEvents(r io.Reader) ([]*audit.Event, error) {
	var out []*audit.Event
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), audit.MaxEventBytes*2)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		var ev audit.Event
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if ev.Time.IsZero() {
			return nil, fmt.Errorf("line %d: time is required in fixtures", line)
		}
		if ev.ID == "" {
			return nil, fmt.Errorf("line %d: id is required in fixtures", line)
		}
		ev.Normalize(ev.Time)
		out = append(out, &ev)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return out, nil
}

func runCase(ctx context.Context, rules []*rulelang.Rule, ruleID, dir string) ([]WantFinding, error) {
	if !slices.ContainsFunc(rules, func(r *rulelang.Rule) bool { return r.ID == ruleID }) {
		return nil, fmt.Errorf("no rule %q for this fixture directory", ruleID)
	}
	f, err := os.Open(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	events, err := ReadEvents(f)
	if err != nil {
		return nil, fmt.Errorf("events.jsonl: %w", err)
	}
	eng, err := New(Options{Rules: rules})
	if err != nil {
		return nil, err
	}
	if data, err := os.ReadFile(filepath.Join(dir, "tuning.json")); err == nil {
		var tu Tuning
		if err := json.Unmarshal(data, &tu); err != nil {
			return nil, fmt.Errorf("tuning.json: %w", err)
		}
		if err := eng.SetTenantConfig(tu.Tenant, tu.Settings, tu.Allow); err != nil {
			return nil, fmt.Errorf("tuning.json: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	recs := make([]*audit.Record, len(events))
	for i, ev := range events {
		recs[i] = &audit.Record{Seq: uint64(i + 1), Event: *ev}
	}
	fs, err := eng.Process(ctx, recs)
	if err != nil {
		return nil, err
	}
	rest, err := eng.Flush(ctx)
	if err != nil {
		return nil, err
	}
	fs = append(fs, rest...)
	got := []WantFinding{}
	for _, f := range Latest(fs) {
		if f.RuleID != ruleID {
			continue
		}
		got = append(got, WantFinding{RuleID: f.RuleID, GroupKey: f.GroupKey, Severity: f.Severity, Count: f.Count,
			Evidence: f.Evidence, Explanation: f.Explanation})
	}
	// want.json is read after the run so that a new case without one
	// still reports what the engine found (the -update flag writes it).
	wantData, err := os.ReadFile(filepath.Join(dir, "want.json"))
	if err != nil {
		return got, err
	}
	var want []WantFinding
	dec := json.NewDecoder(bytes.NewReader(wantData))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&want); err != nil {
		return got, fmt.Errorf("want.json: %w", err)
	}
	if err := compareWant(want, got); err != nil {
		return got, err
	}
	return got, nil
}

// Latest folds a stream of finding versions into the final version of
// each, ordered by (FirstSeen, ID) — what a store upserting by id holds.
func Latest(fs []audit.Finding) []audit.Finding {
	idx := map[string]int{}
	var out []audit.Finding
	for _, f := range fs {
		if i, ok := idx[f.ID]; ok {
			out[i] = f
			continue
		}
		idx[f.ID] = len(out)
		out = append(out, f)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].FirstSeen.Equal(out[j].FirstSeen) {
			return out[i].FirstSeen.Before(out[j].FirstSeen)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func compareWant(want, got []WantFinding) error {
	var msgs []string
	if len(want) != len(got) {
		msgs = append(msgs, fmt.Sprintf("want %d findings, got %d", len(want), len(got)))
	}
	for i := 0; i < min(len(want), len(got)); i++ {
		w, g := want[i], got[i]
		p := fmt.Sprintf("finding %d: ", i)
		if w.RuleID != g.RuleID || w.GroupKey != g.GroupKey {
			msgs = append(msgs, fmt.Sprintf("%swant %s %s, got %s %s", p, w.RuleID, w.GroupKey, g.RuleID, g.GroupKey))
		}
		if w.Severity != "" && w.Severity != g.Severity {
			msgs = append(msgs, fmt.Sprintf("%swant severity %s, got %s", p, w.Severity, g.Severity))
		}
		if w.Count != g.Count {
			msgs = append(msgs, fmt.Sprintf("%swant count %d, got %d", p, w.Count, g.Count))
		}
		if !slices.Equal(w.Evidence, g.Evidence) {
			msgs = append(msgs, fmt.Sprintf("%swant evidence %v, got %v", p, w.Evidence, g.Evidence))
		}
		if w.Explanation != "" && !strings.Contains(g.Explanation, w.Explanation) {
			msgs = append(msgs, fmt.Sprintf("%sexplanation %q lacks %q", p, g.Explanation, w.Explanation))
		}
	}
	for i := len(want); i < len(got); i++ {
		msgs = append(msgs, fmt.Sprintf("unexpected finding %s %s: %s", got[i].RuleID, got[i].GroupKey, got[i].Explanation))
	}
	if len(msgs) > 0 {
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}
