package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

// UnitLocks holds advisory locks on detection units ("p0".."p15",
// "installation") for one node, all on one dedicated connection: a unit is
// processed by the node holding its lock, and by no other. Taking a unit
// (TryTake) begins a new epoch of it, which the node hands to
// Store.UnitState for the unit's detection checkpoints: a node that lost a
// unit to another, unaware, writes none afterwards.
//
// The locks live as long as the connection. Check notices a lost
// connection (the locks went with it) and tells the node which units it
// lost. A UnitLocks is safe for concurrent use; its methods take turns on
// the connection.
type UnitLocks struct {
	mu     sync.Mutex
	url    string // never in an error: it can hold a password
	schema string
	holder string
	conn   *pgx.Conn // nil after a failed reconnect, and after Close
	pid    int32     // conn's backend, 0 unknown
	// held maps every unit held to the epoch TryTake began.
	held map[string]int64
	// ghostPID and ghostUnits are the backend of a connection lost while
	// it held ghostUnits, for the next connection to end (endGhost).
	ghostPID   int32
	ghostUnits []string
	closed     bool
}

// unitAppName is the application_name of the unit locks' connections, by
// which pg_stat_activity shows them.
const unitAppName = "vigil unit locks"

// unitStatementTimeout bounds each statement TryTake and Release run on the
// lock connection (the server's statement_timeout on it is lower, so that
// the server cancels a statement stuck behind a row lock and the
// connection survives). Their context is detached from the caller's: a
// statement cancelled midway closes the connection, and every lock with it.
const unitStatementTimeout = 15 * time.Second

// unitServerTimeout is the statement_timeout of the lock connection, in
// milliseconds.
const unitServerTimeout = "5000"

// unitName is what a unit's name must look like.
var unitName = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// maxHolder bounds a holder's name, in bytes.
const maxHolder = 255

// unitLockKey is the advisory lock key of unit in schema: distinct from
// the node lock's ("vigil.node."+schema) and from any other schema's or
// unit's, as neither names contain a dot.
func unitLockKey(schema, unit string) string { return "vigil.unit." + schema + "." + unit }

// checkUnit refuses (EINVALID) a unit name other than 1 to 32 characters
// of a-z, 0-9, _ and -.
func checkUnit(unit string) error {
	if unitName.MatchString(unit) {
		return nil
	}
	shown := fmt.Sprintf("%q", unit)
	if len(unit) > 64 {
		shown = fmt.Sprintf("of %d bytes", len(unit))
	}
	return invalid("unit", "postgres: unit name %s must be 1 to 32 characters of a-z, 0-9, _ and -", shown)
}

// checkHolder refuses (EINVALID) a holder name that is empty, longer than
// 255 bytes, not UTF-8 or holding a NUL.
func checkHolder(holder string) error {
	switch {
	case holder == "":
		return invalid("holder", "postgres: the unit locks' holder name is required")
	case len(holder) > maxHolder:
		return invalid("holder", "postgres: the unit locks' holder name is %d bytes long, at most %d", len(holder), maxHolder)
	case !utf8.ValidString(holder):
		return invalid("holder", "postgres: the unit locks' holder name is not valid UTF-8")
	case strings.IndexByte(holder, 0) >= 0:
		return invalid("holder", "postgres: the unit locks' holder name contains a NUL character")
	}
	return nil
}

// missingUnits is the error for a schema without the units table.
func missingUnits(schema string) error {
	return &audit.Error{Code: audit.EUNAVAILABLE,
		Message: fmt.Sprintf("postgres: schema %s has no units table (migration 0060_units); run `vigil migrate`", schema)}
}

// unitsError translates err of a statement on the units table, op naming
// it: a missing table is missingUnits.
func unitsError(err error, schema, op string) error {
	if sqlState(err) == "42P01" { // undefined_table
		return missingUnits(schema)
	}
	return translate(err, op)
}

// unitLocksClosed is the error of UnitLocks methods after Close.
func unitLocksClosed() error {
	return &audit.Error{Code: audit.EUNAVAILABLE, Message: "postgres: the unit locks are closed"}
}

