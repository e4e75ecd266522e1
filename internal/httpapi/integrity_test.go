package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpapi"
)

// FuzzDecodeErasure: an erasure request body never panics the decoder, an
// error is EINVALID (or too large) and names a field, and an accepted
// request re-encodes to one that decodes the same.
func FuzzDecodeErasure(f *testing.F) {
	f.Add([]byte(`{"actor":"alice","fields":["context.ip","actor.email"]}`))
	f.Add([]byte(`{"tenant":"acme","actor":"alice","fields":["metadata"]}`))
	f.Add([]byte(`{"actor":"","fields":[]}`))
	f.Add([]byte(`{"actor":"a","fields":["x"],"extra":1}`))
	f.Add([]byte(`{"actor":"a","fields":"x"}`))
	f.Add([]byte(`[]`))
	decode := func(b []byte) (audit.ErasureRequest, error) {
		r := httptest.NewRequest("POST", "/v1/erasures", bytes.NewReader(b))
		r.Header.Set("Content-Type", "application/json")
		return httpapi.DecodeErasure(httptest.NewRecorder(), r)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decode(b)
		if err != nil {
			var ae *audit.Error
			if e, ok := err.(*audit.Error); ok {
				ae = e
			}
			code := audit.ErrorCode(err)
			if code != audit.EINVALID && code != audit.ETOOLARGE {
				t.Fatalf("error code %q: %v", code, err)
			}
			if code == audit.EINVALID && ae != nil && ae.Field == "" && ae.Message == "" {
				t.Fatalf("error names nothing: %v", err)
			}
			return
		}
		if req.Actor == "" || len(req.Fields) == 0 {
			t.Fatalf("accepted without actor or fields: %+v", req)
		}
		enc, _ := json.Marshal(req)
		again, err := decode(enc)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", enc, err)
		}
		if diff := cmp.Diff(req, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
