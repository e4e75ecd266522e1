package postgres

import (
	"context"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// lockConnConfig is the configuration of a dedicated connection that
// holds session advisory locks (the node lock, a node's unit locks):
// url's, named appName in pg_stat_activity, with schema as its
// search_path (for the epochs next to the locks) and short TCP keepalives.
// An unparseable url is EINVALID without the parse error, which can quote
// the URL, password included.
func lockConnConfig(url, schema, appName string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, invalid("url", "postgres: the connection URL cannot be parsed")
	}
	cfg.RuntimeParams["application_name"] = appName
	cfg.RuntimeParams["search_path"] = schema
	// The locks live as long as the server sees this connection: after a
	// crash of the machine or a network partition, keepalives end it in
	// about 15s (5s idle, then 3 probes 2s apart; tcp_user_timeout for
	// unacknowledged data) instead of the kernel default of two hours,
	// and then another node can take the locks. Over a unix socket they
	// do not apply, and none are needed.
	if cfg.Host != "" && !strings.HasPrefix(cfg.Host, "/") {
		cfg.RuntimeParams["tcp_keepalives_idle"] = "5"
		cfg.RuntimeParams["tcp_keepalives_interval"] = "2"
		cfg.RuntimeParams["tcp_keepalives_count"] = "3"
		cfg.RuntimeParams["tcp_user_timeout"] = "15000"
		dialer := &net.Dialer{KeepAlive: 5 * time.Second, Timeout: 10 * time.Second}
		cfg.DialFunc = dialer.DialContext
	}
	return cfg, nil
}

// advisoryKeyExpr is the bigint key of an advisory lock row k of pg_locks
// (where objsubid = 1): classid holds its high half, objid its low half.
const advisoryKeyExpr = `((k.classid::int8 << 32) | k.objid::int8)`

// endGhost terminates, from conn, backend pid when it still holds under
// appName the advisory lock of one of keys (each hashed with
// hashtextextended): a lock connection this node lost whose end the server
// has not noticed yet, which would otherwise keep this node waiting behind
// its own locks. It waits up to 2s for the backend to exit, its locks with
// it, and reports whether it found one to end. Any failure counts as none
// found: the ghost ends when the server notices the connection is gone.
func endGhost(ctx context.Context, conn *pgx.Conn, pid int32, appName string, keys []string) bool {
	if pid == 0 || len(keys) == 0 {
		return false
	}
	var found int
	err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(a.pid, 2000)) FROM pg_stat_activity a
		WHERE a.pid = $1 AND a.application_name = $3 AND EXISTS (SELECT 1 FROM pg_locks k
			WHERE k.pid = a.pid AND k.locktype = 'advisory' AND k.granted AND k.objsubid = 1
				AND `+advisoryKeyExpr+` IN (SELECT hashtextextended(x, 0) FROM unnest($2::text[]) AS x))`,
		pid, keys, appName).Scan(&found)
	return err == nil && found > 0
}

// backendPID is the server process of conn, 0 when unknown.
func backendPID(ctx context.Context, conn *pgx.Conn) int32 {
	var pid int32
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		return 0
	}
	return pid
}
