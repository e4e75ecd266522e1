package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// repoRoot finds the module root (the directory holding go.mod) from the
// working directory upwards.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// buildVigil compiles the real binary (go build ./cmd/vigil) into dir.
func buildVigil(ctx context.Context, dir string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "vigil")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/vigil")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/vigil: %v\n%s", err, out)
	}
	return bin, nil
}

// Server is a `vigil serve` child process on 127.0.0.1.
type Server struct {
	cmd  *exec.Cmd
	URL  string // http://127.0.0.1:port
	Key  string // the first operator key, read from <dir>/operator-key when present
	Dir  string
	exit chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after exit

	mu  sync.Mutex
	log bytes.Buffer // the first 64 KiB of stderr and the most recent 64 KiB
}

// StartServer runs `vigil serve` on a free loopback port with dir as its
// data directory and extra VIGIL_* settings, and waits until it logs
// "vigil listening" (or exits, which is an error carrying its stderr).
func StartServer(bin, dir string, env ...string) (*Server, error) {
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data-dir", dir)
	cmd.Env = append(append(os.Environ(), "VIGIL_LOG_FORMAT=json", "VIGIL_LOG_LEVEL=info"), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{cmd: cmd, Dir: dir, exit: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		// Parse lines until the server listens; afterwards only keep a tail,
		// so the harness spends no CPU on the per-request access log.
		r := bufio.NewReaderSize(stderr, 64<<10)
		listening := false
		for !listening {
			line, err := r.ReadString('\n')
			s.keep([]byte(line))
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "vigil listening" {
				addr <- rec.Addr
				listening = true
			}
			if err != nil {
				break
			}
		}
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			s.keep(buf[:n])
			if err != nil {
				break
			}
		}
		s.err = cmd.Wait()
		close(s.exit)
	}()
	select {
	case a := <-addr:
		s.URL = "http://" + a
		// The first start writes the operator key to a 0600 file in the
		// data directory (never to the log stream).
		if b, err := os.ReadFile(filepath.Join(dir, "operator-key")); err == nil {
			s.Key = strings.TrimSpace(string(b))
		}
		return s, nil
	case <-s.exit:
		return nil, fmt.Errorf("vigil serve exited before listening (%v):\n%s", s.err, s.Stderr())
	case <-time.After(90 * time.Second):
		s.Kill()
		return nil, fmt.Errorf("vigil serve did not listen within 90s:\n%s", s.Stderr())
	}
}

// keep records stderr: the head (startup messages) and a rolling tail.
func (s *Server) keep(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log.Write(p)
	if s.log.Len() > 192<<10 {
		b := s.log.Bytes()
		head := append([]byte(nil), b[:64<<10]...)
		tail := append([]byte(nil), b[len(b)-64<<10:]...)
		s.log.Reset()
		s.log.Write(head)
		s.log.WriteString("\n[…]\n")
		s.log.Write(tail)
	}
}

// Stderr returns what the server wrote to stderr (head and tail).
func (s *Server) Stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Pid is the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (s *Server) Exited() bool {
	select {
	case <-s.exit:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL and waits for the process to end.
func (s *Server) Kill() {
	if s == nil || s.Exited() {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exit
}

// Stop sends SIGTERM (graceful shutdown) and waits up to timeout, then kills.
func (s *Server) Stop(timeout time.Duration) error {
	if s.Exited() {
		return s.err
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exit:
		return s.err
	case <-time.After(timeout):
		s.Kill()
		return fmt.Errorf("vigil did not stop within %s after SIGTERM; killed", timeout)
	}
}

// ProcStatus reads a kB field (VmHWM, VmRSS) of /proc/PID/status in bytes.
func ProcStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	if n, ok := statusField(b, field); ok {
		return n, nil
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", field, pid)
}

// statusField returns field of a /proc/PID/status text, in bytes.
func statusField(status []byte, field string) (int64, bool) {
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				n, err := strconv.ParseInt(f[0], 10, 64)
				return n << 10, err == nil
			}
			return 0, false
		}
	}
	return 0, false
}

// ProcCPU returns the user + system CPU time a process has used so far
// (/proc/PID/stat, in clock ticks of 10 ms).
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; fields after its ')' are fixed.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// httpClient keeps enough idle connections for 64+ concurrent clients.
var httpClient = &http.Client{
	Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 90 * time.Second, DisableCompression: true},
	Timeout:   5 * time.Minute,
}

