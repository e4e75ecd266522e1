package ingest_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/vigilhq/vigil/internal/ingest"
)

func benchBody(n int) []byte {
	var buf bytes.Buffer
	for i := range n {
		fmt.Fprintf(&buf, `{"id":"evt-%08d","action":"auth.login.failure","time":"2026-11-25T10:00:00.123Z","reason":"invalid_password","actor":{"id":"user%d@example.com","type":"user"},"context":{"ip":"198.51.%d.%d","user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36","session_id":"sess-%d","request_id":"req-%d"},"metadata":{"app":"web","attempt":%d}}`+"\n",
			i, i%50000, (i/256)%256, i%256, i, i, i%5)
	}
	return buf.Bytes()
}

// BenchmarkDecodeNDJSON measures the ingest decoder on a 1,000-event NDJSON
// body of ~420-byte events; ns/op is per body.
func BenchmarkDecodeNDJSON(b *testing.B) {
	body := benchBody(1000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		items, err := ingest.Decode(body, ingest.FormatNDJSON)
		if err != nil || len(items) != 1000 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDecodeSingle measures the decoder on a one-event body, the
// shape of single-event ingest, where per-body costs are not amortised.
func BenchmarkDecodeSingle(b *testing.B) {
	body := benchBody(1)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		items, err := ingest.Decode(body, ingest.FormatNDJSON)
		if err != nil || len(items) != 1 {
			b.Fatal(err)
		}
	}
}
