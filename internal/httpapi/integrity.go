package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
)

// IntegrityVerifier verifies the hash chains of tenant (every tenant when
// "") whose days lie in [from, to] ("YYYY-MM-DD", "" unbounded).
type IntegrityVerifier func(ctx context.Context, tenant, from, to string) (*audit.IntegrityReport, error)

// Eraser redacts fields of one actor's stored events and records it.
type Eraser func(ctx context.Context, p audit.Principal, req audit.ErasureRequest) (*audit.ErasureReport, error)

func checkDay(q url.Values, name string) (string, error) {
	d := q.Get(name)
	if d == "" {
		return "", nil
	}
	if _, err := time.Parse("2006-01-02", d); err != nil || len(d) != 10 {
		return "", audit.FieldErrorf(name, "%s must be a date YYYY-MM-DD", name)
	}
	return d, nil
}

// getIntegrity is GET /v1/integrity: verify the caller's tenant (an
// operator: one tenant, or every tenant without ?tenant=) and report the
// first broken link. 200 either way; ok says whether every chain held.
func (a *API) getIntegrity(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	if a.opts.Verify == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "tamper evidence is not available on this server")
	}
	q := r.URL.Query()
	if err := onlyParams(q, "tenant", "from", "to"); err != nil {
		return err
	}
	tenant, _, err := tenantScope(p, q.Get("tenant"), true)
	if err != nil {
		return err
	}
	from, err := checkDay(q, "from")
	if err != nil {
		return err
	}
	to, err := checkDay(q, "to")
	if err != nil {
		return err
	}
	rep, err := a.opts.Verify(r.Context(), tenant, from, to)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, rep)
	return nil
}

// getIntegrityKeys is GET /v1/integrity/keys: the public keys statements
// are signed with, current and retired.
func (a *API) getIntegrityKeys(w http.ResponseWriter, r *http.Request, _ audit.Principal) error {
	if a.opts.IntegrityKeys == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "tamper evidence is not available on this server")
	}
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"keys": a.opts.IntegrityKeys()})
	return nil
}

// getDayProof is GET /v1/integrity/days/{day}: what a customer needs to
// check an export of that day against the signed checkpoint.
func (a *API) getDayProof(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	if a.opts.DayProof == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "tamper evidence is not available on this server")
	}
	q := r.URL.Query()
	if err := onlyParams(q, "tenant"); err != nil {
		return err
	}
	tenant, _, err := tenantScope(p, q.Get("tenant"), false)
	if err != nil {
		return err
	}
	day := r.PathValue("day")
	if _, err := time.Parse("2006-01-02", day); err != nil || len(day) != 10 {
		return audit.FieldErrorf("day", "day must be a date YYYY-MM-DD")
	}
	proof, err := a.opts.DayProof(r.Context(), tenant, day)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, proof)
	return nil
}

// postErasure is POST /v1/erasures {tenant, actor, fields}: redact fields
// of one actor's stored events (tenant admin; operators name the tenant).
func (a *API) postErasure(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	if a.opts.Erase == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "erasure is not available on this server")
	}
	req, err := DecodeErasure(w, r)
	if err != nil {
		return err
	}
	if req.Tenant, _, err = tenantScope(p, req.Tenant, false); err != nil {
		return err
	}
	if _, err := a.opts.Tenants.GetTenant(r.Context(), req.Tenant); err != nil {
		return err
	}
	rep, err := a.opts.Erase(serverWrite(r.Context()), p, req)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, rep)
	return nil
}

// DecodeErasure reads an erasure request body (size-capped, unknown fields
// refused); errors name the field.
func DecodeErasure(w http.ResponseWriter, r *http.Request) (audit.ErasureRequest, error) {
	var req audit.ErasureRequest
	if err := httpx.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		return req, err
	}
	if req.Actor == "" {
		return req, audit.FieldErrorf("actor", "actor is required")
	}
	if len(req.Fields) == 0 {
		return req, audit.FieldErrorf("fields", "fields must name at least one field")
	}
	return req, nil
}

// onlyParams refuses query parameters other than names.
func onlyParams(q url.Values, names ...string) error {
	for k := range q {
		known := false
		for _, n := range names {
			known = known || k == n
		}
		if !known {
			return audit.FieldErrorf(k, "unknown query parameter %q", k)
		}
	}
	return nil
}
