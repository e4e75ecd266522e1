package ingest

import (
	"context"
	"fmt"

	"github.com/vigilhq/vigil/internal/audit"
)

// RecordBatch is Record for several records, appended together in one
// durable append (one commit): the read audit of an operator's read across
// every tenant writes one record per tenant. It returns once they are
// durable. A rejected record (which the server's own records never are)
// is an error, as is a failed append.
func (s *Service) RecordBatch(ctx context.Context, p audit.Principal, evs []*audit.Event) error {
	if len(evs) == 0 {
		return nil
	}
	items := make([]Item, len(evs))
	for i, ev := range evs {
		items[i] = Item{Index: i, Event: ev}
	}
	res, err := s.ingest(ctx, p, items, true)
	if err != nil {
		return err
	}
	if res.Rejected > 0 {
		for _, r := range res.Results {
			if r.Err != nil {
				return fmt.Errorf("record %d of %d: %w", r.Index, len(evs), r.Err)
			}
		}
	}
	return nil
}
