package rulelang

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/audit"
)

// MaxFileBytes caps one rule file.
const MaxFileBytes = 1 << 20

// celEnvs is the lazily built, immutable pair of CEL environments shared by
// every parse (building one costs milliseconds).
var celEnvs = newEnvs()

// ruleID is the form of a rule id: lowercase words joined by '-' or '_'.
var ruleID = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

// paramName is the form of a parameter name.
var paramName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// rawRule is the YAML form of a rule.
type rawRule struct {
	ID          string              `yaml:"id"`
	Name        string              `yaml:"name"`
	Description string              `yaml:"description"`
	Kind        string              `yaml:"kind"`
	Severity    string              `yaml:"severity"`
	Risk        *int                `yaml:"risk"`
	On          []string            `yaml:"on"`
	When        string              `yaml:"when"`
	GroupBy     []string            `yaml:"group_by"`
	Window      string              `yaml:"window"`
	Suppress    string              `yaml:"suppress"`
	Condition   string              `yaml:"condition"`
	Distinct    string              `yaml:"distinct"`
	CountIf     string              `yaml:"count_if"`
	Baseline    *rawBaseline        `yaml:"baseline"`
	Steps       []rawStep           `yaml:"steps"`
	Ordered     bool                `yaml:"ordered"`
	MinSteps    int                 `yaml:"min_steps"`
	Values      []string            `yaml:"values"`
	Against     string              `yaml:"against"`
	Escalate    []rawEscalate       `yaml:"escalate"`
	Flag        *rawFlag            `yaml:"flag"`
	Explain     string              `yaml:"explain"`
	Params      map[string]rawParam `yaml:"params"`
}

type rawBaseline struct {
	Alpha  float64 `yaml:"alpha"`
	Warmup int     `yaml:"warmup"`
}

type rawStep struct {
	Name string `yaml:"name"`
	When string `yaml:"when"`
}

type rawEscalate struct {
	When     string `yaml:"when"`
	Severity string `yaml:"severity"`
}

type rawFlag struct {
	Name   string `yaml:"name"`
	TTL    string `yaml:"ttl"`
	Values string `yaml:"values"`
}

type rawParam struct {
	Type    string    `yaml:"type"`
	Default yaml.Node `yaml:"default"`
	Min     *float64  `yaml:"min"`
	Max     *float64  `yaml:"max"`
	Doc     string    `yaml:"doc"`
}

// known keys per mapping, for strict decoding with line numbers.
var (
	ruleKeys = []string{"id", "name", "description", "kind", "severity", "risk", "on", "when", "group_by", "window",
		"suppress", "condition", "distinct", "count_if", "baseline", "steps", "ordered", "min_steps", "values",
		"against", "escalate", "flag", "explain", "params"}
	baselineKeys = []string{"alpha", "warmup"}
	stepKeys     = []string{"name", "when"}
	escalateKeys = []string{"when", "severity"}
	flagKeys     = []string{"name", "ttl", "values"}
	paramKeys    = []string{"type", "default", "min", "max", "doc"}
)

// Error is a rule-file error naming the file, line, rule and field.
type Error struct {
	File  string
	Line  int
	Rule  string
	Field string
	Msg   string
}

// Error implements error: "file:line: rule id: field: message".
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %s: ", e.Rule)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, "%s: ", e.Field)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// parser carries the location of the rule being checked.
type parser struct {
	file  string
	rule  string
	lines map[string]int // dotted field → line
	base  int
	errs  []error
}

