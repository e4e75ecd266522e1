package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/vigilhq/vigil/internal/audit"
)

// LockFile is the name of the lock file in the data directory. A process
// that opens the store holds an exclusive lock on it (flock) until Close
// or its exit: two servers on one directory would split the stream between
// two pipelines, and so split detection, and both would keep in-memory
// dictionaries of the same partitions. The kernel releases the lock when
// the process dies, so a crash never leaves the directory locked; the pid
// written into the file is only a hint for the message.
const LockFile = "vigil.lock"

// ErrLocked is wrapped by Open's error when another process holds the data
// directory.
var ErrLocked = errors.New("data directory in use by another process")

// lockedError is the message of a refused Open; it is ErrLocked.
type lockedError struct{ msg string }

func (e *lockedError) Error() string        { return e.msg }
func (e *lockedError) Is(target error) bool { return target == ErrLocked }

// dirLock is a held lock on a data directory.
type dirLock struct{ f *os.File }

// lockDir takes the exclusive lock of dir without waiting.
func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		// A read-only data directory (a failed disk remounted read-only)
		// still opens for searches: lock the existing file read-only, or
		// go without a lock when there is none, since no process can
		// write there anyway.
		var rerr error
		if f, rerr = os.Open(path); rerr != nil {
			if errors.Is(rerr, os.ErrNotExist) && readOnly(err) {
				return nil, nil
			}
			return nil, osStorageError(err, "open lock file "+path)
		}
	}
	held, err := tryLock(f)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: lock %s: %w", path, err), f.Close())
	}
	if held {
		holder := "another Vigil process"
		if b, err := os.ReadFile(path); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				holder += fmt.Sprintf(" (pid %d)", pid)
			}
		}
		_ = f.Close()
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		return nil, &audit.Error{Code: audit.EUNAVAILABLE, Field: "dir", Err: &lockedError{
			fmt.Sprintf("data directory %s is in use by %s: only one process may open it at a time; "+
				"stop that server first, or manage tenants and keys through its HTTP API", dir, holder)}}
	}
	// Record who holds it. A failure here leaves the lock held and only the
	// hint missing.
	if err := f.Truncate(0); err == nil { // fails on a read-only file
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

// release gives the lock back. The file stays: removing it would let a
// third process lock a new file while the second still waits on the old.
// Releasing twice is a no-op.
func (l *dirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	return errors.Join(unlock(f), f.Close())
}

// readOnly reports an error of writing to a read-only place.
func readOnly(err error) bool {
	return errors.Is(err, syscall.EROFS) || errors.Is(err, os.ErrPermission)
}
