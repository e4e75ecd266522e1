package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// authenticator resolves bearer keys to principals. Verified keys are cached
// for ttl so that the hot ingest path does not hit the store on every
// request; a revocation therefore takes effect within ttl.
type authenticator struct {
	keys audit.KeyStore
	ttl  time.Duration
	now  func() time.Time
	log  *slog.Logger

	mu    sync.Mutex
	cache map[string]cachedKey // by key id
	// touched rate-limits last-used updates per key.
	touched map[string]time.Time
}

type cachedKey struct {
	key     audit.APIKey
	fetched time.Time
}

func newAuthenticator(keys audit.KeyStore, ttl time.Duration, now func() time.Time, log *slog.Logger) *authenticator {
	return &authenticator{keys: keys, ttl: ttl, now: now, log: log, cache: map[string]cachedKey{}, touched: map[string]time.Time{}}
}

var errUnauthenticated = audit.Errorf(audit.EUNAUTHENTICATED, "a valid API key is required: Authorization: Bearer vgl_…")

func (a *authenticator) authenticate(r *http.Request) (audit.Principal, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return audit.Principal{}, errUnauthenticated
	}
	id, secret, ok := audit.ParseKey(strings.TrimSpace(tok))
	if !ok {
		return audit.Principal{}, errUnauthenticated
	}
	k, err := a.lookup(r.Context(), id)
	if err != nil {
		if audit.ErrorCode(err) == audit.ENOTFOUND {
			return audit.Principal{}, errUnauthenticated
		}
		return audit.Principal{}, err
	}
	if k.RevokedAt != nil || !audit.SecretMatches(secret, k.Hash) {
		return audit.Principal{}, errUnauthenticated
	}
	a.touch(r.Context(), id)
	return audit.Principal{KeyID: k.ID, Tenant: k.Tenant, Scopes: k.Scopes}, nil
}

func (a *authenticator) lookup(ctx context.Context, id string) (*audit.APIKey, error) {
	now := a.now()
	a.mu.Lock()
	c, ok := a.cache[id]
	a.mu.Unlock()
	if ok && now.Sub(c.fetched) < a.ttl {
		return &c.key, nil
	}
	k, err := a.keys.GetKey(ctx, id)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if len(a.cache) > 10_000 {
		clear(a.cache)
	}
	a.cache[id] = cachedKey{key: *k, fetched: now}
	a.mu.Unlock()
	return k, nil
}

// forget drops a key from the cache (after a revoke on this node).
func (a *authenticator) forget(id string) {
	a.mu.Lock()
	delete(a.cache, id)
	a.mu.Unlock()
}

// touch records the key's use at most once a minute.
func (a *authenticator) touch(ctx context.Context, id string) {
	now := a.now()
	a.mu.Lock()
	last := a.touched[id]
	due := now.Sub(last) >= time.Minute
	if due {
		if len(a.touched) > 10_000 {
			clear(a.touched)
		}
		a.touched[id] = now
	}
	a.mu.Unlock()
	if due {
		if err := a.keys.TouchKey(context.WithoutCancel(ctx), id, now); err != nil {
			a.log.LogAttrs(ctx, slog.LevelWarn, "record key use", slog.String("key_id", id), slog.String("error", err.Error()))
		}
	}
}

// tenantScope resolves which tenant a read addresses. A tenant key always
// reads its own tenant and may not name another; an operator names one with
// ?tenant= or, when allowAll, reads every tenant.
func tenantScope(p audit.Principal, requested string, allowAll bool) (tenant string, all bool, err error) {
	if !p.Operator() {
		if requested != "" && requested != p.Tenant {
			return "", false, audit.Errorf(audit.EFORBIDDEN, "this key may not read another tenant")
		}
		return p.Tenant, false, nil
	}
	if requested != "" {
		return requested, false, nil
	}
	if !allowAll {
		return "", false, audit.FieldErrorf("tenant", "tenant is required with an operator key")
	}
	return "", true, nil
}
