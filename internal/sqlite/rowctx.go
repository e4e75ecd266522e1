package sqlite

import "context"

// rowContext returns the context for the statements of a write
// transaction begun with ctx (one row each, or a chunk of rows); the loop
// that builds them checks ctx itself before each row.
//
// go-sqlite3 runs a statement whose context can be cancelled on a
// goroutine of its own, so that it can interrupt it when the context ends.
// For the pipeline's thousands of one-row statements per batch (events,
// chain links, findings, incidents, detection state) that goroutine and
// its wake-ups cost about 10 % of the pipeline's CPU (BenchmarkDrain),
// while one such statement takes microseconds and has nothing worth
// interrupting. Cancellation still ends the transaction between rows: the
// loop returns ctx's error, and database/sql rolls back a transaction
// whose context ended.
func rowContext(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }
