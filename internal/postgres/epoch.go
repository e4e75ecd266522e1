package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

// ErrFenced is returned (inside an EUNAVAILABLE *audit.Error) when another
// node took over work this one was doing: it became active after this one
// (the schema's node epoch is no longer the one this node was given;
// FencedState, NodeLock.Check), or took a detection unit this node held
// (the unit's epoch moved; UnitState). It wraps audit.ErrFenced, which the
// pipeline and the app check for.
var ErrFenced = fmt.Errorf("postgres: fenced by a newer epoch: %w", audit.ErrFenced)

// epochQuery reads the node epoch. FOR SHARE makes a transaction that read
// it conflict with BeginEpoch's update: whichever comes second waits for
// the first to commit, and a reader that waited sees the new value.
const epochQuery = `SELECT value FROM counters WHERE name = 'node_epoch' FOR SHARE`

// BeginEpoch increments the schema's node epoch and returns the new value.
// A node calls it right after taking the node lock and hands the value to
// FencedState and NodeLock.SetEpoch: from then on, checkpoints and lock
// recoveries of any node that became active earlier are refused.
func (s *Store) BeginEpoch(ctx context.Context) (int64, error) {
	var epoch int64
	err := s.pool.QueryRow(ctx, `UPDATE counters SET value = value + 1 WHERE name = 'node_epoch' RETURNING value`).Scan(&epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, missingEpoch(s.schema)
	}
	if err != nil {
		return 0, translate(err, "begin node epoch")
	}
	return epoch, nil
}

// readEpoch reads the node epoch on q (a transaction, or the node lock's
// connection).
func readEpoch(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, schema string) (int64, error) {
	var epoch int64
	err := q.QueryRow(ctx, epochQuery).Scan(&epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, missingEpoch(schema)
	}
	return epoch, err
}

func missingEpoch(schema string) error {
	return &audit.Error{Code: audit.EUNAVAILABLE,
		Message: fmt.Sprintf("postgres: schema %s has no node epoch (migration 0050_cluster); run `vigil migrate`", schema)}
}

// fencedError is the ErrFenced error for a node given epoch mine that finds
// the schema at epoch current; then says what it did about it.
func fencedError(current, mine int64, then string) error {
	return &audit.Error{Code: audit.EUNAVAILABLE, Err: ErrFenced, Message: fmt.Sprintf(
		"postgres: another node became active (node epoch %d; this node's is %d); %s", current, mine, then)}
}

// FencedState is the store's detection state for the node that became
// active at epoch (BeginEpoch's value). GetState and ScanState are the
// store's. SaveState is the store's too, except that its transaction first
// reads the node epoch (FOR SHARE): when it is no longer epoch, another
// node became active since, and SaveState writes nothing and returns an
// EUNAVAILABLE error that errors.Is ErrFenced. A SaveState with nothing to
// write does not read the epoch. Because BeginEpoch's update and the read
// conflict, a save either commits before a newer epoch begins or fails.
func (s *Store) FencedState(epoch int64) audit.StateStore {
	return fencedState{s: s, epoch: epoch}
}

// fencedState delegates rather than embeds the store, so that a type
// assertion on it finds no other store capability.
type fencedState struct {
	s     *Store
	epoch int64
}

var _ audit.StateStore = fencedState{}

// GetState is Store.GetState.
func (f fencedState) GetState(ctx context.Context, ns, key string) ([]byte, error) {
	return f.s.GetState(ctx, ns, key)
}

// ScanState is Store.ScanState.
func (f fencedState) ScanState(ctx context.Context, ns string, fn func(key string, value []byte) error) error {
	return f.s.ScanState(ctx, ns, fn)
}

// SaveState saves as Store.SaveState does while f's epoch is current.
func (f fencedState) SaveState(ctx context.Context, ns string, puts map[string][]byte, deletes []string) error {
	return f.s.saveState(ctx, ns, puts, deletes, func(tx pgx.Tx) error {
		current, err := readEpoch(ctx, tx, f.s.schema)
		if err != nil {
			return err
		}
		if current != f.epoch {
			return fencedError(current, f.epoch, "this node no longer writes detection state")
		}
		return nil
	})
}
