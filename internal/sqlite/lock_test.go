package sqlite_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// TestDataDirLocked is issue 10's two servers on one directory: the second
// Open must fail, naming the directory and the holder, and succeed once
// the first has closed.
func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	first, err := sqlite.Open(t.Context(), sqlite.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sqlite.Open(t.Context(), sqlite.Options{Dir: dir})
	if !errors.Is(err, sqlite.ErrLocked) || audit.ErrorCode(err) != audit.EUNAVAILABLE {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	msg := err.Error()
	for _, want := range []string{dir, "in use by another Vigil process", fmt.Sprintf("pid %d", os.Getpid())} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second, err := sqlite.Open(t.Context(), sqlite.Options{Dir: dir})
	if err != nil {
		t.Fatalf("Open after the holder closed: %v", err)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDataDirLockedAcrossProcesses holds the directory in a child process
// (this test binary, re-run) and checks that this process is refused with
// the child's pid, and admitted once the child is killed: the kernel
// releases the lock of a dead process.
func TestDataDirLockedAcrossProcesses(t *testing.T) {
	if dir := os.Getenv("VIGIL_TEST_LOCK_HOLDER"); dir != "" {
		db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: dir})
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		defer db.Close()
		fmt.Println("locked")
		_, _ = os.Stdin.Read(make([]byte, 1)) // until the parent kills us
		return
	}
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestDataDirLockedAcrossProcesses$")
	cmd.Env = append(os.Environ(), "VIGIL_TEST_LOCK_HOLDER="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	if !strings.Contains(string(buf[:n]), "locked") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child did not lock: %q", buf[:n])
	}
	_, err = sqlite.Open(t.Context(), sqlite.Options{Dir: dir})
	if !errors.Is(err, sqlite.ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Errorf("Open while another process holds the directory = %v", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: dir})
	if err != nil {
		t.Fatalf("Open after the holder was killed: %v", err)
	}
	_ = db.Close()
	if _, err := os.Stat(filepath.Join(dir, sqlite.LockFile)); err != nil {
		t.Fatal(err)
	}
}
