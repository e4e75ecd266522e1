package sqlite

import (
	"fmt"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// cursor is the position after the last item of a page, encoded as an
// audit.Cursor (shared with the other adapters): the item's time (Unix
// nanoseconds), tenant and id. Pages are ordered by (time, id, tenant)
// descending; the tenant breaks ties only for all-tenant searches.
type cursor struct {
	ns     int64
	tenant string
	id     string
}

// String encodes c as opaque URL-safe text.
func (c cursor) String() string {
	return audit.Cursor{Nanos: c.ns, Tenant: c.tenant, ID: c.id}.String()
}

// parseCursor decodes a cursor made by String; anything else is EINVALID.
func parseCursor(s string) (cursor, error) {
	c, err := audit.ParseCursor(s)
	if err != nil {
		return cursor{}, err
	}
	return cursor{ns: c.Nanos, tenant: c.Tenant, id: c.ID}, nil
}

// before reports whether an item at (ns, tenant, id) sorts after the cursor
// position in descending order, i.e. belongs to a later page.
func (c cursor) before(ns int64, tenant, id string) bool {
	return audit.Cursor{Nanos: c.ns, Tenant: c.tenant, ID: c.id}.Before(ns, tenant, id)
}

func (c cursor) time() time.Time { return time.Unix(0, c.ns).UTC() }

func (c cursor) GoString() string { return fmt.Sprintf("cursor{%d %q %q}", c.ns, c.tenant, c.id) }
