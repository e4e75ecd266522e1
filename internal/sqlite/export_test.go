package sqlite

import "github.com/vigilhq/vigil/internal/audit"

// EncodeEvent exposes the event codec to the external test package's
// storage-candidate benchmark.
func EncodeEvent(ev *audit.Event) ([]byte, error) { return encodeEvent(nil, ev, encodeOpts{}) }

// DirBytes exposes the size walk DiskBytes uses, for the benchmark's
// closed-file sizes.
func DirBytes(dir string) (int64, error) { return dirBytes(dir) }
