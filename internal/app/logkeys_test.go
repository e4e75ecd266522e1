package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/config"
)

// lockedBuffer is a bytes.Buffer safe for the app's concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// duplicateKeys returns the keys that occur twice within one JSON object of
// a log line, at any depth (a logger tagged twice with "component" writes
// the key twice; encoding/json would silently keep the last).
func duplicateKeys(line string) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	var dups []string
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key := k.(string)
				if seen[key] {
					dups = append(dups, key)
				}
				seen[key] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	return dups, walk()
}

func TestDuplicateKeysDetector(t *testing.T) {
	d, err := duplicateKeys(`{"a":1,"b":{"c":2,"c":3},"component":"x","component":"y"}`)
	if err != nil || fmt.Sprint(d) != "[c component]" {
		t.Fatalf("got %v, %v", d, err)
	}
}

// TestNoLogRecordRepeatsAKey runs a node at debug level through start-up,
// ingestion, detection (a brute force raises a finding) and shutdown, and
// checks that no log line carries the same key twice.
func TestNoLogRecordRepeatsAKey(t *testing.T) {
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Storage.SQLite.Dir = t.TempDir()
	cfg.Log.Level = "debug"
	cfg.Log.Format = "json"
	var logs lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := app.New(ctx, cfg, app.Options{Stderr: &logs})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	n := &node{app: a, url: "http://" + a.Addr(), operator: a.BootstrapKey}
	if n.op, err = client.New(n.url, client.WithAPIKey(n.operator)); err != nil {
		t.Fatal(err)
	}
	c, _ := n.tenantClient(t, "acme")
	bruteForce(t, c, "alice", time.Now().Add(-10*time.Minute).UTC())
	deadline := time.Now().Add(30 * time.Second)
	for findingsFor(t, c, "brute-force", "alice") == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("app.Run: %v", err)
	}

	lines, components := 0, map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "{") {
			continue // the one-time operator key notice
		}
		lines++
		dups, err := duplicateKeys(line)
		if err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, line)
		}
		if len(dups) > 0 {
			t.Errorf("log line repeats %v:\n%s", dups, line)
		}
		var rec struct{ Component string }
		_ = json.Unmarshal([]byte(line), &rec)
		components[rec.Component] = true
	}
	// The run must have exercised the tagged components, or the test proves nothing.
	for _, want := range []string{"detect", "http"} {
		if !components[want] {
			t.Errorf("no log line from component %q in %d lines", want, lines)
		}
	}
}
