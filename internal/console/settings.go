package console

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/access"
	"github.com/vigilhq/vigil/internal/alert"
	"github.com/vigilhq/vigil/internal/audit"
)

// ruleRow is one rule on the settings page with the tenant's tuning.
type ruleRow struct {
	RuleInfo
	Disabled bool
	Params   []paramRow
}

type paramRow struct {
	RuleParam
	Value string // the tenant's value, "" for the default
}

func (c *Console) settingsPage(w http.ResponseWriter, r *http.Request, rq *request) error {
	if rq.viewer != nil {
		return audit.Errorf(audit.EFORBIDDEN, "settings are for API-key sessions; a viewer link cannot change them")
	}
	ctx := r.Context()
	data := map[string]any{"Title": "Settings", "Done": r.URL.Query().Get("done"), "NewSecret": ""}
	if c.opts.Rules != nil {
		settings, err := c.opts.Rules.ListRuleSettings(ctx, rq.tenant)
		if err != nil {
			return err
		}
		var rows []ruleRow
		for _, ri := range c.opts.RuleCatalog {
			row := ruleRow{RuleInfo: ri}
			i := slices.IndexFunc(settings, func(s audit.RuleSetting) bool { return s.RuleID == ri.ID })
			for _, p := range ri.Params {
				pr := paramRow{RuleParam: p}
				if i >= 0 {
					if v, ok := settings[i].Params[p.Name]; ok {
						b, _ := json.Marshal(v)
						pr.Value = strings.Trim(string(b), `"`)
					}
				}
				row.Params = append(row.Params, pr)
			}
			if i >= 0 {
				row.Disabled = settings[i].Disabled
			}
			rows = append(rows, row)
		}
		allow, err := c.opts.Rules.ListAllowEntries(ctx, rq.tenant)
		if err != nil {
			return err
		}
		data["RuleRows"], data["Allow"] = rows, allow
	}
	egressRows := 0
	if c.opts.Egresses != nil && rq.p.Has(audit.ScopeFindingsRead) {
		all := r.URL.Query().Get("candidates") == "1"
		gs := c.opts.Egresses(rq.tenant, all)
		data["EgressTotal"], data["EgressAll"], data["EgressOn"] = len(gs), all, true
		if len(gs) > maxEgressRows {
			gs = gs[:maxEgressRows]
		}
		data["Egresses"], egressRows = gs, len(gs)
	}
	if rq.p.Has(audit.ScopeAdmin) {
		keys, err := c.opts.Keys.ListKeys(ctx, rq.tenant)
		if err != nil {
			return err
		}
		data["Keys"], data["Scopes"] = keys, audit.AllScopes
		if c.opts.Viewers != nil {
			vts, err := c.opts.Viewers.List(ctx, rq.tenant)
			if err != nil {
				return err
			}
			data["Viewers"] = vts
		}
		data["Admin"] = true
		if c.opts.Webhooks != nil {
			hooks, err := c.webhookRows(ctx, rq)
			if err != nil {
				return err
			}
			data["Webhooks"], data["WebhooksOn"] = hooks, true
			data["Formats"], data["Changes"], data["Kinds"] = alert.Formats, audit.AllChanges, []string{audit.KindIncident, audit.KindFinding, audit.KindAction}
			data["Severities"] = []audit.Severity{audit.SeverityLow, audit.SeverityMedium, audit.SeverityHigh, audit.SeverityCritical}
		}
	}
	t, err := c.opts.Tenants.GetTenant(ctx, rq.tenant)
	if err != nil {
		return err
	}
	data["TenantInfo"], data["Modes"] = t, allowModes
	// The egress table shows addresses the tenant's users came from: the
	// view is read-audited like the log's pages.
	c.show(w, r, rq, "settings", "settings", egressRows, data)
	return nil
}

func (c *Console) need(rq *request, s audit.Scope) error {
	if rq.viewer != nil || !rq.p.Has(s) {
		return audit.Errorf(audit.EFORBIDDEN, "this session lacks the %s scope", s)
	}
	return nil
}

