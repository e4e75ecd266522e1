package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/mattn/go-sqlite3" // also registers the "sqlite3" database/sql driver

	"github.com/vigilhq/vigil/internal/audit"
)

// Defaults of Options.
const (
	DefaultPartitionPeriod = 24 * time.Hour
	DefaultMaxBacklog      = 1_000_000
	DefaultMaxBatch        = 20_000
	// DefaultMaxOpenPartitions keeps two months of daily partitions open:
	// today's writes and the usual investigation windows never reopen a
	// file, and at about a dozen descriptors per partition the store stays
	// under 1,000 descriptors however long the history.
	DefaultMaxOpenPartitions = 64
	// DefaultDictionaryCap is how many strings one partition's dictionary
	// interns (tenants, actions, user agents, countries, AS organisations…)
	// before further optional strings are stored inline: at most a few MiB
	// of memory per open partition whatever clients send.
	DefaultDictionaryCap = 16_384
)

// Options configures Open.
type Options struct {
	// Dir is the data directory; it is created when missing. It holds
	// meta.db (tenants, keys, findings, state, rules), stream.db (the ingest
	// stream) and events/ (one file per partition period). Required.
	Dir string
	// Logger receives lifecycle logs (open, migrate, purge); nil discards.
	Logger *slog.Logger
	// Now is the clock, used for the retention day of idempotency keys;
	// nil means time.Now.
	Now func() time.Time
	// PartitionPeriod is the span of event time kept in one events file,
	// DefaultPartitionPeriod (a UTC day) when 0. It must be a whole number
	// of hours between 1h and 7×24h, and must not change for an existing
	// directory (Open refuses a directory made with another period).
	PartitionPeriod time.Duration
	// MaxBacklog is how many appended but not yet committed-by-every-consumer
	// records the stream holds before Append answers EUNAVAILABLE;
	// DefaultMaxBacklog when 0, no cap when negative.
	MaxBacklog int64
	// MaxBatch caps the events one group commit gathers, DefaultMaxBatch
	// when 0. A single Append larger than this still commits, alone.
	MaxBatch int
	// MaxOpenPartitions is how many event partition files are kept open,
	// DefaultMaxOpenPartitions when 0. Partitions open on first use and the
	// least recently used idle one closes when the bound is reached; one in
	// use by a reader or writer is never closed, so the bound is exceeded
	// only while more partitions than that are in use at once. At least 2.
	MaxOpenPartitions int
	// DictionaryCap is how many strings one partition's dictionary holds,
	// DefaultDictionaryCap when 0. Beyond it, optional strings (user
	// agents, client-supplied geo, enrichment values) are stored inline in
	// each event instead of interned; tenants and actions, which are
	// columns, are always interned.
	DictionaryCap int
	// SealAfter is how long after a partition's period ends its events are
	// sealed: their bodies compressed together in blocks (seal.go),
	// DefaultSealAfter when 0, never when negative. A partition is sealed
	// once it has also had no new events for SealQuiet; events that
	// arrive later are sealed by the next pass.
	SealAfter time.Duration
	// SealQuiet is how long a partition must go without new events before
	// it is sealed, DefaultSealQuiet when 0.
	SealQuiet time.Duration
}

const (
	// DefaultSealAfter seals a day partition six hours after its day ends.
	DefaultSealAfter = 6 * time.Hour
	// DefaultSealQuiet waits for a minute without new events.
	DefaultSealQuiet = time.Minute
)

// DB is the embedded single-node store. One DB implements every storage
// contract of internal/audit:
//
//   - DB itself: audit.TenantStore, audit.KeyStore, audit.FindingStore,
//     audit.StateStore, audit.RuleStore, audit.Pinger, audit.SizeReporter
//     and audit.Retention (purging events and stream idempotency keys);
//   - DB.Stream(): audit.EventStream, audit.StreamStats, audit.Retention;
//   - DB.Events(): audit.EventStore, audit.Retention, audit.Pinger,
//     audit.SizeReporter, plus DistinctActorsByIP.
//
// Close releases all of them.
type DB struct {
	opts   Options
	log    *slog.Logger
	meta   *file
	stream *Stream
	events *EventStore
	lock   *dirLock // nil on a read-only directory without a lock file
	// stopSeal ends the sealing goroutine; sealDone is closed when it has.
	stopSeal context.CancelFunc
	sealDone chan struct{}
	// stopReclaim ends reclaimLoop, which closes reclaimDone.
	stopReclaim context.CancelFunc
	reclaimDone chan struct{}
	// alertIDs names webhook deliveries.
	alertIDs audit.IDGenerator
}

