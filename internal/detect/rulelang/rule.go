package rulelang

import (
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// Kind is what a rule computes over its group key's events.
type Kind string

// Rule kinds.
const (
	// KindMatch fires on every event that passes the filter and condition.
	KindMatch Kind = "match"
	// KindThreshold counts events per group key in a sliding event-time
	// window, optionally against a trailing baseline.
	KindThreshold Kind = "threshold"
	// KindDistinct counts distinct values of an expression per group key in
	// the window.
	KindDistinct Kind = "distinct"
	// KindSequence fires when steps happen for one group key within the
	// window, in order (ordered) or at least min_steps of them in any order.
	KindSequence Kind = "sequence"
	// KindNewValue fires when a successful login shows a value never seen in
	// an established actor's profile (country, far city, ASN, device).
	KindNewValue Kind = "new_value"
	// KindTravel fires when the speed between two places of one actor is
	// impossible.
	KindTravel Kind = "travel"
	// KindRareTime fires on activity at an hour-of-week that is rare in the
	// actor's smoothed history.
	KindRareTime Kind = "rare_time"
)

// Kinds lists every rule kind.
var Kinds = []Kind{KindMatch, KindThreshold, KindDistinct, KindSequence, KindNewValue, KindTravel, KindRareTime}

// Group-by keys.
const (
	KeyIP           = "ip"           // the source address
	KeyIP24         = "ip24"         // its /24 (IPv4) or /48 (IPv6)
	KeyASN          = "asn"          // its autonomous system
	KeyActor        = "actor"        // actor.id
	KeyTarget       = "target"       // target.id
	KeySession      = "session"      // context.session_id
	KeyTenant       = "tenant"       // the whole tenant
	KeyInstallation = "installation" // every tenant together (operator findings)
)

// GroupKeys lists the valid group-by keys.
var GroupKeys = []string{KeyIP, KeyIP24, KeyASN, KeyActor, KeyTarget, KeySession, KeyTenant, KeyInstallation}

// NewValueFields are the values a new_value rule can watch.
var NewValueFields = []string{"country", "city", "asn", "device"}

// Rule is one checked, compiled rule. It is immutable after Parse and safe
// to share between engines and goroutines.
type Rule struct {
	ID          string
	Name        string
	Description string
	Kind        Kind
	Severity    audit.Severity
	// On lists the actions the rule looks at: exact names or prefixes
	// ending in ".*". Empty means every action.
	On []string
	// When filters events (CEL, see VarNames).
	When *Expr
	// GroupBy is the composite key the rule's state and findings are kept by.
	GroupBy []string
	// Window is the event-time span of aggregation or sequence.
	Window time.Duration
	// Suppress is how long after its last update a finding keeps absorbing
	// new hits for the same key instead of a new finding opening.
	Suppress time.Duration
	// Condition decides whether the aggregate fires (CEL over VarNames and
	// AggVarNames). Absent means "always" for match and fixed semantics for
	// the profile kinds.
	Condition *Expr
	// Distinct is the value counted by a distinct rule.
	Distinct *Expr
	// CountIf marks the window events counted as "matched". Distinct values
	// are counted over every window event whose Distinct value is non-empty
	// (so an expression can return "" to leave an event out).
	CountIf *Expr
	// Baseline enables a trailing baseline on a threshold/distinct rule.
	Baseline *Baseline
	// Steps, Ordered and MinSteps describe a sequence.
	Steps    []Step
	Ordered  bool
	MinSteps int
	// Values are the profile fields of a new_value rule.
	Values []string
	// Against chooses the comparison place of a travel rule: "last_login"
	// (default) or "other_session" (latest activity of another session).
	Against string
	// Escalate raises the severity when its condition holds.
	Escalate []Escalation
	// Flag marks sources while the rule's finding is open (see Flag).
	Flag *Flag
	// Explain is the one-sentence explanation template; {name} is replaced
	// by the finding's fact of that name.
	Explain string
	// Params is the rule's tunable parameter schema with defaults.
	Params []Param
	// Risk is the score a finding of this rule carries (0–100).
	Risk int
	// File and Line locate the rule's definition.
	File string
	Line int
}

// Step is one step of a sequence rule.
type Step struct {
	Name string
	When *Expr
	// Actions are the only actions When can hold for, when that follows
	// from the expression (event.action == "x", event.action in [...],
	// combined with && and ||); nil means any action. The engine skips
	// the step for other actions without evaluating it.
	Actions []string
}

// CanMatch reports whether the step can hold for action.
func (s *Step) CanMatch(action string) bool {
	if s.Actions == nil {
		return true
	}
	for _, a := range s.Actions {
		if a == action {
			return true
		}
	}
	return false
}

// Baseline configures a trailing baseline: the window count is compared
// with an exponentially weighted mean of past windows' counts.
type Baseline struct {
	// Alpha is the EWMA weight of each closed window (0 < Alpha ≤ 1).
	Alpha float64
	// Warmup is how many windows must close before the baseline is trusted;
	// until then the baseline variable is -1.
	Warmup int
}

// Escalation raises a finding's severity while When holds.
type Escalation struct {
	When     *Expr
	Severity audit.Severity
}

// Flag makes the engine remember "sources" named by an open finding for
// TTL, so that other rules can ask `"name" in flags` about an event from
// them. Values is "group" (the finding's group key) or "distinct" (each
// distinct value of a distinct rule, e.g. every IP of a distributed attack).
type Flag struct {
	Name   string
	TTL    time.Duration
	Values string
}

// Param types.
const (
	ParamInt      = "int"
	ParamFloat    = "float"
	ParamBool     = "bool"
	ParamString   = "string"
	ParamStrings  = "strings"
	ParamInts     = "ints"
	ParamDuration = "duration"
)

// Param is one tunable parameter of a rule.
type Param struct {
	Name    string
	Type    string
	Default any
	Min     *float64
	Max     *float64
	Doc     string
}

// Matches reports whether the rule looks at action (its On list).
func (r *Rule) Matches(action string) bool {
	if len(r.On) == 0 {
		return true
	}
	for _, a := range r.On {
		if a == action {
			return true
		}
		if n := len(a); n > 2 && a[n-2:] == ".*" && len(action) > n-2 && action[:n-1] == a[:n-1] {
			return true
		}
	}
	return false
}

// Param returns the named parameter schema, or nil.
func (r *Rule) Param(name string) *Param {
	for i := range r.Params {
		if r.Params[i].Name == name {
			return &r.Params[i]
		}
	}
	return nil
}

// Defaults returns a fresh map of the default parameter values.
func (r *Rule) Defaults() map[string]any {
	m := make(map[string]any, len(r.Params))
	for _, p := range r.Params {
		m[p.Name] = p.Default
	}
	return m
}
