package httpapi

import (
	"net/http"
	"net/netip"
	"strconv"

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
	Note  string `json:"note"`
}

// canonicalAllow validates and canonicalises an allowlist value.
func canonicalAllow(kind, value string) (string, error) {
	switch kind {
	case "ip":
		ip, err := netip.ParseAddr(value)
		if err != nil {
			return "", audit.FieldErrorf("value", "value must be an IP address for kind ip")
		}
		return ip.Unmap().String(), nil
	case "cidr":
		p, err := netip.ParsePrefix(value)
		if err != nil {
			return "", audit.FieldErrorf("value", "value must be a CIDR such as 198.51.100.0/24 for kind cidr")
		}
		return p.Masked().String(), nil
	case "asn":
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil || n == 0 {
			return "", audit.FieldErrorf("value", "value must be an AS number such as 64500 for kind asn")
		}
		return strconv.FormatUint(n, 10), nil
	}
	return "", audit.FieldErrorf("kind", "kind must be ip, cidr or asn")
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
	v, err := canonicalAllow(req.Kind, req.Value)
	if err != nil {
		return err
	}
	if len(req.Note) > 1024 {
		return audit.FieldErrorf("note", "note is at most 1024 bytes")
	}
	e := audit.AllowEntry{Tenant: tenant, Kind: req.Kind, Value: v, Note: req.Note, CreatedAt: a.now().UTC()}
	if err := rs.PutAllowEntry(r.Context(), e); err != nil {
		return err
	}
	a.tuningChanged(r, tenant)
	httpx.WriteJSON(w, http.StatusCreated, e)
	return nil
}

func (a *API) deleteAllow(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	rs, tenant, err := a.tuningScope(r, p)
	if err != nil {
		return err
	}
	kind := r.PathValue("kind")
	v, err := canonicalAllow(kind, r.PathValue("value"))
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
