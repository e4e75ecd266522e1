package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

// unitEpochQuery reads a unit's epoch. FOR SHARE makes a transaction that
// read it conflict with TryTake's increment: whichever comes second waits
// for the first to commit, and a reader that waited sees the new value.
const unitEpochQuery = `SELECT epoch FROM units WHERE unit = $1 FOR SHARE`

// UnitState is the detection state store of the node that took unit at
// epoch (UnitLocks.TryTake's value). GetState and ScanState are the
// store's. SaveState is the store's too, except that its transaction first
// reads the unit's epoch (FOR SHARE), as FencedState reads the node epoch:
// when it is no longer epoch, another node took the unit since, and
// SaveState writes nothing and returns an EUNAVAILABLE error that errors.Is
// ErrFenced (and audit.ErrFenced). A SaveState with nothing to write does
// not read the epoch. Because TryTake's increment and the read conflict, a
// save either commits before a newer epoch of the unit begins or fails.
//
// The fence covers whatever namespaces the node writes through it: keep
// each unit's state in namespaces of its own. SaveState refuses (EINVALID)
// a unit name TryTake would refuse and an epoch below 1, which TryTake
// never returns.
func (s *Store) UnitState(unit string, epoch int64) audit.StateStore {
	return unitState{s: s, unit: unit, epoch: epoch}
}

// unitState delegates rather than embeds the store, so that a type
// assertion on it finds no other store capability.
type unitState struct {
	s     *Store
	unit  string
	epoch int64
}

var _ audit.StateStore = unitState{}

// GetState is Store.GetState.
func (u unitState) GetState(ctx context.Context, ns, key string) ([]byte, error) {
	return u.s.GetState(ctx, ns, key)
}

// ScanState is Store.ScanState.
func (u unitState) ScanState(ctx context.Context, ns string, fn func(key string, value []byte) error) error {
	return u.s.ScanState(ctx, ns, fn)
}

// SaveState saves as Store.SaveState does while u's epoch is the unit's.
func (u unitState) SaveState(ctx context.Context, ns string, puts map[string][]byte, deletes []string) error {
	if err := checkUnit(u.unit); err != nil {
		return err
	}
	if u.epoch < 1 {
		return invalid("epoch", "postgres: unit %s's epoch must be at least 1 (TryTake's), not %d", u.unit, u.epoch)
	}
	return u.s.saveState(ctx, ns, puts, deletes, func(tx pgx.Tx) error {
		var current int64 // 0: the unit was never taken
		err := tx.QueryRow(ctx, unitEpochQuery, u.unit).Scan(&current)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			if sqlState(err) == "42P01" { // undefined_table
				return missingUnits(u.s.schema)
			}
			return err
		}
		if current != u.epoch {
			return &audit.Error{Code: audit.EUNAVAILABLE, Err: ErrFenced, Message: fmt.Sprintf(
				"postgres: another node took unit %s (unit epoch %d; this node's is %d); this node no longer writes its detection state",
				u.unit, current, u.epoch)}
		}
		return nil
	})
}
