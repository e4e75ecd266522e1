package sqlite

import "context"

// Ready is the readiness check: whether the store can take writes now. It
// writes and fsyncs one small file in the data directory and reads the
// stream's last commit result; it takes no connection from any pool, so
// busy searches never make a node look unready (Ping, which does, is for
// tools). Callers run it in the background, not per probe.
func (db *DB) Ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := probeWrite(db.opts.Dir); err != nil {
		return err
	}
	return db.stream.writeFailure()
}
