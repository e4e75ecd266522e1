package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigilhq/vigil/internal/audit"
)

// Messages of the storage conditions a client sees in a 503.
const (
	msgFull        = "storage is full: the PostgreSQL server has no space left; free space and retry"
	msgReadOnly    = "storage is read-only: the PostgreSQL server does not accept writes"
	msgUnreachable = "storage is unavailable: the PostgreSQL server cannot be reached; retry later"
	msgContention  = "storage is busy: a write conflicted with a concurrent one; retry"
	msgOverloaded  = "storage is overloaded: the PostgreSQL server refused a connection or ran out of a resource; retry later"
)

// translate maps a driver error onto the domain's codes by SQLSTATE and
// type, never by message text: no rows → ENOTFOUND; a unique violation →
// ECONFLICT; bad input the server refused (invalid text encoding, a value
// out of range) → EINVALID; a full disk, a read-only server, a refused or
// broken connection, a deadlock or serialization failure → EUNAVAILABLE
// (the write did not happen; retrying is right). Context errors stay
// context errors. op names the operation for the wrapped text.
func translate(err error, op string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	var ae *audit.Error
	if errors.As(err, &ae) {
		return err
	}
	wrap := func(code, msg string) error {
		return &audit.Error{Code: code, Message: msg, Err: fmt.Errorf("%s: %w", op, err)}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return wrap(audit.ENOTFOUND, "not found")
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch code := pe.Code; {
		case code == "23505":
			return wrap(audit.ECONFLICT, "already exists")
		case code == "22021", code == "22P05", code == "22003", code == "22001", code == "54000":
			// invalid byte sequence, untranslatable character, numeric
			// out of range, string too long, program limit exceeded
			return wrap(audit.EINVALID, "the database refused a value: "+pe.Message)
		case code == "53100":
			return wrap(audit.EUNAVAILABLE, msgFull)
		case code == "25006":
			return wrap(audit.EUNAVAILABLE, msgReadOnly)
		case code == "40001", code == "40P01":
			return wrap(audit.EUNAVAILABLE, msgContention)
		case code == "53300", code == "53200", code == "53400", code == "55P03":
			return wrap(audit.EUNAVAILABLE, msgOverloaded)
		case code[:2] == "08", code == "57P01", code == "57P02", code == "57P03":
			return wrap(audit.EUNAVAILABLE, msgUnreachable)
		case code == "57014": // query_canceled (statement_timeout)
			return fmt.Errorf("%s: %w", op, context.DeadlineExceeded)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err) || errors.Is(err, net.ErrClosed) {
		return wrap(audit.EUNAVAILABLE, msgUnreachable)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// retryable reports whether err is a deadlock or serialization failure that
// retrying the whole transaction resolves.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// sqlState is err's SQLSTATE, or "".
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// inTx runs fn in a transaction and commits it, retrying the whole of it
// up to three times on a deadlock or serialization failure. fn must not
// have effects outside the transaction.
func (s *Store) inTx(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		err = s.tryTx(ctx, fn)
		if !retryable(err) {
			break
		}
	}
	return translate(err, op)
}

func (s *Store) tryTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// notFound is an ENOTFOUND error for the named thing.
func notFound(what, id string) error {
	return &audit.Error{Code: audit.ENOTFOUND, Message: fmt.Sprintf("%s %q not found", what, id)}
}

// invalid is an EINVALID error naming field.
func invalid(field, format string, args ...any) error {
	return &audit.Error{Code: audit.EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}
