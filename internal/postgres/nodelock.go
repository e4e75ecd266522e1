package postgres

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

// NodeLock is the session advisory lock a serving node holds on its own
// connection for as long as it runs: in this release one node serves a
// schema (its ingest stream and its detection engine's live state are the
// node's own), and a second node started on the same schema is refused
// instead of writing beside the first.
type NodeLock struct {
	mu     sync.Mutex
	url    string
	schema string
	conn   *pgx.Conn
}

func nodeLockKey(schema string) string { return "vigil.node." + schema }

// AcquireNodeLock takes the schema's node lock, or returns EUNAVAILABLE
// naming the holder's address when another node has it.
func AcquireNodeLock(ctx context.Context, url, schema string) (*NodeLock, error) {
	if !ValidSchemaName(schema) {
		return nil, invalid("schema", "postgres: schema %q must be a lower-case identifier", schema)
	}
	l := &NodeLock{url: url, schema: schema}
	if err := l.take(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *NodeLock) take(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(l.url)
	if err != nil {
		return invalid("url", "postgres: the connection URL cannot be parsed")
	}
	cfg.RuntimeParams["application_name"] = "vigil node lock"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return translate(err, "connect for the node lock")
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, nodeLockKey(l.schema)).Scan(&ok); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return translate(err, "take the node lock")
	}
	if !ok {
		holder := "another node"
		var addr *string
		if err := conn.QueryRow(ctx, `SELECT a.client_addr::text FROM pg_locks k JOIN pg_stat_activity a ON a.pid = k.pid
			WHERE k.locktype = 'advisory' AND k.granted AND a.application_name = 'vigil node lock' AND a.pid <> pg_backend_pid() LIMIT 1`).Scan(&addr); err == nil {
			if addr != nil {
				holder = "the node at " + *addr
			} else {
				holder = "a node on this host"
			}
		}
		_ = conn.Close(context.WithoutCancel(ctx))
		return &audit.Error{Code: audit.EUNAVAILABLE, Message: fmt.Sprintf(
			"postgres: %s already serves schema %s; one node serves a schema in this release (stop it, or give this node its own schema)", holder, l.schema)}
	}
	l.conn = conn
	return nil
}

// Check confirms the lock is still held: its connection answers. After a
// lost connection (the lock went with it) it tries once to take the lock
// again; EUNAVAILABLE if that fails. Readiness calls it.
func (l *NodeLock) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		if err := l.conn.Ping(ctx); err == nil {
			return nil
		}
		_ = l.conn.Close(context.WithoutCancel(ctx))
		l.conn = nil
	}
	return l.take(ctx)
}

// Release gives the lock up and closes its connection.
func (l *NodeLock) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil
	}
	ctx := context.Background()
	_, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, nodeLockKey(l.schema))
	cerr := l.conn.Close(ctx)
	l.conn = nil
	if err != nil {
		return translate(err, "release the node lock")
	}
	return translate(cerr, "close the node lock connection")
}
