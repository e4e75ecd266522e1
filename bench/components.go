package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Component is a colleague's package benchmark, re-run as a subprocess.
type Component struct {
	Area string // storage, detect, …
	Doc  string // docs/perf/<area>.md
	Args []string
	// Timeout bounds the run, compilation included; 0 means 5 minutes.
	Timeout time.Duration
	// Lines are the benchmark result lines ("BenchmarkX-2  N  ns/op …").
	Lines   []string
	Elapsed time.Duration
	Err     error
}

// Command is the exact command line, as a reader would type it.
func (c *Component) Command() string { return "go " + strings.Join(c.Args, " ") }

// cheapComponents are the package benchmarks that take seconds, not minutes.
func cheapComponents() []*Component {
	return []*Component{
		{Area: "storage", Doc: "perf/storage.md", Args: []string{"test", "-run", "XXX", "-bench", "Append", "-benchtime", "2s", "./internal/sqlite/"}},
		{Area: "detect", Doc: "perf/detect.md", Args: []string{"test", "-run", "XXX", "-bench", "Process$|Score$", "-benchtime", "50000x", "./internal/detect/"}},
		// A batch of about 250 events per op: 200 ops, not 50,000 (about 7 minutes).
		{Area: "detect", Doc: "perf/detect.md", Args: []string{"test", "-run", "XXX", "-bench", "ProcessBatch", "-benchtime", "200x", "./internal/detect/"}},
		{Area: "enrich", Doc: "perf/enrich.md", Args: []string{"test", "-run", "XXX", "-bench", "Pipeline", "-benchtime", "20000x", "./internal/enrich/"}},
		{Area: "query", Doc: "perf/query.md", Args: []string{"test", "-run", "^$", "-bench", ".", "-benchtime", "20000x", "./internal/query/"}},
		{Area: "client", Doc: "perf/client.md", Args: []string{"test", "-run", "XXX", "-bench", "Send|Batcher", "-benchtime", "2s", "./client/"}},
		{Area: "postgres", Doc: "perf/postgres.md", Args: []string{"test", "-run", "^$", "-bench", "IngestHTTPBatch1000", "-benchtime", "200000x", "./internal/app/"}, Timeout: 10 * time.Minute},
		// Loads 200k events into each of three deployments first: 3–5 minutes here.
		{Area: "postgres", Doc: "perf/postgres.md", Args: []string{"test", "-run", "^$", "-bench", "QueryHTTP", "-benchtime", "200x", "./internal/app/"}, Timeout: 10 * time.Minute},
		{Area: "risk", Doc: "perf/risk.md", Args: []string{"test", "-run", "^$", "-bench", "RiskUnderIngest", "-benchtime", "20000x", "./internal/app/"}},
	}
}

var benchLine = regexp.MustCompile(`^Benchmark\S+\s+\d+\s+`)

// runComponent runs one benchmark command from the module root.
func runComponent(ctx context.Context, root string, c *Component, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", c.Args...)
	cmd.Dir = root
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	c.Elapsed = time.Since(t0)
	for _, l := range strings.Split(string(out), "\n") {
		if benchLine.MatchString(l) {
			c.Lines = append(c.Lines, strings.Join(strings.Fields(l), " "))
		}
	}
	if err != nil {
		tail := string(out)
		if len(tail) > 600 {
			tail = tail[len(tail)-600:]
		}
		c.Err = fmt.Errorf("%v: %s", err, strings.TrimSpace(tail))
	}
}

// metric returns the value of a named metric ("heap-B/actor") in the lines.
func (c *Component) metric(unit string) (float64, bool) {
	for _, l := range c.Lines {
		f := strings.Fields(l)
		for i := 1; i < len(f); i++ {
			if f[i] == unit {
				v, err := strconv.ParseFloat(f[i-1], 64)
				return v, err == nil
			}
		}
	}
	return 0, false
}

// actorMemory is the detect package's memory benchmark (1M actors).
func actorMemory() *Component {
	return &Component{Area: "detect", Doc: "perf/detect.md",
		Args: []string{"test", "-run", "XXX", "-bench", "ActorMemory", "-benchtime", "1x", "./internal/detect/"}}
}

// benchMetric returns the value of unit in the result line of the
// benchmark named name (e.g. "BenchmarkRiskUnderIngest/ingest=10000/s"),
// and whether it was found.
func (c *Component) benchMetric(name, unit string) (float64, bool) {
	for _, l := range c.Lines {
		f := strings.Fields(l)
		if len(f) < 2 || !strings.HasPrefix(f[0], name+"-") {
			continue
		}
		for i := 2; i+1 < len(f); i++ {
			if f[i+1] == unit {
				v, err := strconv.ParseFloat(f[i], 64)
				return v, err == nil
			}
		}
	}
	return 0, false
}
