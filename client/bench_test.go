package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/vigilhq/vigil/client"
)

// benchServer accepts every event of a JSON array without storing it, so
// the benchmarks measure the SDK plus loopback HTTP and a minimal decode.
func benchServer(b *testing.B) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var raws []json.RawMessage
		if err := json.Unmarshal(body, &raws); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		res := client.IngestResult{Accepted: len(raws), Results: make([]client.EventResult, len(raws))}
		for i := range raws {
			res.Results[i] = client.EventResult{Index: i, Status: client.StatusAccepted, ID: "x"}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(res)
	}))
	b.Cleanup(s.Close)
	return s
}

func benchEvent(i int) client.Event {
	e := loginFailure(fmt.Sprintf("user%d@example.com", i), t0)
	e.Context.SessionID = "sess_0123456789"
	e.Metadata = map[string]any{"app": "web", "attempt": i}
	return e
}

// BenchmarkSend measures synchronous batches of 1000 events.
func BenchmarkSend(b *testing.B) {
	c, err := client.New(benchServer(b).URL, client.WithAPIKey(testKey))
	if err != nil {
		b.Fatal(err)
	}
	evs := make([]client.Event, 1000)
	b.ReportAllocs()
	for b.Loop() {
		for i := range evs {
			evs[i] = benchEvent(i)
		}
		if _, err := c.Send(context.Background(), evs...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkBatcher measures Add through to delivery with the default batch
// size and two requests in flight.
func BenchmarkBatcher(b *testing.B) {
	c, err := client.New(benchServer(b).URL, client.WithAPIKey(testKey))
	if err != nil {
		b.Fatal(err)
	}
	bt, err := client.NewBatcher(c, client.BatcherOptions{Concurrency: 2})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := bt.Add(ctx, benchEvent(i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if err := bt.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEncodeEvent measures the wire encoding of one event.
func BenchmarkEncodeEvent(b *testing.B) {
	e := fullEvent()
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(e); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}
