package audit

import "time"

// BacktestRequest asks what one rule would have raised over a tenant's
// stored history with changed parameters, extra allowlist entries, or a
// new definition, compared with what the tenant's current tuning raises
// over the same events. Nothing is stored: no findings, no state.
type BacktestRequest struct {
	Tenant string `json:"tenant,omitempty"`
	RuleID string `json:"-"`
	// Params override the rule's parameters (over the tenant's current
	// settings); nil keeps them.
	Params map[string]any `json:"params,omitempty"`
	// Rule is a rule definition in the rule language (YAML) whose id must
	// be RuleID: a new rule, or a changed version of an existing one.
	Rule string `json:"rule,omitempty"`
	// Allow are allowlist entries added for the proposal (an egress a
	// suggestion would trust).
	Allow []AllowEntry `json:"allow,omitempty"`
	// Since and Until bound the days reported; the history before Since
	// (Warmup long) only builds profiles and windows.
	Since  time.Time     `json:"since"`
	Until  time.Time     `json:"until"`
	Warmup time.Duration `json:"-"`
	// Samples is how many example findings each day reports.
	Samples int `json:"samples,omitempty"`
}

// BacktestProgress reports a running backtest: events read so far and the
// event time reached.
type BacktestProgress struct {
	Events   int64     `json:"events"`
	Reached  time.Time `json:"reached"`
	Fraction float64   `json:"fraction"` // of the time range, 0–1
}

// BacktestSample is one finding a backtest raised.
type BacktestSample struct {
	ID          string    `json:"id"`
	Severity    Severity  `json:"severity"`
	ActorID     string    `json:"actor_id,omitempty"`
	IP          string    `json:"ip,omitempty"`
	GroupKey    string    `json:"group_key,omitempty"`
	Count       int       `json:"count"`
	FirstSeen   time.Time `json:"first_seen"`
	Explanation string    `json:"explanation"`
}

// BacktestDay is one UTC day of a backtest: how many findings of the rule
// the current tuning and the proposal raise (by the day of their first
// evidence), examples of the proposal's, and examples of findings the
// proposal no longer raises.
type BacktestDay struct {
	Day      time.Time        `json:"day"`
	Current  int              `json:"current"`
	Proposed int              `json:"proposed"`
	Samples  []BacktestSample `json:"samples,omitempty"`
	Removed  []BacktestSample `json:"removed,omitempty"`
}

// BacktestResult is a finished backtest.
type BacktestResult struct {
	Tenant string    `json:"tenant"`
	RuleID string    `json:"rule_id"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	// Events is how many stored events were replayed (warm-up included).
	Events int64 `json:"events"`
	// Truncated is set when the replay stopped at the event bound; the
	// days after Reached are not reported.
	Truncated bool          `json:"truncated,omitempty"`
	Reached   time.Time     `json:"reached"`
	Current   int           `json:"current"`
	Proposed  int           `json:"proposed"`
	Days      []BacktestDay `json:"days"`
	// Params are the parameters the proposal ran with (defaults, the
	// tenant's settings, then the request's overrides).
	Params map[string]any `json:"params,omitempty"`
}

// Suggestion is one proposed tuning change drawn from the findings the
// tenant resolved as benign, with its backtested effect.
type Suggestion struct {
	Kind   string `json:"kind"` // "allowlist" or "threshold"
	RuleID string `json:"rule_id"`
	// Reason says which benign findings it comes from.
	Reason string `json:"reason"`
	// Allow or Params is the change to make (PUT /v1/rules/{rule}/settings
	// or POST /v1/allowlist).
	Allow  *AllowEntry    `json:"allow,omitempty"`
	Params map[string]any `json:"params,omitempty"`
	// Findings are some of the benign findings it would have spared.
	Findings []string `json:"findings"`
	// Effect is the backtest of the change over the last 7 days.
	Effect SuggestionEffect `json:"effect"`
}

// SuggestionEffect is a suggestion's backtest summary.
type SuggestionEffect struct {
	Since     time.Time `json:"since"`
	Until     time.Time `json:"until"`
	Current   int       `json:"current"`
	Proposed  int       `json:"proposed"`
	Truncated bool      `json:"truncated,omitempty"`
}
