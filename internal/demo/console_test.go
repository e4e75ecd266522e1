package demo_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/demo"
)

// syncBuffer is an io.Writer the test reads while the demo writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var viewerLink = regexp.MustCompile(`http://127\.0\.0\.1:\d+/embed\?token=vgv_\S+`)

// TestDemoEndsInTheConsole runs the demo without Exit: after the report it
// prints a viewer link that opens the console on the first tenant's caught
// attacks, keeps serving until its context ends (Ctrl-C), and then removes
// its temporary directory.
func TestDemoEndsInTheConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		_, err := demo.Run(ctx, demo.Options{Addr: "127.0.0.1:0", Seed: 7, UsersPerTenant: 15, Days: 8, Out: &out})
		done <- err
	}()
	var link string
	for deadline := time.Now().Add(3 * time.Minute); link == ""; {
		select {
		case err := <-done:
			t.Fatalf("the demo returned before it was interrupted: %v\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if strings.Contains(out.String(), "Press Ctrl-C") {
			link = viewerLink.FindString(out.String())
			if link == "" {
				t.Fatalf("no viewer link in the output:\n%s", out.String())
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not finish its report:\n%s", out.String())
		}
	}

	// The link signs in and the console opens on the tenant's incidents.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func(u string) (int, string) {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get(link); status != http.StatusOK || !strings.Contains(body, `http-equiv="refresh"`) {
		t.Fatalf("viewer link: %d %s", status, body)
	}
	base := link[:strings.Index(link, "/embed")]
	status, body := get(base + "/")
	if status != http.StatusOK || !strings.Contains(body, "<h1>Incidents</h1>") || !strings.Contains(body, `href="/incidents/`) {
		t.Fatalf("console after the viewer link: %d %s", status, body)
	}

	// Still serving until interrupted; then it returns and cleans up.
	select {
	case err := <-done:
		t.Fatalf("the demo stopped serving on its own: %v", err)
	default:
	}
	cancel()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the demo did not stop when interrupted")
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("the interrupted demo left %s in the temporary directory", e.Name())
	}
}
