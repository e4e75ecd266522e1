package sqlite

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// cursor is the position after the last item of a page: the item's time
// (Unix nanoseconds), tenant and id. Pages are ordered by (time, id, tenant)
// descending; the tenant breaks ties only for all-tenant searches.
type cursor struct {
	ns     int64
	tenant string
	id     string
}

const cursorVersion = 1

// maxCursorBytes bounds a cursor's decoded size (ids are ≤ 128 bytes,
// tenants ≤ 64).
const maxCursorBytes = 256

// String encodes c as opaque URL-safe text.
func (c cursor) String() string {
	b := []byte{cursorVersion}
	b = binary.AppendVarint(b, c.ns)
	b = binary.AppendUvarint(b, uint64(len(c.tenant)))
	b = append(b, c.tenant...)
	b = append(b, c.id...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseCursor decodes a cursor made by String; anything else is EINVALID.
func parseCursor(s string) (cursor, error) {
	bad := func(why string) (cursor, error) {
		return cursor{}, &audit.Error{Code: audit.EINVALID, Field: "cursor", Message: "cursor is malformed: " + why}
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
	c := cursor{ns: ns, tenant: string(b[:tl]), id: string(b[tl:])}
	if c.id == "" {
		return bad("missing id")
	}
	if c.tenant != "" && !audit.ValidTenantID(c.tenant) {
		return bad("bad tenant")
	}
	return c, nil
}

// before reports whether an item at (ns, tenant, id) sorts after the cursor
// position in descending order, i.e. belongs to a later page.
func (c cursor) before(ns int64, tenant, id string) bool {
	if ns != c.ns {
		return ns < c.ns
	}
	if id != c.id {
		return id < c.id
	}
	return tenant < c.tenant
}

func (c cursor) time() time.Time { return time.Unix(0, c.ns).UTC() }

func (c cursor) GoString() string { return fmt.Sprintf("cursor{%d %q %q}", c.ns, c.tenant, c.id) }
