package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.RuleStore = (*Store)(nil)

// ListRuleSettings returns tenant's rule settings ordered by rule id.
func (s *Store) ListRuleSettings(ctx context.Context, tenant string) ([]audit.RuleSetting, error) {
	rows, err := s.pool.Query(ctx, `SELECT rule_id, disabled, params, actions, updated_ns FROM rule_settings
		WHERE tenant = $1 ORDER BY rule_id`, tenant)
	if err != nil {
		return nil, translate(err, "list rule settings")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (audit.RuleSetting, error) {
		st := audit.RuleSetting{Tenant: tenant}
		var params []byte
		var actions []string
		var updated int64
		if err := r.Scan(&st.RuleID, &st.Disabled, &params, &actions, &updated); err != nil {
			return st, err
		}
		if len(actions) > 0 {
			st.Actions = actions
		}
		if len(params) > 0 {
			if err := json.Unmarshal(params, &st.Params); err != nil {
				return st, fmt.Errorf("decode params of rule %s: %w", st.RuleID, err)
			}
		}
		st.UpdatedAt = fromNanos(updated)
		return st, nil
	})
	if err != nil {
		return nil, translate(err, "list rule settings")
	}
	return out, nil
}

// PutRuleSetting replaces the setting of (Tenant, RuleID).
func (s *Store) PutRuleSetting(ctx context.Context, st audit.RuleSetting) error {
	if st.Tenant == "" || st.RuleID == "" {
		return invalid("rule_id", "rule setting needs a tenant and a rule id")
	}
	var params []byte
	if st.Params != nil {
		var err error
		if params, err = json.Marshal(st.Params); err != nil {
			return invalid("params", "rule params: %v", err)
		}
	}
	for _, a := range st.Actions {
		if !slices.Contains(audit.ResponseActionTypes, a) {
			return invalid("actions", "action %q must be one of revoke_sessions, force_password_reset, require_mfa, lock_account", a)
		}
	}
	actions := st.Actions
	if actions == nil {
		actions = []string{}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO rule_settings (tenant, rule_id, disabled, params, actions, updated_ns)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant, rule_id) DO UPDATE SET
		disabled = excluded.disabled, params = excluded.params, actions = excluded.actions, updated_ns = excluded.updated_ns`,
		st.Tenant, st.RuleID, st.Disabled, params, actions, nanos(st.UpdatedAt))
	return translate(err, "put rule setting")
}

// DeleteRuleSetting removes a setting; deleting a missing one is not an error.
func (s *Store) DeleteRuleSetting(ctx context.Context, tenant, ruleID string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM rule_settings WHERE tenant = $1 AND rule_id = $2`, tenant, ruleID)
	return translate(err, "delete rule setting")
}

// ListAllowEntries returns tenant's allowlist ordered by value (then kind).
func (s *Store) ListAllowEntries(ctx context.Context, tenant string) ([]audit.AllowEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT kind, value, mode, note, created_ns FROM allow_entries
		WHERE tenant = $1 ORDER BY value, kind`, tenant)
	if err != nil {
		return nil, translate(err, "list allow entries")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (audit.AllowEntry, error) {
		e := audit.AllowEntry{Tenant: tenant}
		var created int64
		err := r.Scan(&e.Kind, &e.Value, &e.Mode, &e.Note, &created)
		e.CreatedAt = fromNanos(created)
		return e, err
	})
	if err != nil {
		return nil, translate(err, "list allow entries")
	}
	return out, nil
}

// PutAllowEntry adds or replaces the entry (Tenant, Kind, Value).
func (s *Store) PutAllowEntry(ctx context.Context, e audit.AllowEntry) error {
	switch {
	case e.Tenant == "":
		return invalid("tenant", "allow entry needs a tenant")
	case e.Kind != audit.AllowIP && e.Kind != audit.AllowCIDR && e.Kind != audit.AllowASN:
		return invalid("kind", "allow entry kind %q must be ip, cidr or asn", e.Kind)
	case strings.TrimSpace(e.Value) == "":
		return invalid("value", "allow entry value is required")
	case e.Mode != "" && e.Mode != audit.AllowTrust && e.Mode != audit.AllowEgress && e.Mode != audit.AllowNotEgress:
		return invalid("mode", "allow entry mode %q must be trust, egress or not_egress", e.Mode)
	}
	mode := e.Mode
	if mode == "" {
		mode = audit.AllowTrust
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO allow_entries (tenant, kind, value, mode, note, created_ns)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant, kind, value) DO UPDATE SET mode = excluded.mode,
		note = excluded.note, created_ns = excluded.created_ns`,
		e.Tenant, e.Kind, e.Value, mode, e.Note, nanos(e.CreatedAt))
	return translate(err, "put allow entry")
}

// DeleteAllowEntry removes an entry; deleting a missing one is not an error.
func (s *Store) DeleteAllowEntry(ctx context.Context, tenant, kind, value string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM allow_entries WHERE tenant = $1 AND kind = $2 AND value = $3`, tenant, kind, value)
	return translate(err, "delete allow entry")
}
