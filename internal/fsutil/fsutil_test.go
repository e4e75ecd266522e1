package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteNewRefusesAnExistingFileAndLeavesNoTemporaries(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := WriteNew(p, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(p, []byte("second\n"), 0o600); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second WriteNew: %v, want ErrExist", err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "first\n" {
		t.Fatalf("content %q %v, want the first write", b, err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v, want 0600", st.Mode(), err)
	}
	if err := Replace(p, []byte("third\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(p)
	st, _ = os.Stat(p)
	if string(b) != "third\n" || st.Mode().Perm() != 0o640 {
		t.Fatalf("after Replace: %q %v", b, st.Mode())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want only the key", len(ents))
	}
}