func (p *parser) errf(field, format string, args ...any) {
	line := p.lines[field]
	if line == 0 {
		// fall back to the parent field, then the rule's first line.
		f := field
		for line == 0 && strings.Contains(f, ".") {
			f = f[:strings.LastIndexByte(f, '.')]
			line = p.lines[f]
		}
		if line == 0 {
			line = p.base
		}
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Rule: p.rule, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Parse reads one rule file (one or more YAML documents, one rule each),
// checks every rule and compiles its expressions. file names the source in
// errors. All problems are reported, joined, each naming file, line, rule and
// field. Parse does no I/O.
func Parse(file string, data []byte) ([]*Rule, error) {
	if len(data) > MaxFileBytes {
		return nil, &Error{File: file, Msg: fmt.Sprintf("file is %d bytes; at most %d are allowed", len(data), MaxFileBytes)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []*Rule
	var errs []error
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, &Error{File: file, Msg: "yaml: " + strings.TrimPrefix(err.Error(), "yaml: ")})
			break
		}
		if len(doc.Content) == 0 {
			continue
		}
		r, err := parseDoc(file, doc.Content[0])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := checkUnique(out); err != nil {
		return nil, err
	}
	return out, nil
}

// ParseDir parses every *.yaml and *.yml file of dir (not recursing), in
// name order, and checks that rule ids are unique across files.
func ParseDir(dir string) ([]*Rule, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read rule dir: %w", err)
	}
	var out []*Rule
	var errs []error
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || (!strings.HasSuffix(n, ".yaml") && !strings.HasSuffix(n, ".yml")) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			errs = append(errs, fmt.Errorf("read rule file: %w", err))
			continue
		}
		rs, err := Parse(filepath.Join(dir, n), data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, rs...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := checkUnique(out); err != nil {
		return nil, err
	}
	return out, nil
}

func checkUnique(rs []*Rule) error {
	seen := map[string]*Rule{}
	var errs []error
	for _, r := range rs {
		if o, ok := seen[r.ID]; ok {
			errs = append(errs, &Error{File: r.File, Line: r.Line, Rule: r.ID, Field: "id",
				Msg: fmt.Sprintf("duplicate rule id (first defined at %s:%d)", o.File, o.Line)})
			continue
		}
		seen[r.ID] = r
	}
	return errors.Join(errs...)
}

// collectLines walks a mapping node recording the line of each key under
// prefix, and reports keys not in allowed.
func (p *parser) collectLines(n *yaml.Node, prefix string, allowed []string) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		field := k.Value
		if prefix != "" {
			field = prefix + "." + k.Value
		}
		p.lines[field] = k.Line
		if allowed != nil && !slices.Contains(allowed, k.Value) {
			p.errf(field, "unknown field")
		}
	}
}

