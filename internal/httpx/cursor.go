package httpx

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
)

// Cursors seals the page cursors a store hands out before they reach a
// client, binding each to the listing and the tenant scope it pages, and
// opens them when they come back. A cursor that was altered, made up, or
// given by another listing or for another tenant does not open: the client
// gets 400 naming the cursor parameter instead of some page it did not ask
// for.
type Cursors struct{ key []byte }

// cursorTagLen is the bytes of HMAC-SHA256 kept in a sealed cursor.
const cursorTagLen = 16

// maxCursorLen bounds a sealed cursor's text; store cursors are a few
// hundred bytes at most.
const maxCursorLen = 1024

// NewCursors returns a sealer keyed by secret. With no secret it makes a
// random one, so cursors last as long as the process.
func NewCursors(secret []byte) *Cursors {
	if len(secret) == 0 {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
	}
	return &Cursors{key: append([]byte("cursor:"), secret...)}
}

func (c *Cursors) tag(list, scope, inner string) []byte {
	m := hmac.New(sha256.New, c.key)
	for _, s := range []string{list, scope, inner} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	return m.Sum(nil)[:cursorTagLen]
}

// Seal returns the client's form of a store cursor of list for scope (a
// tenant id, or "*" for every tenant). An empty cursor (no next page)
// stays empty.
func (c *Cursors) Seal(list, scope, inner string) string {
	if inner == "" {
		return ""
	}
	b := append(c.tag(list, scope, inner), inner...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Open returns the store cursor sealed in token for list and scope, or an
// EINVALID error on field "cursor".
func (c *Cursors) Open(list, scope, token string) (string, error) {
	bad := &audit.Error{Code: audit.EINVALID, Field: "cursor",
		Message: "cursor is not a next_cursor this listing gave for this tenant (malformed, altered, or from another listing or tenant); start again without it"}
	// The decoder skips CR and LF even in strict mode, so a token with
	// line breaks would open like the one without them: refuse it, so a
	// cursor has exactly one spelling.
	if len(token) > maxCursorLen || strings.ContainsAny(token, "\r\n") {
		return "", bad
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(b) <= cursorTagLen {
		return "", bad
	}
	inner := string(b[cursorTagLen:])
	if !hmac.Equal(b[:cursorTagLen], c.tag(list, scope, inner)) {
		return "", bad
	}
	return inner, nil
}
