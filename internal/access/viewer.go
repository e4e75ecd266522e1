package access

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// ViewerPrefix starts every viewer token, so that secret scanners can spot
// leaked ones.
const ViewerPrefix = "vgv_"

// Viewer-token errors. Each is an audit.Error with a message safe to show
// the person who followed the link.
var (
	ErrTokenInvalid = &audit.Error{Code: audit.EUNAUTHENTICATED, Message: "this viewer link is not valid: it was altered, cut short or issued by another server"}
	ErrTokenExpired = &audit.Error{Code: audit.EUNAUTHENTICATED, Message: "this viewer link has expired; ask for a new one"}
	ErrTokenRevoked = &audit.Error{Code: audit.EUNAUTHENTICATED, Message: "this viewer link was revoked; ask for a new one"}
)

// MaxViewerTTL is the longest a viewer token may live.
const MaxViewerTTL = 7 * 24 * time.Hour

// DefaultViewerTTL is a viewer token's lifetime when the request gives none.
const DefaultViewerTTL = 15 * time.Minute

// Viewers mints and verifies viewer tokens.
type Viewers struct {
	secret []byte
	store  audit.ViewerTokenStore
	now    func() time.Time
}

// NewViewers returns a minter/verifier. secret must be at least 32 bytes;
// it never leaves the process except in the store it came from.
func NewViewers(secret []byte, store audit.ViewerTokenStore, now func() time.Time) (*Viewers, error) {
	if len(secret) < 32 {
		return nil, errors.New("access: viewer-token secret must be at least 32 bytes")
	}
	if store == nil {
		return nil, errors.New("access: a viewer-token store is required")
	}
	if now == nil {
		now = time.Now
	}
	return &Viewers{secret: slices.Clone(secret), store: store, now: now}, nil
}

// ViewerSpec is what a tenant admin asks for when minting a token.
type ViewerSpec struct {
	Tenant         string
	Name           string
	TTL            time.Duration
	ReadOnly       bool
	Actions        []string
	Actor          string
	FrameAncestors []string
	CreatedBy      string
}

// Validate checks a spec, reporting every problem at once.
func (s ViewerSpec) Validate() error {
	var errs []error
	if !audit.ValidTenantID(s.Tenant) {
		errs = append(errs, audit.FieldErrorf("tenant", "tenant must be 1-64 letters, digits, '-', '_' or '.'"))
	}
	if s.TTL < time.Minute || s.TTL > MaxViewerTTL {
		errs = append(errs, audit.FieldErrorf("ttl", "ttl must be between 1m and %s", MaxViewerTTL))
	}
	if len(s.Name) > 256 {
		errs = append(errs, audit.FieldErrorf("name", "name is at most 256 bytes"))
	}
	if len(s.Actions) > 20 {
		errs = append(errs, audit.FieldErrorf("actions", "at most 20 actions"))
	}
	for _, a := range s.Actions {
		base, prefix := strings.CutSuffix(a, ".*")
		if prefix && !audit.ValidAction(base+".x") || !prefix && !audit.ValidAction(a) {
			errs = append(errs, audit.FieldErrorf("actions", "%q is not an action name or a prefix such as auth.*", a))
		}
	}
	if len(s.Actor) > 256 {
		errs = append(errs, audit.FieldErrorf("actor", "actor is at most 256 bytes"))
	}
	if len(s.FrameAncestors) > 10 {
		errs = append(errs, audit.FieldErrorf("frame_ancestors", "at most 10 origins"))
	}
	for _, o := range s.FrameAncestors {
		if err := ValidOrigin(o); err != nil {
			errs = append(errs, audit.FieldErrorf("frame_ancestors", "%v", err))
		}
	}
	return errors.Join(errs...)
}

// ValidOrigin accepts an https origin (or http on localhost), with no path,
// query or wildcard: the only shapes that are safe to place in a CSP
// frame-ancestors directive.
func ValidOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" ||
		strings.ContainsAny(u.Host, "*; '\"") {
		return fmt.Errorf("%q is not an origin such as https://admin.example.com", o)
	}
	local := u.Hostname() == "localhost" || u.Hostname() == "127.0.0.1"
	if u.Scheme != "https" && !(u.Scheme == "http" && local) {
		return fmt.Errorf("%q must use https (http only for localhost)", o)
	}
	return nil
}

// Mint stores a token's record and returns it with the token text, which
// exists nowhere else.
func (v *Viewers) Mint(ctx context.Context, s ViewerSpec) (audit.ViewerToken, string, error) {
	if s.TTL == 0 {
		s.TTL = DefaultViewerTTL
	}
	if err := s.Validate(); err != nil {
		return audit.ViewerToken{}, "", err
	}
	var idb [12]byte
	_, _ = rand.Read(idb[:])
	now := v.now().UTC()
	t := audit.ViewerToken{ID: hex.EncodeToString(idb[:]), Tenant: s.Tenant, Name: s.Name, ReadOnly: s.ReadOnly,
		Actions: s.Actions, Actor: s.Actor, FrameAncestors: s.FrameAncestors, CreatedBy: s.CreatedBy,
		CreatedAt: now, ExpiresAt: now.Add(s.TTL).Truncate(time.Second)}
	if err := v.store.CreateViewerToken(ctx, t); err != nil {
		return audit.ViewerToken{}, "", fmt.Errorf("store viewer token %s: %w", t.ID, err)
	}
	return t, v.encode(t.ID, t.ExpiresAt.Unix()), nil
}

