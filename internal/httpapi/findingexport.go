package httpapi

import (
	"bufio"
	"encoding/json"
	"net/http"
)

// writeMapped answers a page of findings or incidents in an export format
// (?format=ocsf): NDJSON, one mapped object a line, with the next page's
// cursor in the X-Vigil-Next-Cursor header (absent on the last page). The
// page is bounded by limit like the JSON answer.
func writeMapped[T any](w http.ResponseWriter, next string, items []T, mapOne func(*T) any) error {
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	if next != "" {
		h.Set("X-Vigil-Next-Cursor", next)
	}
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range items {
		if err := enc.Encode(mapOne(&items[i])); err != nil {
			return nil // the client went away; the status is already sent
		}
	}
	_ = bw.Flush()
	return nil
}
