package siem

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// httpsSink posts NDJSON batches.
type httpsSink struct {
	url     string
	headers map[string]string
	gzip    bool
	timeout time.Duration
	client  *http.Client
}

func newHTTPS(s Sink, tc *tls.Config) *httpsSink {
	dialer := &net.Dialer{Timeout: s.Timeout}
	return &httpsSink{url: s.URL, headers: s.Headers, gzip: s.Gzip, timeout: s.Timeout, client: &http.Client{
		Timeout: s.Timeout,
		Transport: &http.Transport{
			Proxy:               nil, // no environment below main: the collector is dialled directly
			DialContext:         dialer.DialContext,
			TLSClientConfig:     tc,
			TLSHandshakeTimeout: s.Timeout,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		},
		// A collector answers; it does not send the batch elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// ndjson renders lines, one JSON object per line.
func ndjson(lines []Line) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for i := range lines {
		if err := enc.Encode(&lines[i]); err != nil {
			return nil, fmt.Errorf("encode %s line: %w", lines[i].Type, err)
		}
	}
	return b.Bytes(), nil
}

func (h *httpsSink) deliver(ctx context.Context, sink, batch string, lines []Line) error {
	body, err := ndjson(lines)
	if err != nil {
		return err
	}
	if h.gzip {
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		_, _ = w.Write(body)
		if err := w.Close(); err != nil {
			return fmt.Errorf("gzip batch: %w", err)
		}
		body = z.Bytes()
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	for k, v := range h.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if h.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	req.Header.Set("User-Agent", "Vigil-SIEM/1")
	req.Header.Set("Vigil-Delivery", batch)
	req.Header.Set("Vigil-Sink", sink)
	resp, err := h.client.Do(req)
	if err != nil {
		// The URL may carry a token in its query: never in a log line.
		return errors.New(strings.ReplaceAll(err.Error(), h.url, "<collector url>"))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("collector answered %s", resp.Status)
	}
	return nil
}

func (h *httpsSink) close() { h.client.CloseIdleConnections() }
