package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// migrationFS holds the schema of each kind of file: migrations/<kind>/NNNN_name.sql.
//
//go:embed migrations
var migrationFS embed.FS

// migration is one embedded schema step.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the steps of one file kind in version order.
func migrations(kind string) ([]migration, error) {
	dir := path.Join("migrations", kind)
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations %s: %w", kind, err)
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration %s/%s: name must be NNNN_name.sql", kind, e.Name())
		}
		b, err := fs.ReadFile(migrationFS, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// goSteps are the migrations whose SQL is followed by a step in Go, in the
// same transaction: work SQL alone cannot do, such as re-encoding rows.
// They are keyed by file kind and version.
var goSteps = map[string]map[int]func(ctx context.Context, tx *sql.Tx) error{
	"meta": {150: convertChainEntries},
}

// migrationLog is the context key of the logger the Go steps of
// migrations report their progress to (withMigrationLog).
type migrationLog struct{}

// withMigrationLog returns ctx carrying the logger migration steps report
// to; without one they are silent.
func withMigrationLog(ctx context.Context, log *slog.Logger) context.Context {
	return context.WithValue(ctx, migrationLog{}, log)
}

// stepLog returns the logger withMigrationLog put in ctx, or a silent one.
func stepLog(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(migrationLog{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// migrate applies the pending migrations of kind to db, each in its own
// transaction together with its Go step (goSteps) and its row in
// schema_migrations, so a crash leaves the file at a whole version.
func migrate(ctx context.Context, db *sql.DB, kind string) error {
	ms, err := migrations(kind)
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return translate(err, "create schema_migrations")
	}
	for _, m := range ms {
		if err := applyMigration(ctx, db, m, goSteps[kind][m.version]); err != nil {
			return fmt.Errorf("migration %s/%s: %w", kind, m.name, err)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, m migration, step func(context.Context, *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "begin")
	}
	defer func() { _ = tx.Rollback() }()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
		return translate(err, "read version")
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return translate(err, "apply")
	}
	if step != nil {
		if err := step(ctx, tx); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UnixNano()); err != nil {
		return translate(err, "record version")
	}
	return translate(tx.Commit(), "commit")
}
