package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Allowlist entry modes (AllowEntry.Mode).
const (
	// AllowTrust: rules that say so ignore the network (the default).
	AllowTrust = "trust"
	// AllowEgress declares a shared egress (a corporate VPN or SASE
	// gateway): a relay for travel, concurrent sessions, new locations and
	// local hours; other rules still apply.
	AllowEgress = "egress"
	// AllowNotEgress forbids learning the network as a shared egress.
	AllowNotEgress = "not_egress"
)

// AllowEntry is one of a tenant's allowlisted networks: Kind "ip", "cidr"
// or "asn".
type AllowEntry struct {
	Tenant    string    `json:"tenant,omitempty"`
	Kind      string    `json:"kind"`
	Value     string    `json:"value"`
	Mode      string    `json:"mode,omitempty"`
	Note      string    `json:"note,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// Allowlist returns the tenant's allowlist (GET /v1/allowlist).
func (c *Client) Allowlist(ctx context.Context) ([]AllowEntry, error) {
	var out struct {
		Allowlist []AllowEntry `json:"allowlist"`
	}
	if err := c.getJSON(ctx, "/v1/allowlist", c.scope(nil), &out); err != nil {
		return nil, err
	}
	return out.Allowlist, nil
}

// AddAllow stores an allowlist entry, replacing one of the same kind and
// value (POST /v1/allowlist, scope rules:write); it returns the entry as
// stored (the value canonical). Replacing is idempotent, so it is retried
// like a read.
func (c *Client) AddAllow(ctx context.Context, e AllowEntry) (*AllowEntry, error) {
	var out AllowEntry
	k := call{method: http.MethodPost, path: "/v1/allowlist", query: c.scope(nil), idempotent: true}
	in := struct {
		Kind  string `json:"kind"`
		Value string `json:"value"`
		Mode  string `json:"mode,omitempty"`
		Note  string `json:"note,omitempty"`
	}{e.Kind, e.Value, e.Mode, e.Note}
	if err := c.sendJSON(ctx, k, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveAllow deletes an allowlist entry (DELETE
// /v1/allowlist/{kind}/{value}); removing a missing one is not an error.
func (c *Client) RemoveAllow(ctx context.Context, kind, value string) error {
	// A CIDR keeps its slash: the route takes the rest of the path.
	_, err := c.do(ctx, call{method: http.MethodDelete, path: "/v1/allowlist/" + url.PathEscape(kind) + "/" + value,
		query: c.scope(nil), idempotent: true})
	return err
}

// Egress is one of a tenant's shared egresses as detection learned it.
type Egress struct {
	Kind         string    `json:"kind"` // "ip", "net" or "asn"
	Value        string    `json:"value"`
	FarActors    int       `json:"far_actors"`
	NearActors   int       `json:"near_actors"`
	Successes    int       `json:"successes"`
	Failures     int       `json:"failures"`
	FirstSeen    time.Time `json:"first_seen,omitzero"`
	LastSeen     time.Time `json:"last_seen"`
	LearnedSince time.Time `json:"learned_since,omitzero"`
	Learned      bool      `json:"learned"`
	// Relay: detection treats it as a relay now.
	Relay bool `json:"relay"`
	// Tuning is "pinned" (an allowlist entry of mode egress covers it),
	// "forbidden" (mode not_egress) or "".
	Tuning string `json:"tuning,omitempty"`
}

// Egresses returns the tenant's learned shared egresses, most far-away
// actors first; all adds the candidates not (yet) learned (GET
// /v1/egresses).
func (c *Client) Egresses(ctx context.Context, all bool) ([]Egress, error) {
	q := c.scope(nil)
	if all {
		q.Set("all", strconv.FormatBool(all))
	}
	var out struct {
		Egresses []Egress `json:"egresses"`
	}
	if err := c.getJSON(ctx, "/v1/egresses", q, &out); err != nil {
		return nil, err
	}
	return out.Egresses, nil
}
