package console

import (
	"net/http"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
)

// maxEgressRows bounds the shared egresses one settings page shows (a
// tenant may have up to 2048 candidates); the rest are a CLI call away.
const maxEgressRows = 200

// egressKinds maps an egress's kind to the allowlist kind that covers it.
var egressKinds = map[string]string{"ip": audit.AllowIP, "net": audit.AllowCIDR, "asn": audit.AllowASN}

// allowModes are the allowlist modes with what the console calls them.
var allowModes = []struct{ Mode, Label string }{
	{audit.AllowTrust, "trusted network"},
	{audit.AllowEgress, "shared egress (pinned)"},
	{audit.AllowNotEgress, "not an egress"},
}

// allowMode checks a form's mode; empty is trust, as in the API.
func allowMode(m string) (string, error) {
	switch m {
	case "":
		return audit.AllowTrust, nil
	case audit.AllowTrust, audit.AllowEgress, audit.AllowNotEgress:
		return m, nil
	}
	return "", audit.FieldErrorf("mode", "mode must be trust (the default), egress or not_egress")
}

// tuneEgress pins a listed egress as a shared egress (mode egress) or says
// it is none (mode not_egress): an allowlist entry of that mode for it.
func (c *Console) tuneEgress(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := c.need(rq, audit.ScopeRulesWrite); err != nil {
		return err
	}
	if c.opts.Rules == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "rule tuning is not enabled on this server")
	}
	kind, ok := egressKinds[r.PostFormValue("kind")]
	if !ok {
		return audit.FieldErrorf("kind", "kind must be ip, net or asn")
	}
	mode := r.PostFormValue("mode")
	if mode != audit.AllowEgress && mode != audit.AllowNotEgress {
		return audit.FieldErrorf("mode", "mode must be egress or not_egress")
	}
	v, err := audit.CanonicalAllowValue(kind, r.PostFormValue("value"))
	if err != nil {
		return err
	}
	note := "pinned as a shared egress in the console"
	if mode == audit.AllowNotEgress {
		note = "marked not an egress in the console"
	}
	if err := c.opts.Rules.PutAllowEntry(r.Context(), audit.AllowEntry{Tenant: rq.tenant, Kind: kind, Value: v, Mode: mode,
		Note: note, CreatedAt: c.now().UTC()}); err != nil {
		return err
	}
	c.tuned(r, rq)
	settingsDone(w, r, "egress")
	return nil
}

// modeLabel names an allowlist mode for people.
func modeLabel(m string) string {
	if m == "" {
		m = audit.AllowTrust
	}
	for _, am := range allowModes {
		if am.Mode == m {
			return am.Label
		}
	}
	return strings.ReplaceAll(m, "_", " ")
}
