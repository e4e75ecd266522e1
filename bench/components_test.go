package main

import "testing"

func TestBenchMetricReadsOneSubBenchmark(t *testing.T) {
	c := &Component{Lines: []string{
		"BenchmarkRiskUnderIngest/ingest=none-2 20000 200010 ns/op 0 ingest-events/s 36.54 max-ms 0.7803 p50-ms 14.89 p99-ms 0 refused",
		"BenchmarkRiskUnderIngest/ingest=10000/s-2 20000 200178 ns/op 9995 ingest-events/s 34.33 max-ms 0.7530 p50-ms 15.04 p99-ms 0 refused",
	}}
	if v, ok := c.benchMetric("BenchmarkRiskUnderIngest/ingest=10000/s", "p99-ms"); !ok || v != 15.04 {
		t.Fatalf("p99 = %v %v", v, ok)
	}
	if _, ok := c.benchMetric("BenchmarkRiskUnderIngest/ingest=max", "p99-ms"); ok {
		t.Fatal("found a sub-benchmark that did not run")
	}
}