// OpenUnitLocks connects the unit locks of the node named holder (shown by
// Store.Units; at most 255 bytes of UTF-8) on schema, holding none yet.
// EINVALID for an unparseable url (the error never quotes it), a schema
// that is not a lower-case identifier or a bad holder name; EUNAVAILABLE
// when the server cannot be reached or the schema lacks the units table
// (migration 0060_units).
func OpenUnitLocks(ctx context.Context, url, schema, holder string) (*UnitLocks, error) {
	if !ValidSchemaName(schema) {
		return nil, invalid("schema", "postgres: schema %q must be a lower-case identifier", schema)
	}
	if err := checkHolder(holder); err != nil {
		return nil, err
	}
	if _, err := lockConnConfig(url, schema, unitAppName); err != nil {
		return nil, err
	}
	l := &UnitLocks{url: url, schema: schema, holder: holder, held: map[string]int64{}}
	if err := l.connect(ctx); err != nil {
		return nil, err
	}
	var present bool
	if err := l.conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, schema+".units").Scan(&present); err != nil || !present {
		_ = l.conn.Close(context.WithoutCancel(ctx))
		if err != nil {
			return nil, translate(err, "look for the units table")
		}
		return nil, missingUnits(schema)
	}
	return l, nil
}

// connect opens l's connection (l.mu held, l.conn nil) and ends the ghost
// of a connection lost before, if any.
func (l *UnitLocks) connect(ctx context.Context) error {
	cfg, err := lockConnConfig(l.url, l.schema, unitAppName)
	if err != nil {
		return err
	}
	cfg.RuntimeParams["statement_timeout"] = unitServerTimeout
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return translate(err, "connect for the unit locks")
	}
	// The connection this node lost may be alive on the server still,
	// holding the units: end it, so that this node (or another) can take
	// them again now rather than once the server notices.
	keys := make([]string, len(l.ghostUnits))
	for i, u := range l.ghostUnits {
		keys[i] = unitLockKey(l.schema, u)
	}
	endGhost(ctx, conn, l.ghostPID, unitAppName, keys)
	l.ghostPID, l.ghostUnits = 0, nil
	l.conn = conn
	l.pid = backendPID(ctx, conn)
	return nil
}

// statementCtx is the context of a statement on the lock connection (see
// unitStatementTimeout).
func statementCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), unitStatementTimeout)
}

// TryTake tries once to take unit. On success it begins a new epoch of the
// unit: it increments the unit's epoch in the units table, recording l's
// holder and the time, and returns the new epoch and ok=true; the node
// gives that epoch to Store.UnitState. When another node holds the unit it
// returns ok=false and a nil error. A unit l already holds is not taken
// again: TryTake returns the epoch it began then, ok=true.
//
// The increment runs right after the lock is granted, and waits for a
// checkpoint of the unit that is reading the epoch (UnitState), as such a
// checkpoint waits for it: a checkpoint under the unit's previous epoch
// either commits before the new epoch or fails. When the increment fails,
// TryTake gives the lock up again and returns the error.
//
// EINVALID for a unit name other than 1 to 32 characters of a-z, 0-9, _
// and -. A cancelled ctx does not interrupt a statement once sent (it
// would close the connection, and every lock with it); each is bounded by
// its own timeout.
func (l *UnitLocks) TryTake(ctx context.Context, unit string) (epoch int64, ok bool, err error) {
	if err := checkUnit(unit); err != nil {
		return 0, false, err
	}
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, false, unitLocksClosed()
	}
	if e, held := l.held[unit]; held {
		return e, true, nil
	}
	if l.conn == nil { // Check lost it and could not reconnect; nothing is held
		if err := l.connect(ctx); err != nil {
			return 0, false, err
		}
	}
	sctx, cancel := statementCtx(ctx)
	defer cancel()
	key := unitLockKey(l.schema, unit)
	if err := l.conn.QueryRow(sctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, key).Scan(&ok); err != nil {
		return 0, false, translate(err, "take the lock of unit "+unit)
	}
	if !ok {
		return 0, false, nil
	}
	err = l.conn.QueryRow(sctx, `INSERT INTO units AS u (unit, epoch, holder, taken_ns)
		VALUES ($1, 1, $2, (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint)
		ON CONFLICT (unit) DO UPDATE SET epoch = u.epoch + 1, holder = excluded.holder, taken_ns = excluded.taken_ns
		RETURNING epoch`, unit, l.holder).Scan(&epoch)
	if err != nil {
		err = unitsError(err, l.schema, "begin an epoch of unit "+unit)
		if _, uerr := l.conn.Exec(sctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, key); uerr != nil {
			err = errors.Join(err, translate(uerr, "give the lock of unit "+unit+" up"))
		}
		return 0, false, err
	}
	l.held[unit] = epoch
	return epoch, true, nil
}

