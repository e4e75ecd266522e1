package audit

import (
	"encoding/base64"
	"encoding/binary"
)

// Cursor is the position after the last item of a page: the item's time
// (Unix nanoseconds), tenant and id. Pages are ordered by (time, id,
// tenant) descending; the tenant breaks ties only for all-tenant listings
// and is "" otherwise. Every storage adapter encodes its page cursors with
// Cursor, so a cursor means the same position whichever backend made it.
type Cursor struct {
	Nanos  int64
	Tenant string
	ID     string
}

const cursorVersion = 1

// maxCursorBytes bounds a cursor's decoded size (ids are ≤ 128 bytes,
// tenants ≤ 64).
const maxCursorBytes = 256

// String encodes c as opaque URL-safe text.
func (c Cursor) String() string {
	b := []byte{cursorVersion}
	b = binary.AppendVarint(b, c.Nanos)
	b = binary.AppendUvarint(b, uint64(len(c.Tenant)))
	b = append(b, c.Tenant...)
	b = append(b, c.ID...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseCursor decodes a cursor made by String; anything else is EINVALID
// on the field "cursor".
func ParseCursor(s string) (Cursor, error) {
	bad := func(why string) (Cursor, error) {
		return Cursor{}, &Error{Code: EINVALID, Field: "cursor", Message: "cursor is malformed: " + why}
	}
	if len(s) > base64.RawURLEncoding.EncodedLen(maxCursorBytes) {
		return bad("too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return bad("not base64url")
	}
	if len(b) == 0 || b[0] != cursorVersion {
		return bad("unknown version")
	}
	b = b[1:]
	ns, n := binary.Varint(b)
	if n <= 0 {
		return bad("bad time")
	}
	b = b[n:]
	tl, n := binary.Uvarint(b)
	if n <= 0 || tl > uint64(len(b)-n) {
		return bad("bad tenant")
	}
	b = b[n:]
	c := Cursor{Nanos: ns, Tenant: string(b[:tl]), ID: string(b[tl:])}
	if c.ID == "" {
		return bad("missing id")
	}
	if c.Tenant != "" && !ValidTenantID(c.Tenant) {
		return bad("bad tenant")
	}
	return c, nil
}

// Before reports whether an item at (ns, tenant, id) sorts after the
// cursor position in descending order, i.e. belongs to a later page.
func (c Cursor) Before(ns int64, tenant, id string) bool {
	if ns != c.Nanos {
		return ns < c.Nanos
	}
	if id != c.ID {
		return id < c.ID
	}
	return tenant < c.Tenant
}
