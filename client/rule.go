package client

import "context"

// Rule is one detection rule as the server runs it for a tenant
// (GET /v1/rules): its identity, its parameter schema with defaults, and
// the tenant's tuning on top. Family is the rule file the rule comes from
// ("credential-stuffing" holds the per-IP, per-/24 and per-ASN variants);
// Source is "builtin" or the operator's rule file.
type Rule struct {
	ID          string      `json:"id"`
	Family      string      `json:"family"`
	Name        string      `json:"name"`
	Kind        string      `json:"kind"`
	Severity    string      `json:"severity"`
	Description string      `json:"description"`
	Source      string      `json:"source"`
	Enabled     bool        `json:"enabled"`
	Params      []RuleParam `json:"params"`
	// Overrides are the tenant's parameter overrides as stored (nil when
	// the tenant keeps the defaults).
	Overrides map[string]any `json:"overrides,omitempty"`
}

// RuleParam is one tunable parameter of a rule: its type (int, float, bool,
// string, strings, ints or duration), bounds, default and the value in
// effect for the tenant (the override, else the default). Durations are
// strings such as "10m".
type RuleParam struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Default any      `json:"default"`
	Value   any      `json:"value"`
	Min     *float64 `json:"min,omitempty"`
	Max     *float64 `json:"max,omitempty"`
	Doc     string   `json:"doc,omitempty"`
}

// RuleList is the answer of GET /v1/rules. Tenant is the tenant whose
// tuning is shown; "" for an operator who named none (defaults only).
type RuleList struct {
	Tenant string `json:"tenant,omitempty"`
	Rules  []Rule `json:"rules"`
}

// Rules lists every detection rule with its defaults and the tenant's
// tuning (scope findings:read).
func (c *Client) Rules(ctx context.Context) (*RuleList, error) {
	var out RuleList
	if err := c.getJSON(ctx, "/v1/rules", c.scope(nil), &out); err != nil {
		return nil, err
	}
	return &out, nil
}
