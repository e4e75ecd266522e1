package sqlite

import "github.com/vigilhq/vigil/internal/audit"

// EncodeEvent exposes the event codec to the external test package's
// storage-candidate benchmark.
func EncodeEvent(ev *audit.Event) ([]byte, error) { return encodeEvent(nil, ev, encodeOpts{}) }
