package httpapi

import (
	"context"
	"net/http"

	"github.com/vigilhq/vigil/internal/audit"
)

// pageScope is what a sealed cursor is bound to: the route and the tenant
// scope of the request that gave it.
type pageScope struct{ route, scope string }

type pageScopeKey struct{}

// cursorScope is the tenant scope a cursor is sealed for: the key's tenant,
// or for an operator the tenant named, or "*" for every tenant. It follows
// tenantScope; a request tenantScope refuses is refused before paging.
func cursorScope(p audit.Principal, r *http.Request) string {
	if !p.Operator() {
		return p.Tenant
	}
	if t := r.URL.Query().Get("tenant"); t != "" {
		return t
	}
	return "*"
}

// paging opens the sealed ?cursor= of a paged route into the store's cursor
// before the handler reads it, and refuses a cursor the route did not give
// for this tenant (or any cursor on a route that does not page) with 400 on
// the cursor parameter. The handler seals its next cursor with nextCursor.
func (a *API) paging(pattern string, paged bool, h func(w http.ResponseWriter, r *http.Request, p audit.Principal) error) func(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	return func(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
		q := r.URL.Query()
		_, has := q["cursor"]
		if !paged {
			if has {
				return audit.FieldErrorf("cursor", "%s does not page; cursor is not one of its parameters", pattern)
			}
			return h(w, r, p)
		}
		ps := pageScope{route: pattern, scope: cursorScope(p, r)}
		if has {
			if len(q["cursor"]) != 1 {
				return audit.FieldErrorf("cursor", "cursor is given more than once")
			}
			// An empty cursor (the last page's next_cursor) is the first page.
			if tok := q.Get("cursor"); tok == "" {
				q.Del("cursor")
			} else {
				inner, err := a.cursors.Open(ps.route, ps.scope, tok)
				if err != nil {
					return err
				}
				q.Set("cursor", inner)
			}
			r = r.Clone(r.Context())
			r.URL.RawQuery = q.Encode()
		}
		r = r.WithContext(context.WithValue(r.Context(), pageScopeKey{}, ps))
		return h(w, r, p)
	}
}

// nextCursor seals a store's next-page cursor for the client. It must be
// called on a paged route (see paging).
func (a *API) nextCursor(r *http.Request, next string) string {
	ps, ok := r.Context().Value(pageScopeKey{}).(pageScope)
	if !ok {
		panic("httpapi: nextCursor on a route not marked paged")
	}
	return a.cursors.Seal(ps.route, ps.scope, next)
}