// Response is the part of an HTTP answer the harness looks at.
type Response struct {
	Status     int
	RetryAfter string
	Body       []byte
}

// do sends one request with the operator key.
func (s *Server) do(ctx context.Context, method, path, contentType string, body []byte) (Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, rd)
	if err != nil {
		return Response{}, err
	}
	if s.Key != "" {
		req.Header.Set("Authorization", "Bearer "+s.Key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After"), Body: b}, err
}

// decode sends one request with the operator key, decodes a 200 answer's
// JSON into v and returns the time from sending until v was decoded (the
// answer complete), then reads the rest of the exchange.
func (s *Server) decode(ctx context.Context, method, path string, body []byte, v any) (time.Duration, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.Key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	t0 := time.Now()
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, fmt.Errorf("%s %s: %d %.300s", method, path, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	d := time.Since(t0)
	_, err = io.Copy(io.Discard, resp.Body)
	return d, err
}

// createTenants creates tenants t00… with the operator key.
func (s *Server) createTenants(ctx context.Context, n int) error {
	for t := range n {
		r, err := s.do(ctx, "POST", "/v1/tenants", "application/json", []byte(`{"id":"`+TenantName(t)+`","name":"bench `+TenantName(t)+`"}`))
		if err != nil {
			return err
		}
		if r.Status != http.StatusCreated && r.Status != http.StatusConflict {
			return fmt.Errorf("create tenant %s: %d %s", TenantName(t), r.Status, r.Body)
		}
	}
	return nil
}

// Metrics is one scrape of /metrics: series ("name{labels}") → value.
type Metrics map[string]float64

// scrape reads /metrics.
func (s *Server) scrape(ctx context.Context) (Metrics, error) {
	r, err := s.do(ctx, "GET", "/metrics", "", nil)
	if err != nil {
		return nil, err
	}
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %d", r.Status)
	}
	return parseMetrics(r.Body), nil
}

// parseMetrics parses the Prometheus text format (no exemplars needed).
func parseMetrics(b []byte) Metrics {
	m := Metrics{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m
}

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	LE    float64
	Count float64
}

// Histogram returns the cumulative buckets of a histogram (le ascending, +Inf last).
func (m Metrics) Histogram(name string) []Bucket {
	var out []Bucket
	prefix := name + "_bucket{"
	for k, v := range m {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		i := strings.Index(k, `le="`)
		if i < 0 {
			continue
		}
		rest := k[i+4:]
		end := strings.IndexByte(rest, '"')
		if end < 0 {
			continue // malformed label: no closing quote
		}
		le, err := strconv.ParseFloat(rest[:end], 64)
		if err != nil || math.IsNaN(le) {
			continue
		}
		out = append(out, Bucket{le, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LE < out[j].LE })
	return out
}

// subBuckets returns after − before, bucket by bucket (the observations in between).
func subBuckets(after, before []Bucket) []Bucket {
	out := append([]Bucket(nil), after...)
	for i := range out {
		for _, b := range before {
			if b.LE == out[i].LE {
				out[i].Count -= b.Count
			}
		}
	}
	return out
}

// bucketQuantile estimates quantile q from cumulative buckets by linear
// interpolation inside the bucket (as Prometheus' histogram_quantile does).
// It returns NaN without observations; a quantile in the +Inf bucket
// returns the highest finite bound (a lower bound of the true value).
func bucketQuantile(q float64, bs []Bucket) float64 {
	if len(bs) == 0 {
		return math.NaN()
	}
	total := bs[len(bs)-1].Count
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	prevLE, prevCount, finite := 0.0, 0.0, 0.0
	for _, b := range bs {
		if b.Count >= rank {
			if math.IsInf(b.LE, 1) {
				return finite
			}
			if b.Count == prevCount {
				return b.LE
			}
			v := prevLE + (b.LE-prevLE)*(rank-prevCount)/(b.Count-prevCount)
			return math.Max(prevLE, math.Min(b.LE, v)) // no rounding past the bucket
		}
		prevLE, prevCount = b.LE, b.Count
		if !math.IsInf(b.LE, 1) {
			finite = b.LE
		}
	}
	return finite
}
