package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigilhq/vigil/internal/audit"
)

// DefaultSchema is the schema Vigil's tables live in when Options.Schema is
// empty.
const DefaultSchema = "vigil"

// DefaultMaxConns is the pool size when Options.MaxConns is 0.
const DefaultMaxConns = 16

// schemaName is what Options.Schema must look like: an unquoted, lower-case
// PostgreSQL identifier, so it is the same name in search_path, in SQL and
// in the catalog.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidSchemaName reports whether s can name Vigil's schema.
func ValidSchemaName(s string) bool { return schemaName.MatchString(s) }

// Options configure Open.
type Options struct {
	// URL is the connection string (postgres://… or key=value); required.
	// Pool settings in it (pool_max_conns, …) are honoured except where
	// MaxConns overrides them.
	URL string
	// Schema holds every table; DefaultSchema when empty. It is created
	// when missing (given the right to).
	Schema string
	// MaxConns caps the pool, DefaultMaxConns when 0; at least 2.
	MaxConns int
	// Migrate applies pending migrations at Open. Without it Open refuses
	// a schema whose migrations are behind (run `vigil migrate`).
	Migrate bool
	// Logger receives lifecycle logs; nil discards.
	Logger *slog.Logger
	// Now is the clock for recorded times; nil means time.Now.
	Now func() time.Time
}

// Store is an open PostgreSQL store.
type Store struct {
	pool   *pgxpool.Pool
	schema string
	opts   Options
	log    *slog.Logger
	parts  *partitions
	// alertIDs names webhook deliveries: ULIDs increasing across calls, as
	// the embedded store's.
	alertIDs audit.IDGenerator
}

// Open connects, checks (or, with Options.Migrate, applies) the schema's
// migrations and returns the store.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.URL == "" {
		return nil, &audit.Error{Code: audit.EINVALID, Field: "url", Message: "postgres: a connection URL is required"}
	}
	if opts.Schema == "" {
		opts.Schema = DefaultSchema
	}
	if !ValidSchemaName(opts.Schema) {
		return nil, &audit.Error{Code: audit.EINVALID, Field: "schema",
			Message: fmt.Sprintf("postgres: schema %q must be a lower-case identifier (a-z, 0-9, _; at most 63 characters, not starting with a digit)", opts.Schema)}
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.MaxConns < 2 {
		return nil, &audit.Error{Code: audit.EINVALID, Field: "max_conns", Message: "postgres: max_conns must be at least 2"}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		// The parse error can quote the URL, password included.
		return nil, &audit.Error{Code: audit.EINVALID, Field: "url", Message: "postgres: the connection URL cannot be parsed"}
	}
	cfg.MaxConns = int32(opts.MaxConns)
	if cfg.MinConns > cfg.MaxConns {
		cfg.MinConns = cfg.MaxConns
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = opts.Schema
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "vigil"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, translate(err, "connect")
	}
	s := &Store{pool: pool, schema: opts.Schema, opts: opts, log: opts.Logger}
	if err := s.prepare(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// prepare migrates (or checks the migrations) and loads what the store
// keeps in memory.
func (s *Store) prepare(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return translate(err, "connect")
	}
	if s.opts.Migrate {
		if err := s.migrate(ctx); err != nil {
			return err
		}
	} else if err := s.checkMigrated(ctx); err != nil {
		return err
	}
	return s.openEvents(ctx)
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return translate(s.pool.Ping(ctx), "ping")
}

// Ready checks that the store can take writes: the database answers and is
// not a read-only standby. It takes a connection only for a moment.
func (s *Store) Ready(ctx context.Context) error {
	var readOnly string
	if err := s.pool.QueryRow(ctx, `SHOW transaction_read_only`).Scan(&readOnly); err != nil {
		return translate(err, "readiness")
	}
	if readOnly == "on" {
		return &audit.Error{Code: audit.EUNAVAILABLE, Message: "storage is read-only: the PostgreSQL server does not accept writes (a standby, or default_transaction_read_only)"}
	}
	return nil
}

// Schema is the schema the store's tables live in.
func (s *Store) Schema() string { return s.schema }

// DiskBytes is the size of every table and index in the schema.
func (s *Store) DiskBytes() (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')`, s.schema).Scan(&n)
	return n, translate(err, "disk size")
}

// migrationFS holds the schema steps: migrations/NNNN_name.sql.
//
//go:embed migrations
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", e.Name())
		}
		b, err := fs.ReadFile(migrationFS, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// migrateLockKey is the advisory lock migrations run under, per schema.
func (s *Store) migrateLockKey() string { return "vigil.migrate." + s.schema }

// migrate applies pending migrations, each in its own transaction with its
// schema_migrations row, on one connection holding a session advisory lock
// so that nodes starting together apply each step once.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return translate(err, "connect")
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, s.migrateLockKey()); err != nil {
		return translate(err, "lock migrations")
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, s.migrateLockKey())
	}()
	if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+s.schema); err != nil {
		return translate(err, "create schema "+s.schema)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return translate(err, "create schema_migrations")
	}
	applied := 0
	for _, m := range ms {
		done, err := applyMigration(ctx, conn.Conn(), m)
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if done {
			applied++
			s.log.Info("postgres migration applied", "schema", s.schema, "migration", m.name)
		}
	}
	if applied > 0 {
		s.log.Info("postgres schema migrated", "schema", s.schema, "applied", applied)
	}
	return nil
}

func applyMigration(ctx context.Context, conn *pgx.Conn, m migration) (bool, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, translate(err, "begin")
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, m.version).Scan(&n); err != nil {
		return false, translate(err, "read version")
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.Exec(ctx, m.sql); err != nil {
		return false, translate(err, "apply")
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
		return false, translate(err, "record version")
	}
	return true, translate(tx.Commit(ctx), "commit")
}

// Pending lists the migrations not yet applied to the schema.
func (s *Store) Pending(ctx context.Context) ([]string, error) {
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	have := map[int]bool{}
	rows, err := s.pool.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		var pe interface{ SQLState() string }
		if errors.As(err, &pe) && pe.SQLState() == "42P01" { // undefined_table: nothing applied
			rows = nil
		} else {
			return nil, translate(err, "read schema_migrations")
		}
	}
	if rows != nil {
		vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return nil, translate(err, "read schema_migrations")
		}
		for _, v := range vs {
			have[v] = true
		}
	}
	var pending []string
	for _, m := range ms {
		if !have[m.version] {
			pending = append(pending, m.name)
		}
	}
	return pending, nil
}

func (s *Store) checkMigrated(ctx context.Context) error {
	pending, err := s.Pending(ctx)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return &audit.Error{Code: audit.EUNAVAILABLE,
			Message: fmt.Sprintf("postgres: schema %s has %d pending migrations (first: %s); run `vigil migrate` or set storage.postgres.auto_migrate", s.schema, len(pending), pending[0])}
	}
	return nil
}

// nanos is t as int64 nanoseconds since the Unix epoch; 0 for the zero time.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNanos is the inverse of nanos, in UTC.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