var (
	_ audit.TenantStore  = (*DB)(nil)
	_ audit.KeyStore     = (*DB)(nil)
	_ audit.FindingStore = (*DB)(nil)
	_ audit.StateStore   = (*DB)(nil)
	_ audit.RuleStore    = (*DB)(nil)
	_ audit.Pinger       = (*DB)(nil)
	_ audit.SizeReporter = (*DB)(nil)
	_ audit.Retention    = (*DB)(nil)
)

// Open opens (creating when needed) the store in opts.Dir and applies any
// pending migrations to every file.
func Open(ctx context.Context, opts Options) (*DB, error) {
	if opts.Dir == "" {
		return nil, &audit.Error{Code: audit.EINVALID, Field: "dir", Message: "sqlite: data directory is required"}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PartitionPeriod == 0 {
		opts.PartitionPeriod = DefaultPartitionPeriod
	}
	if p := opts.PartitionPeriod; p < time.Hour || p > 7*24*time.Hour || p%time.Hour != 0 {
		return nil, &audit.Error{Code: audit.EINVALID, Field: "partition_period",
			Message: fmt.Sprintf("sqlite: partition period %s must be whole hours between 1h and 168h", p)}
	}
	if opts.MaxBacklog == 0 {
		opts.MaxBacklog = DefaultMaxBacklog
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.MaxOpenPartitions == 0 {
		opts.MaxOpenPartitions = DefaultMaxOpenPartitions
	}
	if opts.MaxOpenPartitions < 2 {
		return nil, &audit.Error{Code: audit.EINVALID, Field: "max_open_partitions",
			Message: fmt.Sprintf("sqlite: max open partitions %d must be at least 2", opts.MaxOpenPartitions)}
	}
	if opts.DictionaryCap <= 0 {
		opts.DictionaryCap = DefaultDictionaryCap
	}
	if opts.SealAfter == 0 {
		opts.SealAfter = DefaultSealAfter
	}
	if opts.SealQuiet <= 0 {
		opts.SealQuiet = DefaultSealQuiet
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, "events"), 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: create data directory: %w", err)
	}
	db := &DB{opts: opts, log: opts.Logger.With("component", "sqlite")}
	var err error
	if db.lock, err = lockDir(opts.Dir); err != nil {
		return nil, err
	}
	start := time.Now()
	if db.meta, err = openFile(withMigrationLog(ctx, db.log), filepath.Join(opts.Dir, "meta.db"), "meta", 4); err != nil {
		return nil, errors.Join(err, db.lock.release())
	}
	if took := time.Since(start); took > time.Second {
		// A migration that rewrote data (0150 re-encodes the chains).
		db.log.LogAttrs(ctx, slog.LevelInfo, "meta.db opened and migrated", slog.Duration("took", took.Round(time.Millisecond)))
	}
	if err := db.meta.ensureIncrementalVacuum(ctx, db.log); err != nil {
		if audit.ErrorCode(err) != audit.EUNAVAILABLE {
			return nil, errors.Join(err, db.meta.close(), db.lock.release())
		}
		// A full or read-only disk: the store still opens, and the next
		// open tries again.
		db.log.LogAttrs(ctx, slog.LevelWarn, "meta.db keeps its free pages until it can be converted to incremental auto-vacuum",
			slog.String("error", err.Error()))
	}
	if db.stream, err = openStream(ctx, db.opts, db.log); err != nil {
		return nil, errors.Join(err, db.meta.close(), db.lock.release())
	}
	if db.events, err = openEventStore(db.opts, db.log); err != nil {
		return nil, errors.Join(err, db.stream.Close(), db.meta.close(), db.lock.release())
	}
	rctx, stop := context.WithCancel(context.Background())
	db.stopReclaim, db.reclaimDone = stop, make(chan struct{})
	go db.reclaimLoop(rctx)
	db.log.LogAttrs(ctx, slog.LevelInfo, "store open", slog.String("dir", opts.Dir))
	db.sealDone = make(chan struct{})
	if opts.SealAfter > 0 {
		var sctx context.Context
		sctx, db.stopSeal = context.WithCancel(context.WithoutCancel(ctx))
		go func() {
			defer close(db.sealDone)
			db.events.runSeal(sctx, opts.SealAfter, opts.SealQuiet, opts.Now)
		}()
	} else {
		db.stopSeal = func() {}
		close(db.sealDone)
	}
	return db, nil
}

// Free-page reclaim of meta.db. Retention deletes chain blocks and
// findings, detection checkpoints rewrite state, and the pages they free
// would stay in the file for good (meta.db had ~30 MiB of them on a data
// directory of 366k events). Every metaReclaimEvery, reclaimLoop gives
// back at most metaReclaimStep of them, keeping metaReclaimSlack for the
// writes to come, as the stream does (Stream.reclaim).
const (
	metaReclaimEvery = 10 * time.Second
	metaReclaimStep  = 2048 // pages (8 MiB at 4 KiB)
	metaReclaimSlack = 4096 // pages (16 MiB at 4 KiB)
)

// reclaimMeta gives back meta.db's free pages beyond metaReclaimSlack, at
// most metaReclaimStep of them, and returns how many it gave back.
func (db *DB) reclaimMeta(ctx context.Context) (int64, error) {
	return db.meta.giveBack(ctx, metaReclaimSlack, metaReclaimStep)
}

// reclaimLoop runs reclaimMeta every metaReclaimEvery until ctx ends. A
// failure is logged when it starts, not at every tick.
func (db *DB) reclaimLoop(ctx context.Context) {
	defer close(db.reclaimDone)
	t := time.NewTicker(metaReclaimEvery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := db.reclaimMeta(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			db.log.LogAttrs(ctx, slog.LevelWarn, "meta.db: giving back free pages failed; retrying", slog.String("error", err.Error()))
		case err == nil:
			failing = false
			if n > 0 {
				db.log.LogAttrs(ctx, slog.LevelDebug, "meta.db: gave back free pages", slog.Int64("pages", n))
			}
		}
	}
}

// Stream returns the durable ingest stream.
func (db *DB) Stream() *Stream { return db.stream }

// Events returns the time-partitioned event store.
func (db *DB) Events() *EventStore { return db.events }

// Migrate applies pending migrations to every file of the store. Open has
// already done so; Migrate exists for `vigil migrate` and is idempotent.
func (db *DB) Migrate(ctx context.Context) error {
	if err := migrate(withMigrationLog(ctx, db.log), db.meta.w, "meta"); err != nil {
		return err
	}
	if err := migrate(ctx, db.stream.f.w, "stream"); err != nil {
		return err
	}
	return db.events.migrateAll(ctx)
}

// Close closes the stream, the event partitions and the metadata file.
func (db *DB) Close() error {
	db.stopSeal()
	<-db.sealDone
	if db.stopReclaim != nil {
		db.stopReclaim()
		<-db.reclaimDone
		db.stopReclaim = nil
	}
	err := errors.Join(db.stream.Close(), db.events.close(), db.meta.close())
	return errors.Join(err, db.lock.release())
}

// Ping is the readiness check: every file answers a trivial query, the
// data directory takes a small durable write (reads alone would not notice
// a full or read-only disk), and the stream's most recent group commit did
// not fail for lack of storage in the last few seconds. Failures are
// EUNAVAILABLE errors whose message names the condition.
func (db *DB) Ping(ctx context.Context) error {
	for _, f := range []*file{db.meta, db.stream.f} {
		if err := f.r.PingContext(ctx); err != nil {
			return translate(err, "ping")
		}
	}
	if err := db.events.Ping(ctx); err != nil {
		return err
	}
	if err := probeWrite(db.opts.Dir); err != nil {
		return err
	}
	return db.stream.writeFailure()
}

// probeWrite writes, fsyncs and removes one page-sized file in dir.
func probeWrite(dir string) error {
	f, err := os.CreateTemp(dir, ".write-probe-*")
	if err != nil {
		return osStorageError(err, "readiness write probe")
	}
	name := f.Name()
	_, err = f.Write(make([]byte, 4096))
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close(), os.Remove(name))
	return osStorageError(err, "readiness write probe")
}

