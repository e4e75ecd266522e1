package sqlite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Local is the part of the embedded store a node keeps on its own disk when
// events, findings and settings live elsewhere (storage.driver postgres):
// the durable ingest stream (stream.db) under the directory's lock.
type Local struct {
	opts   Options
	stream *Stream
	lock   *dirLock
}

// OpenLocal opens (creating when needed) only the ingest stream in
// opts.Dir, applying its migrations, and locks the directory as Open does.
// PartitionPeriod and MaxOpenPartitions are ignored.
func OpenLocal(ctx context.Context, opts Options) (*Local, error) {
	if opts.Dir == "" {
		return nil, invalid("dir", "sqlite: data directory is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxBacklog == 0 {
		opts.MaxBacklog = DefaultMaxBacklog
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: create data directory: %w", err)
	}
	l := &Local{opts: opts}
	var err error
	if l.lock, err = lockDir(opts.Dir); err != nil {
		return nil, err
	}
	if l.stream, err = openStream(ctx, opts, opts.Logger.With("component", "sqlite")); err != nil {
		return nil, errors.Join(err, l.lock.release())
	}
	return l, nil
}

// Stream returns the durable ingest stream.
func (l *Local) Stream() *Stream { return l.stream }

// Ping checks the stream file answers, the directory takes a durable write
// and the stream's last group commit did not fail for lack of storage.
func (l *Local) Ping(ctx context.Context) error {
	if err := l.stream.f.r.PingContext(ctx); err != nil {
		return translate(err, "ping")
	}
	if err := probeWrite(l.opts.Dir); err != nil {
		return err
	}
	return l.stream.writeFailure()
}

// DiskBytes is the size of every file in the directory.
func (l *Local) DiskBytes() (int64, error) { return dirBytes(l.opts.Dir) }

// Close closes the stream and releases the directory.
func (l *Local) Close() error {
	return errors.Join(l.stream.Close(), l.lock.release())
}

// Ready is the cheap readiness check, as DB.Ready: a durable write in the
// directory and the stream's last commit result, no connection taken.
func (l *Local) Ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := probeWrite(l.opts.Dir); err != nil {
		return err
	}
	return l.stream.writeFailure()
}