func (p *parser) child(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func parseDoc(file string, n *yaml.Node) (*Rule, error) {
	p := &parser{file: file, lines: map[string]int{}, base: n.Line}
	if n.Kind != yaml.MappingNode {
		return nil, &Error{File: file, Line: n.Line, Msg: "a rule must be a YAML mapping"}
	}
	if id := p.child(n, "id"); id != nil {
		p.rule = id.Value
	}
	p.collectLines(n, "", ruleKeys)
	if b := p.child(n, "baseline"); b != nil {
		p.collectLines(b, "baseline", baselineKeys)
	}
	if f := p.child(n, "flag"); f != nil {
		p.collectLines(f, "flag", flagKeys)
	}
	if s := p.child(n, "steps"); s != nil && s.Kind == yaml.SequenceNode {
		for i, c := range s.Content {
			p.lines[fmt.Sprintf("steps[%d]", i)] = c.Line
			p.collectLines(c, fmt.Sprintf("steps[%d]", i), stepKeys)
		}
	}
	if s := p.child(n, "escalate"); s != nil && s.Kind == yaml.SequenceNode {
		for i, c := range s.Content {
			p.lines[fmt.Sprintf("escalate[%d]", i)] = c.Line
			p.collectLines(c, fmt.Sprintf("escalate[%d]", i), escalateKeys)
		}
	}
	if ps := p.child(n, "params"); ps != nil && ps.Kind == yaml.MappingNode {
		p.collectLines(ps, "params", nil)
		for i := 0; i+1 < len(ps.Content); i += 2 {
			p.collectLines(ps.Content[i+1], "params."+ps.Content[i].Value, paramKeys)
		}
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	var raw rawRule
	if err := n.Decode(&raw); err != nil {
		var te *yaml.TypeError
		msg := err.Error()
		if errors.As(err, &te) && len(te.Errors) > 0 {
			msg = te.Errors[0]
		}
		return nil, &Error{File: file, Line: n.Line, Rule: p.rule, Msg: strings.TrimPrefix(msg, "yaml: ")}
	}
	r := p.check(&raw)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	r.File, r.Line = file, n.Line
	return r, nil
}

func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(d, "%d", &n); err != nil || fmt.Sprint(n) != d {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func validSeverity(s string) bool {
	return audit.Severity(s).Rank() > 0
}

// check validates a decoded rule and compiles it.
func (p *parser) check(raw *rawRule) *Rule {
	fenv, cenv, err := celEnvs.get()
	if err != nil {
		p.errf("", "cel environment: %v", err)
		return nil
	}
	r := &Rule{ID: raw.ID, Name: raw.Name, Description: raw.Description, Kind: Kind(raw.Kind),
		Severity: audit.Severity(raw.Severity), On: raw.On, GroupBy: raw.GroupBy, Ordered: raw.Ordered,
		MinSteps: raw.MinSteps, Values: raw.Values, Against: raw.Against, Explain: raw.Explain}
	switch {
	case raw.ID == "":
		p.errf("id", "id is required")
	case !ruleID.MatchString(raw.ID):
		p.errf("id", "id %q must be 1-64 lowercase letters, digits, '-' or '_', starting with a letter", clip(raw.ID))
	}
	if raw.Name == "" {
		p.errf("name", "name is required")
	}
	if !slices.Contains(Kinds, r.Kind) {
		p.errf("kind", "kind %q must be one of match, threshold, distinct, sequence, new_value, travel, rare_time", clip(raw.Kind))
	}
	if !validSeverity(raw.Severity) {
		p.errf("severity", "severity %q must be low, medium, high or critical", clip(raw.Severity))
	}
	r.Risk = map[audit.Severity]int{audit.SeverityLow: 25, audit.SeverityMedium: 50, audit.SeverityHigh: 75, audit.SeverityCritical: 90}[r.Severity]
	if raw.Risk != nil {
		if *raw.Risk < 0 || *raw.Risk > 100 {
			p.errf("risk", "risk must be within [0, 100]")
		}
		r.Risk = *raw.Risk
	}
	if raw.Explain == "" {
		p.errf("explain", "explain is required: one sentence that says why the finding fired")
	}
	for i, a := range raw.On {
		name := strings.TrimSuffix(a, ".*")
		if !audit.ValidAction(name) && !(strings.HasSuffix(a, ".*") && ruleID.MatchString(name)) {
			p.errf(fmt.Sprintf("on[%d]", i), "%q is not an action name or prefix like auth.*", clip(a))
		}
	}
	if len(raw.GroupBy) == 0 {
		p.errf("group_by", "group_by is required (one or more of %s)", strings.Join(GroupKeys, ", "))
	}
	for i, k := range raw.GroupBy {
		if !slices.Contains(GroupKeys, k) {
			p.errf(fmt.Sprintf("group_by[%d]", i), "unknown key %q; use one of %s", clip(k), strings.Join(GroupKeys, ", "))
		}
	}
	if slices.Contains(raw.GroupBy, KeyInstallation) && len(raw.GroupBy) > 1 {
		p.errf("group_by", "installation cannot be combined with other keys")
	}
	if r.Window, err = parseDuration(raw.Window); err != nil || r.Window < 0 {
		p.errf("window", "window %q is not a duration like 10m", clip(raw.Window))
	}
	if r.Suppress, err = parseDuration(raw.Suppress); err != nil || r.Suppress < 0 {
		p.errf("suppress", "suppress %q is not a duration like 1h", clip(raw.Suppress))
	}
	if r.Suppress == 0 {
		r.Suppress = time.Hour
	}
	needsWindow := r.Kind == KindThreshold || r.Kind == KindDistinct || r.Kind == KindSequence
	if needsWindow && r.Window <= 0 {
		p.errf("window", "window is required for %s rules", r.Kind)
	}
	if r.Window > 31*24*time.Hour {
		p.errf("window", "window is longer than 31d")
	}

	// Parameters come first: expressions may use them.
	names := make([]string, 0, len(raw.Params))
	for name := range raw.Params {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		rp := raw.Params[name]
		field := "params." + name
		if !paramName.MatchString(name) {
			p.errf(field, "parameter name must be lowercase letters, digits and '_'")
			continue
		}
		prm := Param{Name: name, Type: rp.Type, Min: rp.Min, Max: rp.Max, Doc: rp.Doc}
		if rp.Default.Kind == 0 {
			p.errf(field+".default", "default is required")
			continue
		}
		var v any
		if err := rp.Default.Decode(&v); err != nil {
			p.errf(field+".default", "%v", err)
			continue
		}
		d, err := prm.coerce(v)
		if err != nil {
			p.errf(field+".default", "%v", err)
			continue
		}
		prm.Default = d
		r.Params = append(r.Params, prm)
	}

	expr := func(field, src string, cond bool, want *cel.Type) *Expr {
		if src == "" {
			return nil
		}
		env := fenv
		if cond {
			env = cenv
		}
		x, err := compile(env, src, want)
		if err != nil {
			p.errf(field, "%s", strings.ReplaceAll(err.Error(), "\n", " "))
			return nil
		}
		return x
	}
	r.When = expr("when", raw.When, false, cel.BoolType)
	r.Condition = expr("condition", raw.Condition, true, cel.BoolType)
	r.CountIf = expr("count_if", raw.CountIf, false, cel.BoolType)
	r.Distinct = expr("distinct", raw.Distinct, false, nil)
	for i, e := range raw.Escalate {
		f := fmt.Sprintf("escalate[%d]", i)
		if !validSeverity(e.Severity) {
			p.errf(f+".severity", "severity %q must be low, medium, high or critical", clip(e.Severity))
		}
		if e.When == "" {
			p.errf(f+".when", "when is required")
		}
		r.Escalate = append(r.Escalate, Escalation{When: expr(f+".when", e.When, true, cel.BoolType), Severity: audit.Severity(e.Severity)})
	}
	if raw.Flag != nil {
		fl := &Flag{Name: raw.Flag.Name, Values: raw.Flag.Values}
		if !paramName.MatchString(fl.Name) {
			p.errf("flag.name", "flag name must be lowercase letters, digits and '_'")
		}
		if fl.Values == "" {
			fl.Values = "group"
		}
		if fl.Values != "group" && fl.Values != "distinct" {
			p.errf("flag.values", "values must be group or distinct")
		}
		if fl.Values == "distinct" && r.Kind != KindDistinct {
			p.errf("flag.values", "values: distinct needs a distinct rule")
		}
		if fl.TTL, err = parseDuration(raw.Flag.TTL); err != nil || fl.TTL <= 0 {
			p.errf("flag.ttl", "ttl %q is not a positive duration", clip(raw.Flag.TTL))
		}
		r.Flag = fl
	}

	switch r.Kind {
	case KindDistinct:
		if raw.Distinct == "" {
			p.errf("distinct", "distinct is required for distinct rules: the value to count, e.g. event.actor.id")
		}
		fallthrough
	case KindThreshold:
		if raw.Condition == "" {
			p.errf("condition", "condition is required for %s rules, e.g. count >= params.min_count", r.Kind)
		}
		if raw.Baseline != nil {
			b := &Baseline{Alpha: raw.Baseline.Alpha, Warmup: raw.Baseline.Warmup}
			if b.Alpha <= 0 || b.Alpha > 1 {
				p.errf("baseline.alpha", "alpha must be within (0, 1]")
			}
			if b.Warmup < 0 || b.Warmup > 10000 {
				p.errf("baseline.warmup", "warmup must be within [0, 10000]")
			}
			r.Baseline = b
		}
	case KindSequence:
		if len(raw.Steps) < 2 {
			p.errf("steps", "a sequence needs at least two steps")
		}
		if len(raw.Steps) > 16 {
			p.errf("steps", "a sequence has at most 16 steps")
		}
		for i, s := range raw.Steps {
			f := fmt.Sprintf("steps[%d]", i)
			if s.Name == "" {
				p.errf(f+".name", "name is required")
			}
			if s.When == "" {
				p.errf(f+".when", "when is required")
			}
			st := Step{Name: s.Name, When: expr(f+".when", s.When, false, cel.BoolType)}
			if st.When != nil {
				st.Actions = st.When.actions
			}
			r.Steps = append(r.Steps, st)
		}
		if r.Ordered && r.MinSteps != 0 {
			p.errf("min_steps", "min_steps applies to unordered sequences only")
		}
		if !r.Ordered {
			if r.MinSteps == 0 {
				r.MinSteps = len(raw.Steps)
			}
			if r.MinSteps < 2 || r.MinSteps > len(raw.Steps) {
				p.errf("min_steps", "min_steps must be within [2, %d]", len(raw.Steps))
			}
		}
	case KindNewValue:
		if len(raw.Values) == 0 {
			p.errf("values", "values is required: some of %s", strings.Join(NewValueFields, ", "))
		}
		for i, v := range raw.Values {
			if !slices.Contains(NewValueFields, v) {
				p.errf(fmt.Sprintf("values[%d]", i), "unknown value %q; use %s", clip(v), strings.Join(NewValueFields, ", "))
			}
		}
		p.requireParams(r, "min_logins", "min_days", "far_km")
		p.requireActor(r)
	case KindTravel:
		if r.Against == "" {
			r.Against = "last_login"
		}
		if r.Against != "last_login" && r.Against != "other_session" {
			p.errf("against", "against must be last_login or other_session")
		}
		p.requireParams(r, "max_speed_kmh", "min_distance_km")
		p.requireActor(r)
	case KindRareTime:
		p.requireParams(r, "min_events", "max_probability")
		p.requireActor(r)
	}
	if r.Kind != KindSequence && len(raw.Steps) > 0 {
		p.errf("steps", "steps apply to sequence rules only")
	}
	if r.Kind != KindDistinct && raw.Distinct != "" {
		p.errf("distinct", "distinct applies to distinct rules only")
	}
	if r.Kind != KindNewValue && len(raw.Values) > 0 {
		p.errf("values", "values apply to new_value rules only")
	}
	return r
}

func (p *parser) requireParams(r *Rule, names ...string) {
	for _, n := range names {
		prm := r.Param(n)
		if prm == nil {
			p.errf("params", "%s rules need parameter %s", r.Kind, n)
			continue
		}
		if prm.Type != ParamInt && prm.Type != ParamFloat {
			p.errf("params."+n+".type", "%s must be int or float", n)
		}
	}
}

func (p *parser) requireActor(r *Rule) {
	if !slices.Equal(r.GroupBy, []string{KeyActor}) {
		p.errf("group_by", "%s rules are kept per actor: group_by must be [actor]", r.Kind)
	}
}

// coerce converts a decoded YAML or JSON value to the parameter's type:
// int → int64, float → float64, strings → []string, ints → []int64,
// duration → time.Duration.
func (p *Param) coerce(v any) (any, error) {
	switch p.Type {
	case ParamInt:
		f, ok := number(v)
		if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return nil, fmt.Errorf("must be an integer, not %s", show(v))
		}
		if err := p.bounds(f); err != nil {
			return nil, err
		}
		return int64(f), nil
	case ParamFloat:
		f, ok := number(v)
		if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("must be a number, not %s", show(v))
		}
		if err := p.bounds(f); err != nil {
			return nil, err
		}
		return f, nil
	case ParamBool:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("must be true or false, not %s", show(v))
		}
		return b, nil
	case ParamString:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("must be a string, not %s", show(v))
		}
		return s, nil
	case ParamDuration:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("must be a duration like 10m, not %s", show(v))
		}
		d, err := parseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("must be a positive duration like 10m, not %q", clip(s))
		}
		if err := p.bounds(d.Seconds()); err != nil {
			return nil, err
		}
		return d, nil
	case ParamStrings, ParamInts:
		var items []any
		switch l := v.(type) {
		case []any:
			items = l
		case []string:
			for _, s := range l {
				items = append(items, s)
			}
		default:
			return nil, fmt.Errorf("must be a list, not %s", show(v))
		}
		if len(items) > 1000 {
			return nil, fmt.Errorf("has %d items; at most 1000 are allowed", len(items))
		}
		if p.Type == ParamStrings {
			out := make([]string, 0, len(items))
			for i, it := range items {
				s, ok := it.(string)
				if !ok {
					return nil, fmt.Errorf("item %d must be a string, not %s", i, show(it))
				}
				out = append(out, s)
			}
			return out, nil
		}
		out := make([]int64, 0, len(items))
		for i, it := range items {
			f, ok := number(it)
			if !ok || f != math.Trunc(f) {
				return nil, fmt.Errorf("item %d must be an integer, not %s", i, show(it))
			}
			out = append(out, int64(f))
		}
		return out, nil
	}
	return nil, fmt.Errorf("type %q must be one of int, float, bool, string, strings, ints, duration", clip(p.Type))
}

