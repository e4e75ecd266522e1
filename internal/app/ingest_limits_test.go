package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/config"
)

// countingBody yields unit n times, then tail, without holding the body,
// counting the bytes the HTTP client pulled from it. The transport's write
// loop may still be reading when the answer arrives, so the count is atomic.
type countingBody struct {
	unit, tail string
	n, off     int
	read       atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	w := 0
	for w < len(p) {
		src := b.tail
		if b.n > 0 {
			src = b.unit
		}
		if b.off == len(src) {
			if b.n == 0 {
				break
			}
			b.n--
			b.off = 0
			continue
		}
		c := copy(p[w:], src[b.off:])
		w += c
		b.off += c
	}
	b.read.Add(int64(w))
	if w == 0 {
		return 0, io.EOF
	}
	return w, nil
}

func post(t *testing.T, url, key, contentType string, body io.Reader, length int64) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	req.Header.Set("Authorization", "Bearer "+key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestHugeArrayIsRefusedWithoutReadingIt is issue 9.3's probe: 5.2 million
// `{}` in a 15 MiB body. The server must answer 400 at the 10,001st element,
// reading and allocating for at most the events it may accept. Before the
// fix it read the whole body and parsed the whole array (3.7 s of CPU and
// 340 MB per request).
func TestHugeArrayIsRefusedWithoutReadingIt(t *testing.T) {
	n := startNode(t)
	_, key := n.tenantClient(t, "acme")
	for _, announced := range []bool{true, false} {
		t.Run(fmt.Sprintf("content-length=%v", announced), func(t *testing.T) {
			const count = 5_200_000
			body := &countingBody{unit: "{},", n: count, tail: "{}]"}
			length := int64(-1)
			if announced {
				length = int64(count*3 + 3)
			}
			r := io.MultiReader(strings.NewReader("["), body)
			if announced {
				length++
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			status, _, resp := post(t, n.url+"/v1/events", key, "application/json", r, length)
			runtime.ReadMemStats(&after)
			if status != http.StatusBadRequest || !bytes.Contains(resp, []byte("at most 10000")) {
				t.Fatalf("%d %s", status, resp)
			}
			// The server stops at event 10,001 (30 KB in); what the client
			// sent beyond that sat in socket buffers, which loopback TCP
			// autotunes up to several MiB on each side (more of them fill
			// before the answer when the machine is busy). The bound is the
			// body's 15.6 MB less what those buffers can hold: a server that
			// read the whole body would have taken every byte of it.
			if sent := body.read.Load(); sent > 12<<20 {
				t.Fatalf("the client sent %d MiB of %d before the answer", sent>>20, (count*3+4)>>20)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Fatalf("the request allocated %d MiB", alloc>>20)
			}
		})
	}
}

var inflightGauge = regexp.MustCompile(`(?m)^vigil_ingest_inflight_bytes (\S+)$`)

func inflightBytes(t *testing.T, n *node) float64 {
	t.Helper()
	_, body := raw(t, "GET", n.url+"/metrics", "", "")
	m := inflightGauge.FindSubmatch(body)
	if m == nil {
		t.Fatal("no vigil_ingest_inflight_bytes in /metrics")
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestIngestByteBudget: the body bytes of all in-flight ingest requests
// together, plus 512 bytes per decoded event, are bounded by
// server.max_inflight_ingest_bytes (raised to what one largest request
// needs). While one slow client holds all of it, another request is
// answered 429 with Retry-After and a message naming the limit; once the
// slow request is answered, the budget is free again. Before the fix only
// the number of requests was bounded.
func TestIngestByteBudget(t *testing.T) {
	const maxBody = 64 << 10
	n := startNode(t, func(c *config.Config) {
		c.Server.MaxBodySize = maxBody
		c.Server.MaxInflightIngestBytes = maxBody
	})
	_, key := n.tenantClient(t, "acme")
	// The slow request announces the largest body and sends 10,000 events
	// of `{}`, the most one request may hold, then stalls before its ']'.
	const budget = maxBody + 1 + 10_000*512
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) }) // before the node stops
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", n.url+"/v1/events", pr)
		req.ContentLength = maxBody
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	head := "[" + strings.Repeat("{},", 9_999) + "{}"
	if _, err := pw.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for inflightBytes(t, n) < budget {
		if time.Now().After(deadline) {
			t.Fatalf("the slow request holds %v bytes, want %d", inflightBytes(t, n), budget)
		}
		time.Sleep(10 * time.Millisecond)
	}
	event := `{"action":"billing.invoice.paid","actor":{"id":"u1"}}`
	status, hdr, body := post(t, n.url+"/v1/events", key, "application/x-ndjson", strings.NewReader(event), int64(len(event)))
	if status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" ||
		!bytes.Contains(body, []byte(`"limit":"ingest_bytes"`)) ||
		!bytes.Contains(body, []byte("server.max_inflight_ingest_bytes")) || !bytes.Contains(body, []byte(strconv.Itoa(budget))) {
		t.Fatalf("over budget: %d Retry-After=%q %s", status, hdr.Get("Retry-After"), body)
	}
	// Unannounced length: charged as it arrives, refused the same way.
	status, _, body = post(t, n.url+"/v1/events", key, "", io.MultiReader(strings.NewReader(event)), -1)
	if status != http.StatusTooManyRequests {
		t.Fatalf("chunked over budget: %d %s", status, body)
	}
	if _, err := pw.Write(append([]byte("]"), bytes.Repeat([]byte{' '}, maxBody-len(head)-1)...)); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if got := <-done; got != http.StatusBadRequest { // every `{}` lacks an action
		t.Fatalf("slow request: %d", got)
	}
	// The reservation is returned just after the answer is written.
	for v := inflightBytes(t, n); v != 0; v = inflightBytes(t, n) {
		if time.Now().After(deadline) {
			t.Fatalf("%v bytes still reserved after every request was answered", v)
		}
		time.Sleep(10 * time.Millisecond)
	}
	status, _, body = post(t, n.url+"/v1/events", key, "application/x-ndjson", strings.NewReader(event), int64(len(event)))
	if status != http.StatusAccepted {
		t.Fatalf("after the slow request: %d %s", status, body)
	}
}

// TestJSONWithoutJSONContentType is issue 10.2: plain `curl -d` labels the
// body application/x-www-form-urlencoded. Every JSON endpoint takes JSON
// whatever its label; NDJSON keeps working with and without its type.
func TestJSONWithoutJSONContentType(t *testing.T) {
	n := startNode(t)
	_, key := n.tenantClient(t, "acme")
	one := `{"action":"billing.invoice.paid","actor":{"id":"u1"}}`
	for _, tt := range []struct {
		name, contentType, body string
		accepted                int
	}{
		{"form object", "application/x-www-form-urlencoded", one, 1},
		{"form pretty object", "application/x-www-form-urlencoded", "{\n  \"action\": \"billing.invoice.paid\",\n  \"actor\": {\"id\": \"u1\"}\n}", 1},
		{"form array", "application/x-www-form-urlencoded", "[" + one + "," + one + "]", 2},
		{"no type", "", one, 1},
		{"text/plain ndjson", "text/plain", one + "\n" + one + "\n", 2},
		{"bad type", "%%%", one, 1},
		{"ndjson", "application/x-ndjson", one + "\n" + one, 2},
		{"json", "application/json; charset=utf-8", one, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := post(t, n.url+"/v1/events", key, tt.contentType, strings.NewReader(tt.body), int64(len(tt.body)))
			var res struct{ Accepted int }
			_ = json.Unmarshal(body, &res)
			if status != http.StatusAccepted || res.Accepted != tt.accepted {
				t.Fatalf("%d %s", status, body)
			}
		})
	}
	status, _, body := post(t, n.url+"/v1/events", key, "application/x-www-form-urlencoded", strings.NewReader("action=auth.logout"), -1)
	if status != http.StatusBadRequest || !bytes.Contains(body, []byte("must be a JSON object")) {
		t.Fatalf("form data: %d %s", status, body)
	}
}

// TestReadmeFirstEvent sends the README's first event exactly as its
// `curl -d` does (a form content type, an operator key naming the tenant):
// it must be accepted and, being a realistic browser login, raise no
// finding. Before the fix it answered 400, and its sample (no user agent)
// raised automated-client.
func TestReadmeFirstEvent(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)-d '(\{[^']*"action"[^']*\})' \\\n\s*http://127\.0\.0\.1:8080/v1/events`).FindSubmatch(readme)
	if m == nil {
		t.Fatal("the README has no `curl -d '{…}' …/v1/events` event")
	}
	n := startNode(t)
	c, _ := n.tenantClient(t, "acme")
	status, _, body := post(t, n.url+"/v1/events", n.operator, "application/x-www-form-urlencoded", bytes.NewReader(m[1]), int64(len(m[1])))
	if status != http.StatusAccepted || !bytes.Contains(body, []byte(`"accepted":1`)) {
		t.Fatalf("%d %s", status, body)
	}
	waitForEvents(t, c, client.SearchParams{}, 1)
	page, err := c.SearchFindings(t.Context(), client.FindingParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Findings) != 0 {
		t.Fatalf("the README's sample login raised %d findings, first %s", len(page.Findings), page.Findings[0].RuleID)
	}
}
