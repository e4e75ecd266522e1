package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// EncodeEvent exposes the event codec to the external test package's
// storage-candidate benchmark.
func EncodeEvent(ev *audit.Event) ([]byte, error) { return encodeEvent(nil, ev, encodeOpts{}) }

// DirBytes exposes the size walk DiskBytes uses, for the benchmark's
// closed-file sizes.
func DirBytes(dir string) (int64, error) { return dirBytes(dir) }

// SealOnInsert makes s seal each partition after every insert, so that
// every read and rewrite of a test goes through sealed blocks.
func SealOnInsert(s *EventStore) { s.sealOnInsert = true }

// LegacyLayout makes s create partitions with the indexes of versions
// before time buckets (layout.go), as an upgraded data directory holds.
func LegacyLayout(s *EventStore) { s.legacyLayout = true }

// SealNow seals every partition with events stored since its last seal,
// whatever its age and however few.
func SealNow(ctx context.Context, s *EventStore) (int64, error) {
	far := time.Date(2250, 1, 1, 0, 0, 0, 0, time.UTC)
	return s.sealOlder(ctx, far, far, 1)
}

// BlockSlots returns the slots of every block of partition file path, by
// block id (an emptied slot is empty).
func BlockSlots(path string) (map[int64][][]byte, error) {
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.Query(`SELECT bid, z FROM blocks`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64][][]byte{}
	for rows.Next() {
		var bid int64
		var z []byte
		if err := rows.Scan(&bid, &z); err != nil {
			return nil, err
		}
		if out[bid], err = decodeBlock(z); err != nil {
			return nil, err
		}
	}
	return out, rows.Err()
}

// Opens returns how many times s has opened a partition file.
func Opens(s *EventStore) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opens
}
