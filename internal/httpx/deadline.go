package httpx

import (
	"net/http"
	"time"
)

// DeadlineWriter gives every write of a streamed answer its own deadline,
// instead of the server's write timeout counted from the request: an
// export may run as long as it keeps writing (up to the export duration
// limit), while a client that stops reading is still dropped.
type DeadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

// NewDeadlineWriter wraps w so that each write has d to complete.
func NewDeadlineWriter(w http.ResponseWriter, d time.Duration) *DeadlineWriter {
	dw := &DeadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: d}
	dw.extend()
	return dw
}

// NewLazyDeadlineWriter is NewDeadlineWriter whose first deadline is set
// when the answer starts (WriteHeader or the first Write), so that an
// answer that starts late (a forwarded request the active node worked on
// for a while) still has d for its first write; the caller bounds how
// long it waits for that start.
func NewLazyDeadlineWriter(w http.ResponseWriter, d time.Duration) *DeadlineWriter {
	return &DeadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: d}
}

func (d *DeadlineWriter) extend() { _ = d.rc.SetWriteDeadline(time.Now().Add(d.d)) }

// WriteHeader implements http.ResponseWriter, under a fresh deadline: an
// answer without a body is written when the handler returns.
func (d *DeadlineWriter) WriteHeader(status int) {
	d.extend()
	d.ResponseWriter.WriteHeader(status)
}

// Write implements http.ResponseWriter.
func (d *DeadlineWriter) Write(b []byte) (int, error) {
	d.extend()
	return d.ResponseWriter.Write(b)
}

// FlushError sends what is buffered, under a fresh deadline (found by
// http.ResponseController).
func (d *DeadlineWriter) FlushError() error {
	d.extend()
	return d.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (d *DeadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
