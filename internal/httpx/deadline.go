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

func (d *DeadlineWriter) extend() { _ = d.rc.SetWriteDeadline(time.Now().Add(d.d)) }

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