func (v *Viewers) mac(id string, exp int64) []byte {
	m := hmac.New(sha256.New, v.secret)
	m.Write([]byte("vigil-viewer-v1|" + id + "|" + strconv.FormatInt(exp, 10)))
	return m.Sum(nil)
}

func (v *Viewers) encode(id string, exp int64) string {
	return ViewerPrefix + id + "_" + strconv.FormatInt(exp, 36) + "_" + base64.RawURLEncoding.EncodeToString(v.mac(id, exp))
}

// ParseViewerToken splits a token's text into its id, expiry (Unix seconds)
// and signature without checking the signature. It accepts only the exact
// shape Mint produces.
func ParseViewerToken(tok string) (id string, exp int64, sig []byte, err error) {
	rest, ok := strings.CutPrefix(tok, ViewerPrefix)
	if !ok || len(tok) > 128 {
		return "", 0, nil, ErrTokenInvalid
	}
	parts := strings.SplitN(rest, "_", 3)
	if len(parts) != 3 || len(parts[0]) != 24 || len(parts[1]) == 0 || len(parts[1]) > 13 {
		return "", 0, nil, ErrTokenInvalid
	}
	if _, err := hex.DecodeString(parts[0]); err != nil || strings.ToLower(parts[0]) != parts[0] {
		return "", 0, nil, ErrTokenInvalid
	}
	exp, err = strconv.ParseInt(parts[1], 36, 64)
	if err != nil || exp <= 0 || strconv.FormatInt(exp, 36) != parts[1] {
		return "", 0, nil, ErrTokenInvalid
	}
	// The decoder skips CR and LF even in strict mode: refuse them, so a
	// token has exactly one spelling.
	sig, err = base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil || strings.ContainsAny(parts[2], "\r\n") || len(sig) != sha256.Size {
		return "", 0, nil, ErrTokenInvalid
	}
	return parts[0], exp, sig, nil
}

// Verify checks a token's signature, expiry and revocation, and returns its
// record. Its errors are ErrTokenInvalid, ErrTokenExpired, ErrTokenRevoked
// or a store failure.
func (v *Viewers) Verify(ctx context.Context, tok string) (*audit.ViewerToken, error) {
	id, exp, sig, err := ParseViewerToken(tok)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(sig, v.mac(id, exp)) {
		return nil, ErrTokenInvalid
	}
	if !v.now().Before(time.Unix(exp, 0)) {
		return nil, ErrTokenExpired
	}
	t, err := v.store.GetViewerToken(ctx, id)
	if audit.ErrorCode(err) == audit.ENOTFOUND {
		return nil, ErrTokenInvalid
	}
	if err != nil {
		return nil, err
	}
	if t.ExpiresAt.Unix() != exp {
		return nil, ErrTokenInvalid
	}
	if t.RevokedAt != nil {
		return nil, ErrTokenRevoked
	}
	return t, nil
}

// Check re-reads a token's record for a session built from it: the token
// may have been revoked since, or have expired.
func (v *Viewers) Check(ctx context.Context, id string) (*audit.ViewerToken, error) {
	t, err := v.store.GetViewerToken(ctx, id)
	if audit.ErrorCode(err) == audit.ENOTFOUND {
		return nil, ErrTokenInvalid
	}
	if err != nil {
		return nil, err
	}
	if t.RevokedAt != nil {
		return nil, ErrTokenRevoked
	}
	if !v.now().Before(t.ExpiresAt) {
		return nil, ErrTokenExpired
	}
	return t, nil
}

// List returns a tenant's tokens, newest first.
func (v *Viewers) List(ctx context.Context, tenant string) ([]audit.ViewerToken, error) {
	return v.store.ListViewerTokens(ctx, tenant, 200)
}

// Revoke revokes a token; tenant "" (an operator) matches any.
func (v *Viewers) Revoke(ctx context.Context, tenant, id string) error {
	return v.store.RevokeViewerToken(ctx, tenant, id, v.now().UTC())
}

// Principal is the principal a viewer session acts as: the tenant, the
// read scopes and, unless read-only, findings:write. Its KeyID names the
// token ("viewer:<id>") so read audits say who looked.
func Principal(t *audit.ViewerToken) audit.Principal {
	scopes := []audit.Scope{audit.ScopeEventsRead, audit.ScopeFindingsRead}
	if !t.ReadOnly {
		scopes = append(scopes, audit.ScopeFindingsWrite)
	}
	return audit.Principal{KeyID: "viewer:" + t.ID, Tenant: t.Tenant, Scopes: scopes}
}
