package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

// Node roles: the node holding the node lock is active, the others wait as
// standbys.
const (
	RoleActive  = "active"
	RoleStandby = "standby"
)

// MaxNodes bounds the nodes table: a heartbeat of a new name is refused
// while this many rows exist.
const MaxNodes = 1000

// NodeExpiry is how long a node's row outlives its last heartbeat: each
// heartbeat deletes the rows of nodes not seen for longer.
const NodeExpiry = 24 * time.Hour

// maxNodeText bounds Node's text fields, in bytes.
const maxNodeText = 255

// Node is what a node reports of itself in its heartbeat, for `vigil
// cluster status`.
type Node struct {
	// Name identifies the node; required. At most 255 bytes of UTF-8.
	Name string
	// Address is where the node can be reached (host:port); may be empty.
	// At most 255 bytes of UTF-8.
	Address string
	// Role is RoleActive or RoleStandby.
	Role string
	// Version is the node's build version; at most 255 bytes of UTF-8.
	Version string
	// Epoch is the node epoch the node began as active (Store.BeginEpoch);
	// 0 for a node never active.
	Epoch int64
	// Started is when the node started.
	Started time.Time
	// Seen is when the heartbeat was sent; the store's clock when zero.
	Seen time.Time
	// Lag is how many events the node has not processed yet, -1 when
	// unknown (a standby).
	Lag int64
}

// validate reports every problem of n, each naming its field.
func (n Node) validate() error {
	var ps []audit.Problem
	text := func(field, v string, required bool) {
		switch {
		case v == "" && required:
			ps = append(ps, audit.Problem{Field: field, Message: fmt.Sprintf("node %s is required", field)})
		case len(v) > maxNodeText:
			ps = append(ps, audit.Problem{Field: field, Message: fmt.Sprintf("node %s is %d bytes long, at most %d", field, len(v), maxNodeText)})
		case !utf8.ValidString(v):
			ps = append(ps, audit.Problem{Field: field, Message: fmt.Sprintf("node %s is not valid UTF-8", field)})
		case strings.IndexByte(v, 0) >= 0: // PostgreSQL text cannot hold it
			ps = append(ps, audit.Problem{Field: field, Message: fmt.Sprintf("node %s contains a NUL character", field)})
		}
	}
	text("name", n.Name, true)
	text("address", n.Address, false)
	text("version", n.Version, false)
	if n.Role != RoleActive && n.Role != RoleStandby {
		ps = append(ps, audit.Problem{Field: "role", Message: fmt.Sprintf("node role must be %s or %s", RoleActive, RoleStandby)})
	}
	if n.Epoch < 0 {
		ps = append(ps, audit.Problem{Field: "epoch", Message: "node epoch must not be negative"})
	}
	if n.Lag < -1 {
		ps = append(ps, audit.Problem{Field: "lag", Message: "node lag must be -1 (unknown) or more"})
	}
	return audit.Invalid(ps)
}

// Heartbeat records n, replacing the row of the same name, and deletes the
// rows of nodes not seen for NodeExpiry (by the store's clock). EINVALID,
// naming the field, for a name, address or version that is empty (name
// only), longer than 255 bytes, not UTF-8 or holding a NUL, or a role other than
// RoleActive and RoleStandby; ETOOLARGE for a new name while MaxNodes rows
// exist.
func (s *Store) Heartbeat(ctx context.Context, n Node) error {
	if err := n.validate(); err != nil {
		return err
	}
	now := s.opts.Now()
	if n.Seen.IsZero() {
		n.Seen = now
	}
	return s.inTx(ctx, "heartbeat", func(tx pgx.Tx) error {
		// Serialises heartbeats, so that two new names cannot both pass
		// the MaxNodes check.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "vigil.nodes."+s.schema); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM nodes WHERE seen_ns < $1`, nanos(now.Add(-NodeExpiry))); err != nil {
			return err
		}
		var known bool
		var count int
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM nodes WHERE name = $1), (SELECT count(*) FROM nodes)`, n.Name).Scan(&known, &count); err != nil {
			return err
		}
		if !known && count >= MaxNodes {
			return audit.Errorf(audit.ETOOLARGE, "a schema records at most %d nodes; node %q is not recorded until others expire (%s after their last heartbeat)", MaxNodes, n.Name, NodeExpiry)
		}
		_, err := tx.Exec(ctx, `INSERT INTO nodes (name, address, role, epoch, version, started_ns, seen_ns, lag)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (name) DO UPDATE SET address = excluded.address, role = excluded.role, epoch = excluded.epoch,
				version = excluded.version, started_ns = excluded.started_ns, seen_ns = excluded.seen_ns, lag = excluded.lag`,
			n.Name, n.Address, n.Role, n.Epoch, n.Version, nanos(n.Started), nanos(n.Seen), n.Lag)
		return err
	})
}

// Nodes lists the recorded nodes, active ones first, then by name (byte
// order). Rows not seen for NodeExpiry are listed until the next heartbeat
// of any node deletes them; Seen tells their age.
func (s *Store) Nodes(ctx context.Context) ([]Node, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, address, role, epoch, version, started_ns, seen_ns, lag FROM nodes
		ORDER BY role = 'active' DESC, name LIMIT $1`, MaxNodes)
	if err != nil {
		return nil, translate(err, "list nodes")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Node, error) {
		var n Node
		var started, seen int64
		err := r.Scan(&n.Name, &n.Address, &n.Role, &n.Epoch, &n.Version, &started, &seen, &n.Lag)
		n.Started, n.Seen = fromNanos(started), fromNanos(seen)
		return n, err
	})
	if err != nil {
		return nil, translate(err, "list nodes")
	}
	return out, nil
}