// DiskBytes returns the bytes used by every file under Dir, WAL included.
func (db *DB) DiskBytes() (int64, error) { return dirBytes(db.opts.Dir) }

// Purge deletes tenant's events older than before, and the stream's
// idempotency keys of that tenant from days wholly before it.
func (db *DB) Purge(ctx context.Context, tenant string, before time.Time) (int64, error) {
	n, err := db.events.Purge(ctx, tenant, before)
	if err != nil {
		return n, err
	}
	if _, err := db.stream.Purge(ctx, tenant, before); err != nil {
		return n, err
	}
	return n, nil
}

func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a partition removed by retention while walking
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: disk usage of %s: %w", dir, err)
	}
	return n, nil
}

// file is one SQLite database file with a single-connection writer pool
// (SQLite has one writer at a time; a pool of one turns contention into a
// Go-side queue instead of SQLITE_BUSY) and a reader pool.
type file struct {
	path string
	w, r *sql.DB
}

// mappedDriver is the database/sql driver of the day partitions' readers:
// SQLite's own, with each connection reading the file through a memory
// map of up to readMapBytes. A search that follows an index into a day of
// a million events reads each row's page and its block's page once, at
// random: through the map that is a memory access where the page cache
// of the connection would copy the page out of the kernel's with a
// system call each time (about a fifth of an actor timeline over sealed
// days, BenchmarkSearch at 10M events). Mapped pages are the kernel's
// page cache, shared and reclaimable; they count in the process's RSS as
// file pages (RssFile) once touched. Writers keep reading through their
// page cache: SQLite writes through the file, not the map.
const mappedDriver = "sqlite3_vigil_mapped"