func (c *Console) tuned(r *http.Request, rq *request) {
	if c.opts.TuningChanged != nil {
		c.opts.TuningChanged(r.Context(), rq.tenant)
	}
}

// settingsDone sends the browser back to the settings section it changed.
func settingsDone(w http.ResponseWriter, r *http.Request, what string) {
	anchor := map[string]string{"rule": "rules", "allowlist": "allowlist", "egress": "egresses", "key": "keys",
		"viewer": "viewers", "webhook": "webhooks", "retention": "retention"}[what]
	http.Redirect(w, r, "/settings?done="+what+"#"+anchor, http.StatusSeeOther)
}

// putRule switches a rule on or off and sets its parameters; an empty
// parameter field means the rule's default.
func (c *Console) putRule(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := c.need(rq, audit.ScopeRulesWrite); err != nil {
		return err
	}
	if c.opts.Rules == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "rule tuning is not enabled on this server")
	}
	id := r.PathValue("rule")
	i := slices.IndexFunc(c.opts.RuleCatalog, func(ri RuleInfo) bool { return ri.ID == id })
	if i < 0 {
		return audit.Errorf(audit.ENOTFOUND, "rule %q not found", id)
	}
	s := audit.RuleSetting{Tenant: rq.tenant, RuleID: id, Disabled: r.PostFormValue("enabled") != "on", UpdatedAt: c.now().UTC()}
	for _, p := range c.opts.RuleCatalog[i].Params {
		v := strings.TrimSpace(r.PostFormValue("param." + p.Name))
		if v == "" {
			continue
		}
		if s.Params == nil {
			s.Params = map[string]any{}
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			s.Params[p.Name] = f
		} else if b, err := strconv.ParseBool(v); err == nil {
			s.Params[p.Name] = b
		} else {
			s.Params[p.Name] = v
		}
	}
	if c.opts.ValidateSetting != nil {
		if err := c.opts.ValidateSetting(s); err != nil {
			return err
		}
	}
	if err := c.opts.Rules.PutRuleSetting(r.Context(), s); err != nil {
		return err
	}
	c.tuned(r, rq)
	settingsDone(w, r, "rule")
	return nil
}

func (c *Console) addAllow(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := c.need(rq, audit.ScopeRulesWrite); err != nil {
		return err
	}
	if c.opts.Rules == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "rule tuning is not enabled on this server")
	}
	kind := r.PostFormValue("kind")
	v, err := audit.CanonicalAllowValue(kind, strings.TrimSpace(r.PostFormValue("value")))
	if err != nil {
		return err
	}
	note := strings.TrimSpace(r.PostFormValue("note"))
	if len(note) > 1024 {
		return audit.FieldErrorf("note", "note is at most 1024 bytes")
	}
	mode, err := allowMode(r.PostFormValue("mode"))
	if err != nil {
		return err
	}
	if err := c.opts.Rules.PutAllowEntry(r.Context(), audit.AllowEntry{Tenant: rq.tenant, Kind: kind, Value: v, Mode: mode, Note: note, CreatedAt: c.now().UTC()}); err != nil {
		return err
	}
	c.tuned(r, rq)
	settingsDone(w, r, "allowlist")
	return nil
}

func (c *Console) deleteAllow(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := c.need(rq, audit.ScopeRulesWrite); err != nil {
		return err
	}
	if c.opts.Rules == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "rule tuning is not enabled on this server")
	}
	kind := r.PostFormValue("kind")
	v, err := audit.CanonicalAllowValue(kind, r.PostFormValue("value"))
	if err != nil {
		return err
	}
	if err := c.opts.Rules.DeleteAllowEntry(r.Context(), rq.tenant, kind, v); err != nil {
		return err
	}
	c.tuned(r, rq)
	settingsDone(w, r, "allowlist")
	return nil
}

