package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

// NodeLock is the session advisory lock the active node of a schema holds
// on its own connection for as long as it is active. Nodes run
// active/standby: the node holding the lock runs the pipeline, detection
// and webhooks; other nodes on the schema wait for it (WaitNodeLock) as
// standbys and the first to get it takes over once it frees, because the
// active node stopped or its connection died.
//
// A node that takes the lock then begins a new epoch (Store.BeginEpoch) and
// gives it to SetEpoch and Store.FencedState, so that an active node that
// lost its lock to another, unaware, neither takes it back (Check) nor
// writes a detection checkpoint (FencedState) afterwards.
type NodeLock struct {
	mu     sync.Mutex
	url    string
	schema string
	conn   *pgx.Conn
	epoch  int64
	// pid is the server process of the lock's connection (0 unknown).
	pid int32
}

// lockAppName is the application_name of the lock's connection, by which
// pg_stat_activity shows it.
const lockAppName = "vigil node lock"

func nodeLockKey(schema string) string { return "vigil.node." + schema }

// AcquireNodeLock takes the schema's node lock, or returns EUNAVAILABLE
// naming the holder's address when another node has it.
func AcquireNodeLock(ctx context.Context, url, schema string) (*NodeLock, error) {
	l, err := newNodeLock(url, schema)
	if err != nil {
		return nil, err
	}
	holder, err := l.take(ctx)
	if err != nil {
		return nil, err
	}
	if holder != "" {
		return nil, l.heldError(holder)
	}
	return l, nil
}

// WaitNodeLock takes the schema's node lock, trying every `every` until it
// gets it or ctx ends: how a standby waits to become active.
//
// After each try that fails, WaitNodeLock calls waiting (unless nil), and
// waits for its return before it sleeps: waiting(holder, nil) when another node
// holds the lock, holder describing it ("the node at 10.0.0.5", "a node on
// this host", "another node"); waiting("", err) when the try failed
// otherwise (the server cannot be reached, refused the connection, …),
// which is retried all the same. When ctx ends WaitNodeLock returns an
// error that errors.Is ctx.Err(), and that also wraps the last try's error
// when that try failed otherwise than by the lock being held.
//
// Only what no retry can mend is returned at once: an unparseable url, a
// schema that is not a lower-case identifier, or every not positive
// (EINVALID).
func WaitNodeLock(ctx context.Context, url, schema string, every time.Duration, waiting func(holder string, err error)) (*NodeLock, error) {
	l, err := newNodeLock(url, schema)
	if err != nil {
		return nil, err
	}
	if every <= 0 {
		return nil, invalid("every", "postgres: the node lock's retry interval must be positive, not %s", every)
	}
	var last error
	for {
		holder, err := l.take(ctx)
		if err == nil && holder == "" {
			return l, nil
		}
		if ctx.Err() != nil {
			break
		}
		last = err
		if waiting != nil {
			waiting(holder, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
		if ctx.Err() != nil {
			break
		}
	}
	if last != nil {
		return nil, fmt.Errorf("wait for the node lock of schema %s: %w (last try: %w)", schema, ctx.Err(), last)
	}
	return nil, ctx.Err()
}

// newNodeLock checks what take cannot retry past, before any try.
func newNodeLock(url, schema string) (*NodeLock, error) {
	if !ValidSchemaName(schema) {
		return nil, invalid("schema", "postgres: schema %q must be a lower-case identifier", schema)
	}
	if _, err := pgx.ParseConfig(url); err != nil {
		// The parse error can quote the URL, password included.
		return nil, invalid("url", "postgres: the connection URL cannot be parsed")
	}
	return &NodeLock{url: url, schema: schema}, nil
}

// take tries once to take the lock on a new connection, which l keeps on
// success. When another node holds the lock, it returns a description of
// that node (holder) and a nil error; err is any other failure.
func (l *NodeLock) take(ctx context.Context) (holder string, err error) {
	cfg, err := lockConnConfig(l.url, l.schema, lockAppName)
	if err != nil {
		return "", err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", translate(err, "connect for the node lock")
	}
	// A lock connection this node lost may still be alive on the server
	// (it has not noticed yet): end it, so that this node can take the
	// lock back rather than wait behind its own ghost. Only a backend
	// that holds this schema's lock under the lock's application name is
	// ended.
	tries := 1
	if endGhost(ctx, conn, l.pid, lockAppName, []string{nodeLockKey(l.schema)}) {
		tries = 10 // its lock goes as the backend exits
	}
	var ok bool
	for try := 0; try < tries && !ok; try++ {
		if try > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, nodeLockKey(l.schema)).Scan(&ok); err != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
			return "", translate(err, "take the node lock")
		}
	}
	if !ok {
		holder := lockHolder(ctx, conn, l.schema)
		_ = conn.Close(context.WithoutCancel(ctx))
		return holder, nil
	}
	l.conn = conn
	l.pid = backendPID(ctx, conn)
	return "", nil
}

