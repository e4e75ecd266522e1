package postgres

import "context"

// partitions tracks the event partitions that exist (events helper).
type partitions struct{}

// openEvents loads the event partitions (events helper).
func (s *Store) openEvents(ctx context.Context) error { return nil }