// readMapBytes bounds one reader connection's map; a larger file is read
// beyond it through the page cache.
const readMapBytes = 1 << 30

func init() {
	sql.Register(mappedDriver, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		_, err := c.Exec(fmt.Sprintf("PRAGMA mmap_size = %d", readMapBytes), nil)
		return err
	}})
}

// pageCacheKiB is the page cache of each connection openFile opens (the
// writers of the day partitions being filled get more: warmCacheKiB).
const pageCacheKiB = 16 << 10

// openFile opens path in WAL mode with synchronous=FULL: a commit returns
// after fsync, which the stream's acknowledgement and the pipeline's
// commit-after-insert order both rely on.
func openFile(ctx context.Context, path, kind string, readers int) (*file, error) {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_busy_timeout", "10000")
	q.Set("_txlock", "immediate")
	q.Set("_cache_size", fmt.Sprint(-pageCacheKiB))
	// Keep each connection's most recent prepared statements: the
	// pipeline's per-row writes (findings, incidents, the alert marks and
	// change log) pass their SQL text to ExecContext, and without the
	// cache every row prepared its statement again (8 % of the pipeline's
	// CPU in BenchmarkDrain). The driver re-prepares a cached statement
	// after a schema change, such as a new day partition.
	q.Set("_stmt_cache_size", "64")
	if kind == "stream" || kind == "meta" {
		// Pages freed by deletes are handed back to the file system in
		// small steps (file.giveBack): the stream's, a queue, after
		// trimming (Stream.reclaim); meta.db's, after retention trims
		// chains and purges findings, on a timer (DB.reclaimLoop). That
		// needs incremental auto-vacuum. It takes effect on a new file; an
		// older one is converted at open (file.ensureIncrementalVacuum).
		q.Set("_auto_vacuum", "incremental")
	}
	dsn := "file:" + path + "?" + q.Encode()
	w, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := migrate(ctx, w, kind); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: migrate %s: %w", path, err), w.Close())
	}
	q.Set("_txlock", "deferred")
	driver := "sqlite3"
	if kind == "events" {
		driver = mappedDriver
	}
	r, err := sql.Open(driver, "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open %s: %w", path, err), w.Close())
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	return &file{path: path, w: w, r: r}, nil
}

// ensureIncrementalVacuum converts a file created before incremental
// auto-vacuum with one VACUUM, which rewrites the whole file (and needs
// free space for a copy of it): logged, with how long it took.
func (f *file) ensureIncrementalVacuum(ctx context.Context, log *slog.Logger) error {
	var mode int
	if err := f.w.QueryRowContext(ctx, `PRAGMA auto_vacuum`).Scan(&mode); err != nil {
		return translate(err, "read auto_vacuum of "+f.path)
	}
	const incremental = 2
	if mode == incremental {
		return nil
	}
	start := time.Now()
	log.Info("converting to incremental auto-vacuum (one VACUUM)", "path", f.path)
	if _, err := f.w.ExecContext(ctx, `PRAGMA auto_vacuum = INCREMENTAL`); err != nil {
		return translate(err, "set auto_vacuum of "+f.path)
	}
	if _, err := f.w.ExecContext(ctx, `VACUUM`); err != nil {
		return translate(err, "vacuum "+f.path)
	}
	log.Info("converted to incremental auto-vacuum", "path", f.path, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// giveBack returns the file's free pages beyond slack to the file system,
// at most step of them, in one short write transaction, and returns how
// many it gave back.
func (f *file) giveBack(ctx context.Context, slack, step int64) (int64, error) {
	var free int64
	if err := f.w.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&free); err != nil {
		return 0, translate(err, "read free pages of "+f.path)
	}
	if free <= slack {
		return 0, nil
	}
	n := min(free-slack, step)
	// SQLite frees one page per step of incremental_vacuum; Exec would
	// step it once, so the rows (none are returned) are drained instead.
	rows, err := f.w.QueryContext(ctx, fmt.Sprintf(`PRAGMA incremental_vacuum(%d)`, n))
	if err != nil {
		return 0, translate(err, "give back free pages of "+f.path)
	}
	for rows.Next() {
	}
	return n, translate(errors.Join(rows.Err(), rows.Close()), "give back free pages of "+f.path)
}

func (f *file) close() error {
	if f == nil {
		return nil
	}
	return errors.Join(f.r.Close(), f.w.Close())
}
