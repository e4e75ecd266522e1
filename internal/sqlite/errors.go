package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mattn/go-sqlite3"

	"github.com/vigilhq/vigil/internal/audit"
)

// translate maps a driver error onto the domain's codes, by type and SQLite
// result code, never by message text: no rows → ENOTFOUND, a unique or
// primary-key violation → ECONFLICT, a full disk → EUNAVAILABLE. Context
// errors stay context errors. op names the operation for the wrapped text.
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
		case se.Code == sqlite3.ErrFull:
			return &audit.Error{Code: audit.EUNAVAILABLE, Message: "storage is full", Err: fmt.Errorf("%s: %w", op, err)}
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
