package audit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// KeyPrefix starts every API key, so that secret scanners can spot leaked ones.
const KeyPrefix = "vgl_"

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewKeySecret mints a new API key. It returns the key id (public, stored,
// shown in listings), the full key to hand to the user once
// ("vgl_<id>_<secret>") and the hash to store. The secret part carries 256
// random bits, so a plain SHA-256 is the right hash: there is nothing to
// brute-force that a slow hash would protect.
func NewKeySecret() (id, full string, hash []byte) {
	var idb [8]byte
	var sec [32]byte
	_, _ = rand.Read(idb[:])
	_, _ = rand.Read(sec[:])
	id = hex.EncodeToString(idb[:])
	secret := keyEncoding.EncodeToString(sec[:])
	return id, KeyPrefix + id + "_" + secret, HashSecret(secret)
}

// ParseKey splits a full API key into its id and secret.
func ParseKey(full string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(full, KeyPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != 16 || len(secret) < 32 || len(secret) > 128 {
		return "", "", false
	}
	return id, secret, true
}

// HashSecret returns the stored form of a key's secret part.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// SecretMatches compares a presented secret with a stored hash in constant time.
func SecretMatches(secret string, hash []byte) bool {
	return subtle.ConstantTimeCompare(HashSecret(secret), hash) == 1
}

// ValidScope reports whether s names a scope.
func ValidScope(s Scope) bool {
	for _, x := range AllScopes {
		if x == s {
			return true
		}
	}
	return false
}

// MintKey creates and stores a new key for tenant ("" for an operator key)
// and returns it with the full secret, which exists nowhere else: show it
// once and forget it.
func MintKey(ctx context.Context, ks KeyStore, tenant, name string, scopes []Scope, now time.Time) (APIKey, string, error) {
	id, full, hash := NewKeySecret()
	k := APIKey{ID: id, Tenant: tenant, Name: name, Scopes: scopes, Hash: hash, CreatedAt: now}
	if err := ks.CreateKey(ctx, k); err != nil {
		return APIKey{}, "", fmt.Errorf("store key %s: %w", id, err)
	}
	return k, full, nil
}
