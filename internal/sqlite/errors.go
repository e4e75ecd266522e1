package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"syscall"

	"github.com/mattn/go-sqlite3"

	"github.com/vigilhq/vigil/internal/audit"
)

// Messages of the storage conditions a client sees in a 503 (and an
// operator in GET /v1/status, where the background readiness check records
// the last one; /readyz itself answers only ready or not): each names the
// problem and what fixes it.
const (
	msgFull     = "storage is full: no space left in the data directory; free space and retry"
	msgReadOnly = "storage is read-only: the data directory cannot be written; check the filesystem and its mount"
	msgIO       = "storage I/O error while writing the data directory; retry later"
)

// translate maps a driver error onto the domain's codes, by type, SQLite
// result code and OS errno, never by message text: no rows → ENOTFOUND, a
// unique or primary-key violation → ECONFLICT, a full disk, a read-only
// filesystem or another I/O error → EUNAVAILABLE (the write did not happen;
// retrying later is right). Context errors stay context errors. op names
// the operation for the wrapped text.
func translate(err error, op string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ae *audit.Error
	if errors.As(err, &ae) {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return &audit.Error{Code: audit.ENOTFOUND, Message: "not found", Err: fmt.Errorf("%s: %w", op, err)}
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch {
		case se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey:
			return &audit.Error{Code: audit.ECONFLICT, Message: "already exists", Err: fmt.Errorf("%s: %w", op, err)}
		case se.Code == sqlite3.ErrFull || se.SystemErrno == syscall.ENOSPC || se.SystemErrno == syscall.EDQUOT:
			return &audit.Error{Code: audit.EUNAVAILABLE, Message: msgFull, Err: fmt.Errorf("%s: %w", op, err)}
		case se.Code == sqlite3.ErrReadonly || se.SystemErrno == syscall.EROFS:
			return &audit.Error{Code: audit.EUNAVAILABLE, Message: msgReadOnly, Err: fmt.Errorf("%s: %w", op, err)}
		case se.Code == sqlite3.ErrIoErr:
			return &audit.Error{Code: audit.EUNAVAILABLE, Message: msgIO, Err: fmt.Errorf("%s: %w", op, err)}
		case se.Code == sqlite3.ErrInterrupt:
			return fmt.Errorf("%s: %w", op, context.Canceled)
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

func notFound(what, id string) error {
	return &audit.Error{Code: audit.ENOTFOUND, Message: fmt.Sprintf("%s %q not found", what, id)}
}

func invalid(field, format string, args ...any) error {
	return &audit.Error{Code: audit.EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// osStorageError maps an OS error from a direct file write in the data
// directory (the readiness probe) onto the same conditions as translate.
func osStorageError(err error, op string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		return &audit.Error{Code: audit.EUNAVAILABLE, Message: msgFull, Err: fmt.Errorf("%s: %w", op, err)}
	case errors.Is(err, syscall.EROFS):
		return &audit.Error{Code: audit.EUNAVAILABLE, Message: msgReadOnly, Err: fmt.Errorf("%s: %w", op, err)}
	}
	return &audit.Error{Code: audit.EUNAVAILABLE, Message: "storage cannot be written: " + err.Error(), Err: fmt.Errorf("%s: %w", op, err)}
}
