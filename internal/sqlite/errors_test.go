package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"github.com/mattn/go-sqlite3"

	"github.com/vigilhq/vigil/internal/audit"
)

// TestTranslateStorageConditions checks that a full disk, a read-only
// filesystem and other I/O errors become EUNAVAILABLE (503 + Retry-After)
// with a message naming the condition, decided by result code and errno.
func TestTranslateStorageConditions(t *testing.T) {
	for _, c := range []struct {
		name     string
		err      error
		code     string
		message  string
		wrapsCtx bool
	}{
		{name: "SQLITE_FULL", err: sqlite3.Error{Code: sqlite3.ErrFull}, code: audit.EUNAVAILABLE, message: msgFull},
		{name: "I/O error with ENOSPC", err: sqlite3.Error{Code: sqlite3.ErrIoErr, SystemErrno: syscall.ENOSPC}, code: audit.EUNAVAILABLE, message: msgFull},
		{name: "I/O error with EDQUOT", err: sqlite3.Error{Code: sqlite3.ErrIoErr, SystemErrno: syscall.EDQUOT}, code: audit.EUNAVAILABLE, message: msgFull},
		{name: "I/O error with EROFS", err: sqlite3.Error{Code: sqlite3.ErrIoErr, SystemErrno: syscall.EROFS}, code: audit.EUNAVAILABLE, message: msgReadOnly},
		{name: "SQLITE_READONLY", err: sqlite3.Error{Code: sqlite3.ErrReadonly}, code: audit.EUNAVAILABLE, message: msgReadOnly},
		{name: "I/O error with EIO", err: sqlite3.Error{Code: sqlite3.ErrIoErr, SystemErrno: syscall.EIO}, code: audit.EUNAVAILABLE, message: msgIO},
		{name: "unique violation stays a conflict", err: sqlite3.Error{Code: sqlite3.ErrConstraint, ExtendedCode: sqlite3.ErrConstraintUnique}, code: audit.ECONFLICT, message: "already exists"},
		{name: "no rows", err: sql.ErrNoRows, code: audit.ENOTFOUND, message: "not found"},
		{name: "context error stays", err: context.Canceled, wrapsCtx: true},
		{name: "other driver errors stay internal", err: sqlite3.Error{Code: sqlite3.ErrCorrupt}, code: audit.EINTERNAL},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := translate(fmt.Errorf("wrapped: %w", c.err), "commit append")
			if c.wrapsCtx {
				if !errors.Is(got, context.Canceled) {
					t.Fatalf("got %v, want the context error", got)
				}
				return
			}
			if code := audit.ErrorCode(got); code != c.code {
				t.Fatalf("code %q, want %q (%v)", code, c.code, got)
			}
			if c.message != "" && audit.ErrorMessage(got) != c.message {
				t.Fatalf("message %q, want %q", audit.ErrorMessage(got), c.message)
			}
			if !errors.Is(got, c.err) {
				t.Fatalf("%v does not wrap the driver error", got)
			}
		})
	}
}

func TestOSStorageError(t *testing.T) {
	for _, c := range []struct {
		err     error
		message string
	}{
		{&fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, msgFull},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.EROFS}, msgReadOnly},
		{errors.Join(nil, &fs.PathError{Op: "sync", Path: "x", Err: syscall.EROFS}), msgReadOnly},
	} {
		got := osStorageError(c.err, "probe")
		if audit.ErrorCode(got) != audit.EUNAVAILABLE || audit.ErrorMessage(got) != c.message {
			t.Errorf("%v → %v, want EUNAVAILABLE %q", c.err, got, c.message)
		}
	}
	if got := osStorageError(&fs.PathError{Op: "open", Path: "x", Err: syscall.EACCES}, "probe"); audit.ErrorCode(got) != audit.EUNAVAILABLE {
		t.Errorf("EACCES → %v, want EUNAVAILABLE", got)
	}
	if osStorageError(nil, "probe") != nil {
		t.Error("nil error must stay nil")
	}
}

// TestStreamReportsWriteFailure checks that readiness reports a failed
// group commit for a while and forgets it after a successful one.
func TestStreamReportsWriteFailure(t *testing.T) {
	db, err := Open(t.Context(), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(t.Context()); err != nil {
		t.Fatalf("fresh store not ready: %v", err)
	}
	s := db.Stream()
	full := &audit.Error{Code: audit.EUNAVAILABLE, Message: msgFull}
	s.mu.Lock()
	s.failErr, s.failAt = full, s.now()
	s.mu.Unlock()
	if err := db.Ping(t.Context()); audit.ErrorMessage(err) != msgFull {
		t.Fatalf("Ping after a failed commit = %v, want %q", err, msgFull)
	}
	ev := &audit.Event{ID: "e1", Tenant: "t1", Action: "data.exported", Actor: audit.Actor{ID: "u1"}, Time: s.now()}
	if _, err := s.Append(t.Context(), []*audit.Event{ev}); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(t.Context()); err != nil {
		t.Fatalf("Ping after a successful commit = %v, want nil", err)
	}
}
