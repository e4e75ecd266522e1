//go:build !unix

package sqlite

import "os"

// tryLock does not lock on systems without flock: there, running two
// servers on one directory is not prevented.
func tryLock(*os.File) (held bool, err error) { return false, nil }

func unlock(*os.File) error { return nil }
