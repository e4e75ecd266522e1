package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
)

// Backtester runs POST /v1/rules/{rule}/backtest (see internal/backtest).
type Backtester func(ctx context.Context, req audit.BacktestRequest, progress func(audit.BacktestProgress)) (*audit.BacktestResult, error)

// backtestBody is the request body; warmup is a duration such as "336h".
type backtestBody struct {
	Tenant  string             `json:"tenant"`
	Params  map[string]any     `json:"params"`
	Rule    string             `json:"rule"`
	Allow   []audit.AllowEntry `json:"allow"`
	Since   time.Time          `json:"since"`
	Until   time.Time          `json:"until"`
	Warmup  string             `json:"warmup"`
	Samples int                `json:"samples"`
}

// progressEvery is the least time between two progress lines.
const progressEvery = time.Second

// postBacktest replays the tenant's history through the rule as it is and
// as proposed, streaming NDJSON: {"progress":…} lines while it runs, then
// one {"result":…} line (or {"error":…} if it fails after the first
// line). Nothing is stored. The read is audited before it starts.
func (a *API) postBacktest(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	if a.opts.Backtest == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "backtesting needs detection, which is off on this server")
	}
	var body backtestBody
	if err := httpx.DecodeJSON(w, r, maxAdminBody+int64(64<<10), &body); err != nil {
		return err
	}
	tenant, _, err := tenantScope(p, body.Tenant, false)
	if err != nil {
		return err
	}
	req := audit.BacktestRequest{Tenant: tenant, RuleID: r.PathValue("rule"), Params: body.Params, Rule: body.Rule,
		Allow: body.Allow, Since: body.Since, Until: body.Until, Samples: body.Samples}
	for i := range req.Allow {
		req.Allow[i].Tenant = tenant
	}
	if body.Warmup != "" {
		if req.Warmup, err = time.ParseDuration(body.Warmup); err != nil {
			return audit.FieldErrorf("warmup", "warmup must be a duration such as 336h")
		}
	}
	canon, _ := json.Marshal(body)
	if err := a.recordRead(r, p, audit.QueryScope{Tenant: tenant}, readRecord{action: audit.ActionSearch,
		route: "POST /v1/rules/{rule}/backtest", query: string(canon), rows: -1, extra: map[string]any{"rule_id": req.RuleID}}); err != nil {
		return err
	}

	dw := httpx.NewDeadlineWriter(w, a.opts.ExportWriteTimeout)
	enc := json.NewEncoder(dw)
	var (
		mu      sync.Mutex
		started bool
		last    time.Time
	)
	start := func() {
		if !started {
			dw.Header().Set("Content-Type", "application/x-ndjson")
			dw.WriteHeader(http.StatusOK)
			started = true
		}
	}
	progress := func(pr audit.BacktestProgress) {
		mu.Lock()
		defer mu.Unlock()
		if now := time.Now(); now.Sub(last) >= progressEvery {
			last = now
			start()
			_ = enc.Encode(map[string]any{"progress": pr})
			flush(dw)
		}
	}
	res, err := a.opts.Backtest(r.Context(), req, progress)
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		if !started {
			return err // nothing written yet: a normal error response
		}
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "backtest failed", slog.String("request_id", httpx.RequestID(r.Context())),
			slog.String("error", err.Error()))
		code, msg := audit.ErrorCode(err), audit.ErrorMessage(err)
		_ = enc.Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
		return nil
	}
	start()
	if err := enc.Encode(map[string]any{"result": res}); err != nil {
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "backtest answer not delivered", slog.String("request_id", httpx.RequestID(r.Context())),
			slog.String("error", err.Error()))
	}
	return nil
}

// getSuggestions proposes tuning changes from the findings the tenant
// resolved as benign, each with its backtested effect (see
// internal/backtest). The read is audited before it starts.
func (a *API) getSuggestions(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	if a.opts.Suggest == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "tuning suggestions need detection, which is off on this server")
	}
	tenant, _, err := tenantScope(p, r.URL.Query().Get("tenant"), false)
	if err != nil {
		return err
	}
	if err := a.recordRead(r, p, audit.QueryScope{Tenant: tenant}, readRecord{action: audit.ActionSearch,
		route: "GET /v1/rules/suggestions", query: r.URL.RawQuery, rows: -1}); err != nil {
		return err
	}
	ss, err := a.opts.Suggest(r.Context(), tenant)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"suggestions": ss})
	return nil
}