// createKey mints a tenant API key and shows its secret once, on the page
// that answers the POST (never in a URL).
func (c *Console) createKey(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := c.need(rq, audit.ScopeAdmin); err != nil {
		return err
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	if len(name) > 256 {
		return audit.FieldErrorf("name", "name is at most 256 bytes")
	}
	var scopes []audit.Scope
	for _, s := range audit.AllScopes {
		if r.PostFormValue("scope."+string(s)) == "on" {
			scopes = append(scopes, s)
		}
	}
	if len(scopes) == 0 {
		return audit.FieldErrorf("scopes", "choose at least one scope")
	}
	k, full, err := audit.MintKey(r.Context(), c.opts.Keys, rq.tenant, name, scopes, c.now().UTC())
	if err != nil {
		return err
	}
	c.render(w, r, rq, http.StatusCreated, "secret", map[string]any{"Title": "New API key", "What": "Created API key " + k.ID, "Secret": full})
	return nil
}

func (c *Console) revokeKey(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := c.need(rq, audit.ScopeAdmin); err != nil {
		return err
	}
	if err := c.opts.Keys.RevokeKey(r.Context(), rq.tenant, r.PathValue("id"), c.now().UTC()); err != nil {
		return err
	}
	settingsDone(w, r, "key")
	return nil
}

// createViewer mints a viewer link for this tenant.
func (c *Console) createViewer(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := c.need(rq, audit.ScopeAdmin); err != nil {
		return err
	}
	if c.opts.Viewers == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "viewer links are not enabled on this server")
	}
	ttl, err := time.ParseDuration(r.PostFormValue("ttl"))
	if err != nil {
		return audit.FieldErrorf("ttl", "ttl must be a duration such as 15m or 8h")
	}
	spec := access.ViewerSpec{Tenant: rq.tenant, Name: strings.TrimSpace(r.PostFormValue("name")), TTL: ttl,
		ReadOnly: r.PostFormValue("read_only") == "on", Actor: strings.TrimSpace(r.PostFormValue("actor")), CreatedBy: rq.p.KeyID}
	for _, f := range []struct {
		dst *[]string
		key string
	}{{&spec.Actions, "actions"}, {&spec.FrameAncestors, "frame_ancestors"}} {
		for _, s := range strings.FieldsFunc(r.PostFormValue(f.key), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
			*f.dst = append(*f.dst, s)
		}
	}
	t, tok, err := c.opts.Viewers.Mint(r.Context(), spec)
	if err != nil {
		return err
	}
	c.render(w, r, rq, http.StatusCreated, "secret", map[string]any{"Title": "New viewer link",
		"What": "Created viewer link " + t.ID + ", valid until " + t.ExpiresAt.Format(time.RFC3339), "Secret": "/embed?token=" + tok, "Link": true})
	return nil
}

func (c *Console) revokeViewer(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := c.need(rq, audit.ScopeAdmin); err != nil {
		return err
	}
	if c.opts.Viewers == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "viewer links are not enabled on this server")
	}
	if err := c.opts.Viewers.Revoke(r.Context(), rq.tenant, r.PathValue("id")); err != nil {
		return err
	}
	settingsDone(w, r, "viewer")
	return nil
}

// setRetention changes the tenant's retention; operators only.
func (c *Console) setRetention(w http.ResponseWriter, r *http.Request, rq *request) error {
	if !rq.operator {
		return audit.Errorf(audit.EFORBIDDEN, "only operators change retention")
	}
	days, err := strconv.Atoi(r.PostFormValue("retention_days"))
	if err != nil || days < 1 || days > 36500 {
		return audit.FieldErrorf("retention_days", "retention_days must be between 1 and 36500")
	}
	t, err := c.opts.Tenants.GetTenant(r.Context(), rq.tenant)
	if err != nil {
		return err
	}
	t.RetentionDays = days
	if err := c.opts.Tenants.UpdateTenant(r.Context(), *t); err != nil {
		return err
	}
	settingsDone(w, r, "retention")
	return nil
}
