// Package fsutil writes small files so that a crash or power loss leaves
// either the whole new content or none of it, never an empty file.
package fsutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrExist is returned by WriteNew when path already exists.
var ErrExist = os.ErrExist

// WriteNew creates path holding data with mode perm, durably: the bytes are
// written to a temporary file in the same directory and synced, the file is
// linked into place (which fails if path exists), and the directory is synced.
func WriteNew(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, func(tmp string) error { return os.Link(tmp, path) })
}

// Replace writes data to path with mode perm durably, replacing any file
// there atomically.
func Replace(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, func(tmp string) error { return os.Rename(tmp, path) })
}

func write(path string, data []byte, perm os.FileMode, place func(tmp string) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if rerr := os.Remove(tmp); err == nil && rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = rerr
		}
	}()
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := place(tmp); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so that entries created or renamed in it
// survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
