package httpapi

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
)

// tuningScope returns the rule store and the one tenant a tuning request
// addresses (operators name it with ?tenant=).
func (a *API) tuningScope(r *http.Request, p audit.Principal) (audit.RuleStore, string, error) {
	if a.opts.Rules == nil {
		return nil, "", audit.Errorf(audit.EUNAVAILABLE, "rule tuning is not enabled on this server")
	}
	tenant, _, err := tenantScope(p, r.URL.Query().Get("tenant"), false)
	if err != nil {
		return nil, "", err
	}
	return a.opts.Rules, tenant, nil
}

func (a *API) tuningChanged(r *http.Request, tenant string) {
	if a.opts.TuningChanged != nil {
		a.opts.TuningChanged(r.Context(), tenant)
	}
}

func (a *API) listRuleSettings(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	rs, tenant, err := a.tuningScope(r, p)
	if err != nil {
		return err
	}
	out, err := rs.ListRuleSettings(r.Context(), tenant)
	if err != nil {
		return err
	}
	if out == nil {
		out = []audit.RuleSetting{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"settings": out})
	return nil
}

type ruleSettingRequest struct {
	Disabled bool           `json:"disabled"`
	Params   map[string]any `json:"params"`
	Actions  []string       `json:"actions"`
}

// ValidateSetting, when set by the composition root, checks a setting
// against the rule's parameter schema before it is stored.
type ValidateSetting func(s audit.RuleSetting) error

func (a *API) putRuleSetting(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	rs, tenant, err := a.tuningScope(r, p)
	if err != nil {
		return err
	}
	var req ruleSettingRequest
	if err := httpx.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		return err
	}
	s := audit.RuleSetting{Tenant: tenant, RuleID: r.PathValue("rule"), Disabled: req.Disabled, Params: req.Params, UpdatedAt: a.now().UTC()}
	seen := map[string]bool{}
	for _, act := range req.Actions {
		if !slices.Contains(audit.ResponseActionTypes, act) {
			return audit.FieldErrorf("actions", "actions must be among revoke_sessions, force_password_reset, require_mfa, lock_account; not %q", act)
		}
		if !seen[act] {
			seen[act] = true
			s.Actions = append(s.Actions, act)
		}
	}
	if a.opts.ValidateSetting != nil {
		if err := a.opts.ValidateSetting(s); err != nil {
			return err
		}
	}
	if err := rs.PutRuleSetting(r.Context(), s); err != nil {
		return err
	}
	a.tuningChanged(r, tenant)
	httpx.WriteJSON(w, http.StatusOK, s)
	return nil
}

func (a *API) deleteRuleSetting(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	rs, tenant, err := a.tuningScope(r, p)
	if err != nil {
		return err
	}
	if err := rs.DeleteRuleSetting(r.Context(), tenant, r.PathValue("rule")); err != nil {
		return err
	}
	a.tuningChanged(r, tenant)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listAllow(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	rs, tenant, err := a.tuningScope(r, p)
	if err != nil {
		return err
	}
	out, err := rs.ListAllowEntries(r.Context(), tenant)
	if err != nil {
		return err
	}
	if out == nil {
		out = []audit.AllowEntry{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"allowlist": out})
	return nil
}

type allowRequest struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
	Mode  string `json:"mode"`
	Note  string `json:"note"`
}

func (a *API) postAllow(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	rs, tenant, err := a.tuningScope(r, p)
	if err != nil {
		return err
	}
	var req allowRequest
	if err := httpx.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		return err
	}
	v, err := audit.CanonicalAllowValue(req.Kind, req.Value)
	if err != nil {
		return err
	}
	if len(req.Note) > 1024 {
		return audit.FieldErrorf("note", "note is at most 1024 bytes")
	}
	switch req.Mode {
	case "":
		req.Mode = audit.AllowTrust
	case audit.AllowTrust, audit.AllowEgress, audit.AllowNotEgress:
	default:
		return audit.FieldErrorf("mode", "mode must be trust (the default), egress or not_egress")
	}
	e := audit.AllowEntry{Tenant: tenant, Kind: req.Kind, Value: v, Mode: req.Mode, Note: req.Note, CreatedAt: a.now().UTC()}
	if err := rs.PutAllowEntry(r.Context(), e); err != nil {
		return err
	}
	a.tuningChanged(r, tenant)
	httpx.WriteJSON(w, http.StatusCreated, e)
	return nil
}

// listEgresses answers GET /v1/egresses: the tenant's shared egresses as
// detection learned them, with the allowlist entries that tune them;
// ?all=true adds the candidates not (yet) learned.
func (a *API) listEgresses(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	if a.opts.Egresses == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "detection is not enabled on this server")
	}
	q := r.URL.Query()
	for k := range q {
		if k != "tenant" && k != "all" {
			return audit.FieldErrorf(k, "unknown query parameter %q", k)
		}
	}
	tenant, _, err := tenantScope(p, q.Get("tenant"), false)
	if err != nil {
		return err
	}
	all := false
	if s := q.Get("all"); s != "" {
		if all, err = strconv.ParseBool(s); err != nil {
			return audit.FieldErrorf("all", "all must be true or false")
		}
	}
	out := a.opts.Egresses(tenant, all)
	if out == nil {
		out = []audit.Egress{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"egresses": out})
	return nil
}

func (a *API) deleteAllow(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	rs, tenant, err := a.tuningScope(r, p)
	if err != nil {
		return err
	}
	kind := r.PathValue("kind")
	v, err := audit.CanonicalAllowValue(kind, r.PathValue("value"))
	if err != nil {
		return err
	}
	if err := rs.DeleteAllowEntry(r.Context(), tenant, kind, v); err != nil {
		return err
	}
	a.tuningChanged(r, tenant)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// RuleCatalog, when set by the composition root, returns the rules detection
// runs with their defaults (Enabled and parameter values are filled in per
// tenant by the handler).
type RuleCatalog func() []client.Rule

// listRules answers GET /v1/rules: every rule the engine runs with its
// defaults and, for a tenant, the tenant's switches and overrides. An
// operator who names no tenant sees the defaults.
func (a *API) listRules(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	if a.opts.RuleCatalog == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "detection is not enabled on this server")
	}
	tenant, all, err := tenantScope(p, r.URL.Query().Get("tenant"), true)
	if err != nil {
		return err
	}
	settings := map[string]audit.RuleSetting{}
	if !all && a.opts.Rules != nil {
		ss, err := a.opts.Rules.ListRuleSettings(r.Context(), tenant)
		if err != nil {
			return err
		}
		for _, s := range ss {
			settings[s.RuleID] = s
		}
	}
	catalog := a.opts.RuleCatalog()
	out := client.RuleList{Tenant: tenant, Rules: make([]client.Rule, 0, len(catalog))}
	for _, rule := range catalog {
		rule.Enabled = true
		rule.Params = append([]client.RuleParam(nil), rule.Params...)
		for i := range rule.Params {
			rule.Params[i].Value = rule.Params[i].Default
		}
		if s, ok := settings[rule.ID]; ok {
			rule.Enabled = !s.Disabled
			if len(s.Params) > 0 {
				rule.Overrides = s.Params
				for i, prm := range rule.Params {
					if v, ok := s.Params[prm.Name]; ok {
						rule.Params[i].Value = v
					}
				}
			}
		}
		if rule.Params == nil {
			rule.Params = []client.RuleParam{}
		}
		out.Rules = append(out.Rules, rule)
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}