func (p *Param) bounds(f float64) error {
	if p.Min != nil && f < *p.Min {
		return fmt.Errorf("must be at least %v, not %v", *p.Min, f)
	}
	if p.Max != nil && f > *p.Max {
		return fmt.Errorf("must be at most %v, not %v", *p.Max, f)
	}
	return nil
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func show(v any) string {
	if v == nil {
		return "null"
	}
	return clip(fmt.Sprintf("%T %v", v, v))
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// ValidateParams checks a tenant's parameter overrides against the rule's
// schema and returns the effective parameters (defaults overlaid with the
// overrides). Errors are EINVALID *audit.Error naming the field
// ("params.min_accounts"). Values decoded from JSON (float64 numbers, []any
// lists) are accepted.
func (r *Rule) ValidateParams(over map[string]any) (map[string]any, error) {
	eff := r.Defaults()
	keys := make([]string, 0, len(over))
	for k := range over {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		prm := r.Param(k)
		if prm == nil {
			known := make([]string, 0, len(r.Params))
			for _, p := range r.Params {
				known = append(known, p.Name)
			}
			return nil, audit.FieldErrorf("params."+k, "rule %s has no parameter %q (it has: %s)", r.ID, clip(k), strings.Join(known, ", "))
		}
		v, err := prm.coerce(over[k])
		if err != nil {
			return nil, audit.FieldErrorf("params."+k, "rule %s: params.%s %v", r.ID, k, err)
		}
		eff[k] = v
	}
	return eff, nil
}