// Release gives unit up (pg_advisory_unlock); nil when l does not hold it.
// The unit's row keeps its epoch and holder: the next node to take the
// unit begins the next epoch. When the unlock fails on a connection still
// open, l still holds the unit and Release can be called again.
func (l *UnitLocks) Release(ctx context.Context, unit string) error {
	if err := checkUnit(unit); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, held := l.held[unit]; !held || l.conn == nil {
		return nil
	}
	sctx, cancel := statementCtx(ctx)
	defer cancel()
	var released bool
	err := l.conn.QueryRow(sctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, unitLockKey(l.schema, unit)).Scan(&released)
	if err != nil {
		if l.conn.IsClosed() { // the lock went with the connection
			delete(l.held, unit)
		}
		return translate(err, "release unit "+unit)
	}
	delete(l.held, unit)
	if !released {
		return &audit.Error{Code: audit.EUNAVAILABLE, Message: fmt.Sprintf(
			"postgres: the lock of unit %s was no longer held when released; its connection was lost", unit)}
	}
	return nil
}

// Held lists the units l holds, sorted.
func (l *UnitLocks) Held() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(maps.Keys(l.held))
}

// Check confirms that the lock connection answers (a ping with its own
// deadline, lockPingTimeout, detached from ctx: a ping cancelled midway
// closes the connection). When it does not, every lock went with it:
// Check closes it, forgets the units held, connects again (taking nothing
// again; ending the lost connection's backend if the server still has it
// holding them) and returns an EUNAVAILABLE error naming the units lost.
// The node must stop the work of every unit not in Held any more; it may
// take units again once Check returns nil. Check also returns an error
// when there is no connection and connecting fails. It returns ctx's
// error, without pinging, when ctx has ended.
func (l *UnitLocks) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return unitLocksClosed()
	}
	var lost []string
	var cause error
	if l.conn != nil {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockPingTimeout)
		err := l.conn.Ping(pctx)
		cancel()
		if err == nil {
			return nil
		}
		cause = translate(err, "ping the unit locks' connection")
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = l.conn.Close(cctx)
		cancel()
		lost = slices.Sorted(maps.Keys(l.held))
		clear(l.held)
		l.conn = nil
		if len(lost) > 0 {
			l.ghostPID, l.ghostUnits = l.pid, lost
		}
	}
	err := l.connect(ctx)
	if len(lost) == 0 {
		return err
	}
	return &audit.Error{Code: audit.EUNAVAILABLE, Err: errors.Join(cause, err), Message: fmt.Sprintf(
		"postgres: the unit locks' connection of %s was lost, and with it units %s; stop their work", l.holder, strings.Join(lost, ", "))}
}

// Close releases every unit and closes the connection. Later calls of l's
// methods return an error, Close nil.
func (l *UnitLocks) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	clear(l.held)
	if l.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), unitStatementTimeout)
	defer cancel()
	_, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
	cerr := l.conn.Close(ctx)
	l.conn = nil
	return errors.Join(translate(err, "release the unit locks"), translate(cerr, "close the unit locks' connection"))
}

// Unit is the row of a detection unit ever taken.
type Unit struct {
	// Name is the unit's name ("p0", "installation").
	Name string
	// Holder is the node that took the unit last (OpenUnitLocks' holder);
	// it may have given it up since (see Held).
	Holder string
	// Epoch is the unit's current epoch, counting the times it was taken.
	Epoch int64
	// TakenAt is when Holder took it, by the database server's clock.
	TakenAt time.Time
	// Held reports whether some connection holds the unit's lock right
	// now.
	Held bool
}

// Units lists every unit ever taken, by name (byte order).
func (s *Store) Units(ctx context.Context) ([]Unit, error) {
	// pg_locks is read once, for every unit (see advisoryKeyExpr).
	rows, err := s.pool.Query(ctx, `WITH locked AS MATERIALIZED (
			SELECT `+advisoryKeyExpr+` AS key FROM pg_locks k
			WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 1
				AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
		SELECT u.unit, u.holder, u.epoch, u.taken_ns,
			hashtextextended($1 || u.unit, 0) IN (SELECT key FROM locked)
		FROM units u ORDER BY u.unit`, unitLockKey(s.schema, ""))
	if err != nil {
		return nil, unitsError(err, s.schema, "list units")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Unit, error) {
		var u Unit
		var taken int64
		err := r.Scan(&u.Name, &u.Holder, &u.Epoch, &taken, &u.Held)
		u.TakenAt = fromNanos(taken)
		return u, err
	})
	if err != nil {
		return nil, unitsError(err, s.schema, "list units")
	}
	return out, nil
}
