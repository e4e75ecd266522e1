package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

var _ audit.StoredReceipts = (*Store)(nil)

// receiptsChunk is the most keys one StoredReceipts lookup sends, so that
// a pipeline batch (20,000 records by default) is one statement while a
// larger call still sends bounded arrays.
const receiptsChunk = 20_000

// StoredReceipts returns, for those of keys whose events are stored, the
// stored copy's ReceivedAt (UTC). A pipeline on a stream whose dedupe
// holds only within a window calls it for every batch, and almost always
// none of the keys is stored, so that case costs one statement: the keys
// are looked up in event_ids (which holds every stored (tenant, id)), and
// only the hits are read from their day partitions, by name, one
// statement per day. A key that cannot be stored (empty, invalid UTF-8 or
// NUL in its tenant or id) is absent rather than an error, as is an event
// purged between the two reads. Repeated keys are looked up once.
func (s *Store) StoredReceipts(ctx context.Context, keys []audit.EventKey) (map[audit.EventKey]time.Time, error) {
	out := make(map[audit.EventKey]time.Time)
	seen := make(map[audit.EventKey]bool, min(len(keys), receiptsChunk))
	tenants := make([]string, 0, min(len(keys), receiptsChunk))
	ids := make([]string, 0, cap(tenants))
	flush := func() error {
		if len(tenants) == 0 {
			return nil
		}
		err := s.receipts(ctx, tenants, ids, out)
		tenants, ids = tenants[:0], ids[:0]
		return err
	}
	for _, k := range keys {
		if seen[k] || k.Tenant == "" || k.ID == "" || !safeText(k.Tenant) || !safeText(k.ID) {
			continue
		}
		seen[k] = true
		tenants, ids = append(tenants, k.Tenant), append(ids, k.ID)
		if len(tenants) == receiptsChunk {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// storedID is one event_ids row: a stored event's key and the time that
// names its partition.
type storedID struct {
	tenant, id string
	ns         int64
}

// receipts looks one chunk of distinct, storable keys up and adds the
// stored ones' receipts to out.
func (s *Store) receipts(ctx context.Context, tenants, ids []string, out map[audit.EventKey]time.Time) error {
	rows, err := s.pool.Query(ctx, `SELECT i.tenant, i.id, i.time_ns
		FROM unnest($1::text[], $2::text[]) AS k(tenant, id)
		JOIN event_ids i ON i.tenant = k.tenant AND i.id = k.id`, tenants, ids)
	if err != nil {
		return translate(err, fmt.Sprintf("look up %d event ids", len(tenants)))
	}
	var hits []storedID
	var h storedID
	_, err = pgx.ForEachRow(rows, []any{&h.tenant, &h.id, &h.ns}, func() error {
		hits = append(hits, h)
		return nil
	})
	if err != nil {
		return translate(err, fmt.Sprintf("look up %d event ids", len(tenants)))
	}
	if len(hits) == 0 {
		return nil
	}
	// The hits of one day are read in one statement from its partition.
	slices.SortFunc(hits, func(a, b storedID) int { return cmp.Compare(dayOf(a.ns), dayOf(b.ns)) })
	for len(hits) > 0 {
		day := dayOf(hits[0].ns)
		n := 1
		for n < len(hits) && dayOf(hits[n].ns) == day {
			n++
		}
		if err := s.dayReceipts(ctx, day, hits[:n], out); err != nil {
			return err
		}
		hits = hits[n:]
	}
	return nil
}

// dayReceipts reads the receipts of hits, all in day's partition, from
// the stored bodies (ReceivedAt has no column of its own).
func (s *Store) dayReceipts(ctx context.Context, day int64, hits []storedID, out map[audit.EventKey]time.Time) error {
	tenants, ids, times := make([]string, len(hits)), make([]string, len(hits)), make([]int64, len(hits))
	for i, h := range hits {
		tenants[i], ids[i], times[i] = h.tenant, h.id, h.ns
	}
	name := partName(day)
	rows, err := s.pool.Query(ctx, `SELECT e.tenant, e.id, e.body
		FROM unnest($1::text[], $2::text[], $3::bigint[]) AS k(tenant, id, time_ns)
		JOIN `+pgx.Identifier{name}.Sanitize()+` e ON e.tenant = k.tenant AND e.id = k.id AND e.time_ns = k.time_ns`,
		tenants, ids, times)
	if err == nil {
		var k audit.EventKey
		var body []byte
		_, err = pgx.ForEachRow(rows, []any{&k.Tenant, &k.ID, &body}, func() error {
			var doc struct {
				ReceivedAt time.Time `json:"received_at"`
			}
			if err := json.Unmarshal(body, &doc); err != nil {
				return fmt.Errorf("decode event %s: %w", k.ID, err)
			}
			out[k] = doc.ReceivedAt.UTC()
			return nil
		})
	}
	if sqlState(err) == "42P01" {
		return nil // the partition was dropped (purged) since event_ids was read
	}
	if err != nil {
		return translate(err, "read receipts from "+name)
	}
	return nil
}
