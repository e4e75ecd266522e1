package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"testing"
	"time"
)

// The short CI form of the reliability harness: each scenario runs the
// real binary on 127.0.0.1, bounded by a context deadline and by counts,
// and stops its server and unmounts what it mounted by itself. The SIGKILL
// scenario is not repeated here: cmd/vigil/crash_test.go is its CI form;
// `go run ./bench reliability` runs the long forms of all four.

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// env builds the binary once per test run and gives each test its own
// scratch directory.
func env(t *testing.T) Env {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the real binary")
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "vigil-bench-bin-")
		if binErr == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			binPath, binErr = buildVigil(ctx, binDir)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return Env{Bin: binPath, Work: t.TempDir(), Logf: func(format string, args ...any) { t.Logf(format, args...) }}
}

func bounded(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func skipOrFail(t *testing.T, err error) {
	t.Helper()
	var skip *SkipError
	if errors.As(err, &skip) {
		t.Skip(skip.Reason)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestOverloadAnswers429 offers twice the sustainable rate for a few
// seconds with a small backlog bound and checks 429 + Retry-After, no 5xx,
// every accepted event stored, and a bounded peak RSS.
func TestOverloadAnswers429(t *testing.T) {
	e := env(t)
	rep, err := ScenarioOverload(bounded(t, 4*time.Minute), e, OverloadOptions{
		Calibrate: 4 * time.Second, Duration: 8 * time.Second, MaxBacklog: 10_000, RSSLimit: 1536 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("peak RSS %s", mib(rep.HWM))
}

// TestDiskFull fills a 16 MiB tmpfs under the server and checks the 503s,
// readiness, and recovery once the filesystem grows.
func TestDiskFull(t *testing.T) {
	e := env(t)
	skipOrFail(t, ScenarioDiskFull(bounded(t, 4*time.Minute), e, DiskFullOptions{SizeMiB: 16}))
}

// TestReadOnly turns the data directory's ext4 read-only under the server
// and checks the 503s, readiness, a start on a read-only directory, and
// recovery after repair.
func TestReadOnly(t *testing.T) {
	e := env(t)
	skipOrFail(t, ScenarioReadOnly(bounded(t, 4*time.Minute), e))
}

func TestBucketQuantile(t *testing.T) {
	inf := Bucket{LE: math.Inf(1), Count: 10}
	bs := []Bucket{{0.001, 0}, {0.002, 5}, {0.004, 10}, inf}
	for _, c := range []struct {
		q    float64
		want float64
	}{{0.5, 0.002}, {0.25, 0.0015}, {1, 0.004}} {
		if got := bucketQuantile(c.q, bs); fmt.Sprintf("%.6f", got) != fmt.Sprintf("%.6f", c.want) {
			t.Errorf("q%.2f = %v, want %v", c.q, got, c.want)
		}
	}
	if got := bucketQuantile(0.5, []Bucket{{0.001, 0}, inf}); got != 0.001 {
		t.Errorf("all in +Inf: %v, want the highest finite bound", got)
	}
}

func TestParseMetrics(t *testing.T) {
	m := parseMetrics([]byte("# HELP x\nvigil_pipeline_lag_events 42\nh_bucket{le=\"0.5\"} 3\nh_bucket{le=\"+Inf\"} 4\n"))
	if m["vigil_pipeline_lag_events"] != 42 {
		t.Errorf("gauge: %v", m)
	}
	h := m.Histogram("h")
	if len(h) != 2 || h[0].LE != 0.5 || h[1].Count != 4 {
		t.Errorf("histogram: %v", h)
	}
}

// FuzzParseMetrics feeds arbitrary exposition text to the metrics parser
// the harness relies on: it must not panic, histograms come out sorted,
// and a quantile is NaN or within the finite bucket bounds.
func FuzzParseMetrics(f *testing.F) {
	f.Add([]byte("# HELP x\nvigil_pipeline_lag_events 42\nh_bucket{le=\"0.5\"} 3\nh_bucket{le=\"+Inf\"} 4\n"))
	f.Add([]byte("h_bucket{le=\"0.001\"} 0\nh_bucket{le=\"0.002\"} 5\nh_bucket{le=\"+Inf\"} 10\nh_count 10\n"))
	f.Add([]byte("h_bucket{le=\"x\"} 1\nh_bucket{le=\"} 2\n garbage\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		m := parseMetrics(b)
		h := m.Histogram("h")
		valid := true // non-negative bounds, non-decreasing non-negative counts
		hi := 0.0
		for i := range h {
			if i > 0 && h[i].LE < h[i-1].LE {
				t.Fatalf("buckets not sorted: %v", h)
			}
			if h[i].LE < 0 || h[i].Count < 0 || math.IsNaN(h[i].Count) || (i > 0 && h[i].Count < h[i-1].Count) {
				valid = false
			}
			if !math.IsInf(h[i].LE, 1) {
				hi = math.Max(hi, h[i].LE)
			}
		}
		for _, q := range []float64{0, 0.5, 0.99, 1} {
			v := bucketQuantile(q, h)
			if valid && !math.IsNaN(v) && (v < 0 || v > hi) {
				t.Fatalf("q%v = %v outside [0, %v] for %v", q, v, hi, h)
			}
		}
	})
}

// TestBoundedResources is the short form of the bounded scenario: 400
// distinct days through 16 open partitions, 5,000 user agents, 1,000
// unknown keys, two concurrent huge arrays; descriptors, peak RSS and
// metric series stay under the scenario's bounds, and a restart on the 400
// partitions opens none of them.
func TestBoundedResources(t *testing.T) {
	e := env(t)
	o := DefaultBoundedOptions()
	o.Days, o.Agents, o.UnknownKeys, o.HugeArrays, o.MaxOpenPartitions, o.FDLimit = 400, 5000, 1000, 2, 16, 0
	// The bound stops a wedged run; it is not a speed goal. The scenario
	// takes about a minute on a quiet two-core machine and several times
	// that while other builds share it.
	rep, err := ScenarioBounded(bounded(t, 10*time.Minute), e, o)
	t.Logf("%+v", rep)
	skipOrFail(t, err)
}
