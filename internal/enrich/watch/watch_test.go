package watch_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vigilhq/vigil/internal/enrich/watch"
)

// loadText loads a file's content; content starting with "bad" fails.
func loadText(path string) (string, watch.Meta, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", watch.Meta{}, err
	}
	if strings.HasPrefix(string(b), "bad") {
		return "", watch.Meta{}, errors.New("bad content")
	}
	return string(b), watch.Meta{Kind: "text", Entries: len(b)}, nil
}

type swaps struct {
	mu   sync.Mutex
	last []string
	n    int
}

func (s *swaps) swap(v []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last, s.n = v, s.n+1
}

func (s *swaps) get() ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.n
}

func write(t *testing.T, path, content string, mod time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mod, mod); err != nil {
		t.Fatal(err)
	}
}

func TestReloadKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	write(t, a, "one", t0)
	var sw swaps
	s, err := watch.New(watch.Options[string]{
		Source: "test", Paths: []string{a, b}, Load: loadText, OnSwap: sw.swap, Interval: -1,
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	if v, n := sw.get(); n != 1 || len(v) != 1 || v[0] != "one" {
		t.Fatalf("initial swap = %v (%d swaps), want [one]", v, n)
	}
	st := s.Status()
	if !st[0].Loaded || st[0].Entries != 3 || !st[0].BuildTime.Equal(t0) || st[0].Kind != "text" {
		t.Errorf("status a = %+v", st[0])
	}
	if st[1].Loaded || st[1].LastError != "file does not exist" {
		t.Errorf("status b = %+v, want a missing-file error", st[1])
	}

	// Unchanged files do not reload.
	if s.Poll() {
		t.Error("Poll reloaded unchanged files")
	}
	// A broken rewrite keeps the previous version in service.
	write(t, a, "bad!", t0.Add(time.Second))
	if s.Poll() {
		t.Error("a broken file went into service")
	}
	if v, _ := sw.get(); v[0] != "one" {
		t.Errorf("after a bad reload the value is %v", v)
	}
	if st := s.Status()[0]; !st.Loaded || st.LastError != "bad content" {
		t.Errorf("status after bad reload = %+v", st)
	}
	// A fixed file and a new file both go into service.
	write(t, a, "two", t0.Add(2*time.Second))
	write(t, b, "three", t0)
	if !s.Poll() {
		t.Fatal("Poll missed the changes")
	}
	if v, _ := sw.get(); len(v) != 2 || v[0] != "two" || v[1] != "three" {
		t.Errorf("after reload = %v, want [two three]", v)
	}
	if st := s.Status()[0]; st.LastError != "" {
		t.Errorf("error not cleared: %+v", st)
	}
}

func TestBackgroundPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		a := filepath.Join(dir, "a")
		write(t, a, "one", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		var sw swaps
		s, err := watch.New(watch.Options[string]{Source: "test", Paths: []string{a}, Load: loadText, OnSwap: sw.swap, Interval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		write(t, a, "changed", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC))
		time.Sleep(1500 * time.Millisecond) // fake time inside the bubble
		synctest.Wait()
		if v, n := sw.get(); n != 2 || v[0] != "changed" {
			t.Errorf("after one interval: %v (%d swaps)", v, n)
		}
		s.Close()
		s.Close() // idempotent
	})
}

func TestOptionsRequired(t *testing.T) {
	if _, err := watch.New(watch.Options[string]{}); err == nil {
		t.Fatal("New accepted options without Load and OnSwap")
	}
}
