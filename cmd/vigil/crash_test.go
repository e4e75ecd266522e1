package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildVigil compiles the real binary once per test run.
func buildVigil(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vigil")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build vigil: %v", err)
	}
	return bin
}

type server struct {
	cmd    *exec.Cmd
	url    string
	key    string // bootstrap key, on first start only
	stderr *bytes.Buffer
}

// startServer runs `vigil serve` on a free loopback port and waits until it
// answers /healthz.
func startServer(t *testing.T, bin, dir string) *server {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data-dir", dir)
	cmd.Env = append(os.Environ(), "VIGIL_LOG_FORMAT=json", "VIGIL_LOG_LEVEL=info")
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, stderr: &bytes.Buffer{}}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			s.stderr.WriteString(line + "\n")
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "vigil listening" {
				addr <- rec.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		s.url = "http://" + a
		// The first start writes the operator key to a 0600 file in the
		// data directory (never to the log stream).
		if b, err := os.ReadFile(filepath.Join(dir, "operator-key")); err == nil {
			s.key = strings.TrimSpace(string(b))
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("server did not start:\n%s", s.stderr)
	}
	t.Cleanup(func() { s.kill() })
	return s
}

func (s *server) kill() {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		_ = s.cmd.Wait()
	}
}

func post(ctx context.Context, url, key, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// TestCrashLosesNoAcknowledgedEvent streams events from several concurrent
// clients, kills the server with SIGKILL at random moments, restarts it, and
// finally checks that every acknowledged event is stored exactly once.
// Unacknowledged batches are retried with the same ids after each restart,
// as the SDK would, so retries are exercised too.
func TestCrashLosesNoAcknowledgedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills the real binary")
	}
	bin := buildVigil(t)
	dir := t.TempDir()
	srv := startServer(t, bin, dir)
	op := srv.key
	if op == "" {
		t.Fatalf("no operator-key file after the first start:\n%s", srv.stderr)
	}
	if st, b, err := postJSON(srv.url+"/v1/tenants", op, `{"id":"crash"}`); err != nil || st != 201 {
		t.Fatalf("create tenant: %d %s %v", st, b, err)
	}

	const clients, rounds, batch = 8, 5, 50
	var (
		mu      sync.Mutex
		acked   = map[string]bool{}
		pending = map[int][]string{} // client → ids of its unacknowledged batch
		next    = make([]int, clients)
	)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range rounds {
		if round > 0 {
			srv = startServer(t, bin, dir)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					mu.Lock()
					ids := pending[c]
					if ids == nil {
						for range batch {
							ids = append(ids, fmt.Sprintf("c%d-%d", c, next[c]))
							next[c]++
						}
						pending[c] = ids
					}
					mu.Unlock()
					var body strings.Builder
					for _, id := range ids {
						fmt.Fprintf(&body, `{"id":%q,"tenant":"crash","action":"data.exported","actor":{"id":"u%d"},"metadata":{"records":1}}`+"\n", id, c)
					}
					status, resp, err := post(ctx, srv.url+"/v1/events", op, body.String())
					if err != nil || status != http.StatusAccepted {
						if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
							time.Sleep(10 * time.Millisecond)
						}
						if err != nil && ctx.Err() == nil {
							time.Sleep(5 * time.Millisecond) // server gone; round ends soon
						}
						continue
					}
					var res struct{ Accepted, Duplicates int }
					if json.Unmarshal(resp, &res) != nil || res.Accepted+res.Duplicates != len(ids) {
						t.Errorf("unexpected answer %s", resp)
						return
					}
					mu.Lock()
					for _, id := range ids {
						acked[id] = true
					}
					delete(pending, c)
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond)
		srv.kill() // SIGKILL while clients are mid-request
		cancel()
		wg.Wait()
	}

	srv = startServer(t, bin, dir)
	// Retry whatever was in flight at the last kill, then read everything back.
	for c, ids := range pending {
		var body strings.Builder
		for _, id := range ids {
			fmt.Fprintf(&body, `{"id":%q,"tenant":"crash","action":"data.exported","actor":{"id":"u%d"},"metadata":{"records":1}}`+"\n", id, c)
		}
		if status, b, err := post(context.Background(), srv.url+"/v1/events", op, body.String()); err != nil || status != 202 {
			t.Fatalf("retry after restart: %d %s %v", status, b, err)
		}
		for _, id := range ids {
			acked[id] = true
		}
	}
	if len(acked) < clients*batch {
		t.Fatalf("only %d events acknowledged; the test did not exercise the server", len(acked))
	}
	deadline := time.Now().Add(90 * time.Second)
	var stored map[string]int
	for {
		stored = readAll(t, srv.url, op)
		if len(stored) >= len(acked) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for id := range acked {
		if stored[id] != 1 {
			t.Errorf("acknowledged event %s stored %d times", id, stored[id])
		}
	}
	for id, n := range stored {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	t.Logf("%d acknowledged events over %d SIGKILLs; %d stored", len(acked), rounds, len(stored))
}

func postJSON(url, key, body string) (int, []byte, error) {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// readAll pages through every stored event of the tenant and counts ids.
func readAll(t *testing.T, base, key string) map[string]int {
	t.Helper()
	out := map[string]int{}
	cursor := ""
	for {
		req, _ := http.NewRequest("GET", base+"/v1/events?tenant=crash&limit=1000&cursor="+url.QueryEscape(cursor), nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Events     []struct{ ID string }
			NextCursor string `json:"next_cursor"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			out[e.ID]++
		}
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}
