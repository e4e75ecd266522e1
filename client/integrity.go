package client

import (
	"context"
	"net/http"
	"net/url"
)

// IntegrityReport is the result of verifying a tenant's hash chains
// (GET /v1/integrity). OK is false when Broken names a broken link.
type IntegrityReport struct {
	OK         bool        `json:"ok"`
	Days       int         `json:"days"`
	Events     int64       `json:"events"`
	Tombstones int         `json:"tombstones"`
	Erasures   int         `json:"erasures"`
	Unsigned   []ChainTail `json:"unsigned,omitempty"`
	Broken     *ChainBreak `json:"broken,omitempty"`
}

// ChainTail is a day's chain with links after its latest checkpoint.
type ChainTail struct {
	Tenant string `json:"tenant"`
	Day    string `json:"day"`
	Signed int64  `json:"signed"`
	Links  int64  `json:"links"`
}

// ChainBreak is the first broken link: where, and why (Reason is
// altered_event, deleted_event, inserted_event, broken_link,
// checkpoint_mismatch, bad_signature or bad_erasure).
type ChainBreak struct {
	Tenant  string `json:"tenant"`
	Day     string `json:"day,omitempty"`
	Seq     int64  `json:"seq,omitempty"`
	EventID string `json:"event_id,omitempty"`
	Reason  string `json:"reason"`
	Detail  string `json:"detail"`
}

// IntegrityKey is a published statement-signing key (Ed25519, base64).
type IntegrityKey struct {
	ID      string `json:"id"`
	Key     string `json:"key"`
	Current bool   `json:"current"`
}

// SignedStatement is a signed integrity statement: the exact signed text
// and its Ed25519 signature (base64).
type SignedStatement struct {
	Statement string `json:"statement"`
	Signature string `json:"signature"`
}

// DayProof is what checking an export of one tenant-day needs besides the
// events and a public key (see docs/integrity.md).
type DayProof struct {
	Tenant     string            `json:"tenant"`
	Day        string            `json:"day"`
	Checkpoint *SignedStatement  `json:"checkpoint,omitempty"`
	Tombstone  *SignedStatement  `json:"tombstone,omitempty"`
	Erasures   []SignedStatement `json:"erasures,omitempty"`
	Events     []string          `json:"events"`
	Erased     []string          `json:"erased,omitempty"`
}

// ErasureRequest names the fields to redact in one actor's events.
type ErasureRequest struct {
	Tenant string   `json:"tenant,omitempty"`
	Actor  string   `json:"actor"`
	Fields []string `json:"fields"`
}

// ErasureReport is what an erasure did.
type ErasureReport struct {
	ID     string   `json:"id"`
	Tenant string   `json:"tenant"`
	Events int      `json:"events"`
	Values int      `json:"values"`
	Fields []string `json:"fields"`
}

// VerifyIntegrity verifies the hash chains of the client's tenant (or,
// with an operator key, tenant; every tenant when both are "") whose days
// lie in [from, to] ("YYYY-MM-DD", "" unbounded). Needs events:read.
func (c *Client) VerifyIntegrity(ctx context.Context, tenant, from, to string) (*IntegrityReport, error) {
	q := url.Values{}
	for k, v := range map[string]string{"tenant": tenant, "from": from, "to": to} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if tenant == "" {
		q = c.scope(q)
	}
	var rep IntegrityReport
	if err := c.getJSON(ctx, "/v1/integrity", q, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// IntegrityKeys lists the public keys integrity statements are signed
// with, the current one marked.
func (c *Client) IntegrityKeys(ctx context.Context) ([]IntegrityKey, error) {
	var out struct {
		Keys []IntegrityKey `json:"keys"`
	}
	if err := c.getJSON(ctx, "/v1/integrity/keys", nil, &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

// DayProof returns the proof of one day (YYYY-MM-DD) of the client's
// tenant (or tenant, with an operator key).
func (c *Client) DayProof(ctx context.Context, tenant, day string) (*DayProof, error) {
	q := url.Values{}
	if tenant != "" {
		q.Set("tenant", tenant)
	} else {
		q = c.scope(q)
	}
	var p DayProof
	if err := c.getJSON(ctx, "/v1/integrity/days/"+url.PathEscape(day), q, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Erase redacts fields of one actor's stored events (admin scope; an
// operator names the tenant). The erasure is recorded in the tenant's log
// as vigil.erasure.completed.
func (c *Client) Erase(ctx context.Context, r ErasureRequest) (*ErasureReport, error) {
	if r.Tenant == "" {
		r.Tenant = c.tenant
	}
	var rep ErasureReport
	if err := c.sendJSON(ctx, call{method: http.MethodPost, path: "/v1/erasures"}, r, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}
