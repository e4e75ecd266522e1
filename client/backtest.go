package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// BacktestRequest asks what a rule would have raised over the tenant's
// stored history with changed parameters (Params, over the tenant's
// current settings), extra allowlist entries (Allow), or a new definition
// (Rule, in the rule language, whose id is the rule's), compared with the
// tenant's current tuning. Since/Until default to the last 7 days (at most
// 31); Warmup (default 14 days, at most 60) is replayed before Since to
// build profiles and is not reported. Nothing is stored.
type BacktestRequest struct {
	Params  map[string]any  `json:"params,omitempty"`
	Rule    string          `json:"rule,omitempty"`
	Allow   []BacktestAllow `json:"allow,omitempty"`
	Since   time.Time       `json:"since,omitzero"`
	Until   time.Time       `json:"until,omitzero"`
	Warmup  time.Duration   `json:"-"`
	Samples int             `json:"samples,omitempty"`
}

// BacktestAllow is an allowlist entry tried by a backtest: Kind ip, cidr
// or asn.
type BacktestAllow struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// BacktestProgress reports a running backtest.
type BacktestProgress struct {
	Events   int64     `json:"events"`
	Reached  time.Time `json:"reached"`
	Fraction float64   `json:"fraction"`
}

// BacktestSample is one finding a backtest raised.
type BacktestSample struct {
	ID          string    `json:"id"`
	Severity    string    `json:"severity"`
	ActorID     string    `json:"actor_id,omitempty"`
	IP          string    `json:"ip,omitempty"`
	GroupKey    string    `json:"group_key,omitempty"`
	Count       int       `json:"count"`
	FirstSeen   time.Time `json:"first_seen"`
	Explanation string    `json:"explanation"`
}

// BacktestDay is one UTC day: findings of the rule under the current
// tuning and under the proposal, with examples of the proposal's and of
// those it no longer raises.
type BacktestDay struct {
	Day      time.Time        `json:"day"`
	Current  int              `json:"current"`
	Proposed int              `json:"proposed"`
	Samples  []BacktestSample `json:"samples,omitempty"`
	Removed  []BacktestSample `json:"removed,omitempty"`
}

// BacktestResult is a finished backtest. Truncated is set when the replay
// stopped at the server's event bound (days after Reached are missing).
type BacktestResult struct {
	Tenant    string         `json:"tenant"`
	RuleID    string         `json:"rule_id"`
	Since     time.Time      `json:"since"`
	Until     time.Time      `json:"until"`
	Events    int64          `json:"events"`
	Truncated bool           `json:"truncated,omitempty"`
	Reached   time.Time      `json:"reached"`
	Current   int            `json:"current"`
	Proposed  int            `json:"proposed"`
	Days      []BacktestDay  `json:"days"`
	Params    map[string]any `json:"params,omitempty"`
}

// Backtest runs POST /v1/rules/{rule}/backtest (scope findings:read):
// progress, when set, is called about once a second while the server
// replays. It is not retried: a backtest may take minutes; ctx bounds it.
func (c *Client) Backtest(ctx context.Context, rule string, r BacktestRequest, progress func(BacktestProgress)) (*BacktestResult, error) {
	body := struct {
		BacktestRequest
		Tenant string `json:"tenant,omitempty"`
		Warmup string `json:"warmup,omitempty"`
	}{BacktestRequest: r, Tenant: c.tenant}
	if r.Warmup > 0 {
		body.Warmup = r.Warmup.String()
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	path := "/v1/rules/" + url.PathEscape(rule) + "/backtest"
	u := *c.base
	u.Path = c.base.Path + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	hc := *c.http
	hc.Timeout = 0 // a backtest takes as long as it takes; ctx bounds it
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("vigil: POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
		return nil, parseError(resp.StatusCode, resp.Header, msg, c.now())
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var line struct {
			Progress *BacktestProgress `json:"progress"`
			Result   *BacktestResult   `json:"result"`
			Error    *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("vigil: POST %s: malformed line: %w", path, err)
		}
		switch {
		case line.Result != nil:
			return line.Result, nil
		case line.Error != nil:
			return nil, &Error{StatusCode: http.StatusOK, Code: line.Error.Code, Message: line.Error.Message}
		case line.Progress != nil && progress != nil:
			progress(*line.Progress)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("vigil: POST %s: %w", path, err)
	}
	return nil, fmt.Errorf("vigil: POST %s: the answer ended without a result", path)
}

// Suggestion is a tuning change proposed from the findings the tenant
// resolved as benign: Kind "allowlist" (add Allow with POST /v1/allowlist)
// or "threshold" (set Params with PUT /v1/rules/{rule}/settings), with
// the backtest of the change over the last 7 days in Effect.
type Suggestion struct {
	Kind     string         `json:"kind"`
	RuleID   string         `json:"rule_id"`
	Reason   string         `json:"reason"`
	Allow    *BacktestAllow `json:"allow,omitempty"`
	Params   map[string]any `json:"params,omitempty"`
	Findings []string       `json:"findings"`
	Effect   struct {
		Since     time.Time `json:"since"`
		Until     time.Time `json:"until"`
		Current   int       `json:"current"`
		Proposed  int       `json:"proposed"`
		Truncated bool      `json:"truncated,omitempty"`
	} `json:"effect"`
}

// Suggestions returns up to three tuning changes drawn from the findings
// resolved as benign in the last 30 days (GET /v1/rules/suggestions, scope
// findings:read). Each was backtested, which may take a while.
func (c *Client) Suggestions(ctx context.Context) ([]Suggestion, error) {
	var out struct {
		Suggestions []Suggestion `json:"suggestions"`
	}
	if err := c.getJSON(ctx, "/v1/rules/suggestions", c.scope(nil), &out); err != nil {
		return nil, err
	}
	return out.Suggestions, nil
}
