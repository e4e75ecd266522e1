package access

import (
	"context"

	"github.com/vigilhq/vigil/internal/audit"
)

var errBadKey = audit.Errorf(audit.EUNAUTHENTICATED, "this API key is not valid (mistyped, revoked or unknown)")

// VerifyKey checks a full API key against the store and returns its
// principal. A malformed, unknown or revoked key is EUNAUTHENTICATED with
// one message, so a caller cannot tell which.
func VerifyKey(ctx context.Context, ks audit.KeyStore, full string) (audit.Principal, error) {
	id, secret, ok := audit.ParseKey(full)
	if !ok {
		return audit.Principal{}, errBadKey
	}
	k, err := ks.GetKey(ctx, id)
	if audit.ErrorCode(err) == audit.ENOTFOUND {
		return audit.Principal{}, errBadKey
	}
	if err != nil {
		return audit.Principal{}, err
	}
	if k.RevokedAt != nil || !audit.SecretMatches(secret, k.Hash) {
		return audit.Principal{}, errBadKey
	}
	return audit.Principal{KeyID: k.ID, Tenant: k.Tenant, Scopes: k.Scopes}, nil
}