// lockHolder describes the node holding the schema's lock: its backend
// holds the advisory lock of the schema's key (a bigint key shows in
// pg_locks as classid, its high half, and objid, its low half), in this
// database. A node of another schema on the same server is not named.
func lockHolder(ctx context.Context, conn *pgx.Conn, schema string) string {
	var addr *string
	err := conn.QueryRow(ctx, `SELECT a.client_addr::text FROM pg_locks k JOIN pg_stat_activity a ON a.pid = k.pid
		WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 1
			AND `+advisoryKeyExpr+` = hashtextextended($1, 0)
			AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND a.application_name = $2 AND a.pid <> pg_backend_pid()
		LIMIT 1`, nodeLockKey(schema), lockAppName).Scan(&addr)
	switch {
	case err != nil: // gone since, or the catalog is not readable
		return "another node"
	case addr == nil:
		return "a node on this host"
	default:
		return "the node at " + *addr
	}
}

// heldError is AcquireNodeLock's and Check's refusal when holder has the
// lock.
func (l *NodeLock) heldError(holder string) error {
	return &audit.Error{Code: audit.EUNAVAILABLE, Message: fmt.Sprintf(
		"postgres: %s already serves schema %s as its active node (stop it, or give this node its own schema)", holder, l.schema)}
}

// SetEpoch records the epoch this node began (Store.BeginEpoch) after it
// took the lock, for Check to verify when it takes the lock back. 0, the
// initial value, verifies nothing.
func (l *NodeLock) SetEpoch(epoch int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.epoch = epoch
}

// Check confirms the lock is still held: its connection answers. After a
// lost connection (the lock went with it) it tries once to take the lock
// again; EUNAVAILABLE if another node holds it or the try fails. With an
// epoch set (SetEpoch), having taken the lock back it also verifies that
// the schema's node epoch is still that epoch: when it is not, another
// node became active in between, so Check releases the lock again and
// returns an EUNAVAILABLE error that errors.Is ErrFenced (and does so on
// every later call). Readiness calls it.
//
// lockPingTimeout bounds Check's ping of the lock connection: a connection
// that cannot answer in that long is taken for lost.
const lockPingTimeout = 10 * time.Second

// Check does not ping with a context that has already ended (it returns
// the context's error), since a ping cancelled midway closes the
// connection, and the lock with it.
func (l *NodeLock) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		// The ping has its own deadline, detached from the caller's: a
		// ping cancelled midway closes the connection, and the lock with
		// it, so a slow readiness probe must not give the lock away.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockPingTimeout)
		err := l.conn.Ping(pctx)
		cancel()
		if err == nil {
			return nil
		}
		_ = l.conn.Close(context.WithoutCancel(ctx))
		l.conn = nil
	}
	holder, err := l.take(ctx)
	if err != nil {
		return err
	}
	if holder != "" {
		return l.heldError(holder)
	}
	if l.epoch == 0 {
		return nil
	}
	current, err := readEpoch(ctx, l.conn, l.schema)
	if err == nil && current == l.epoch {
		return nil
	}
	if err == nil {
		err = fencedError(current, l.epoch, "this node gave the node lock back")
	} else {
		err = translate(err, "read the node epoch")
	}
	if rerr := l.release(); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}

// Release gives the lock up and closes its connection.
func (l *NodeLock) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.release()
}

// release is Release with l.mu held.
func (l *NodeLock) release() error {
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
