package httpx_test

import (
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
)

// TestCursorsBindListingAndScope: a sealed cursor opens only for the
// listing and tenant scope it was sealed for, and only unaltered.
func TestCursorsBindListingAndScope(t *testing.T) {
	c := httpx.NewCursors([]byte("secret"))
	tok := c.Seal("GET /v1/events", "acme", "AQID")
	if got, err := c.Open("GET /v1/events", "acme", tok); err != nil || got != "AQID" {
		t.Fatalf("open own cursor: %q, %v", got, err)
	}
	if c.Seal("GET /v1/events", "acme", "") != "" {
		t.Error("no next page must stay an empty cursor")
	}
	flipped := []byte(tok)
	flipped[len(flipped)-1] ^= 1
	for name, try := range map[string]func() (string, error){
		"other listing": func() (string, error) { return c.Open("GET /v1/findings", "acme", tok) },
		"other tenant":  func() (string, error) { return c.Open("GET /v1/events", "globex", tok) },
		"all tenants":   func() (string, error) { return c.Open("GET /v1/events", "*", tok) },
		"other secret":  func() (string, error) { return httpx.NewCursors([]byte("other")).Open("GET /v1/events", "acme", tok) },
		"altered":       func() (string, error) { return c.Open("GET /v1/events", "acme", string(flipped)) },
		"store cursor":  func() (string, error) { return c.Open("GET /v1/events", "acme", "AQID") },
		"not base64":    func() (string, error) { return c.Open("GET /v1/events", "acme", "!!") },
		"empty tag":     func() (string, error) { return c.Open("GET /v1/events", "acme", "AAAA") },
	} {
		got, err := try()
		var e *audit.Error
		if err == nil || audit.ErrorCode(err) != audit.EINVALID || !asError(err, &e) || e.Field != "cursor" || got != "" {
			t.Errorf("%s: %q, %v; want EINVALID on field cursor", name, got, err)
		}
	}
}

func asError(err error, e **audit.Error) bool {
	ae, ok := err.(*audit.Error)
	*e = ae
	return ok
}

// FuzzCursorOpen: any text either opens to what was sealed or is refused
// with EINVALID on the cursor field; it never panics.
func FuzzCursorOpen(f *testing.F) {
	c := httpx.NewCursors([]byte("k"))
	f.Add(c.Seal("l", "t", "AQID"))
	f.Add("")
	f.Add("!!")
	f.Fuzz(func(t *testing.T, tok string) {
		inner, err := c.Open("l", "t", tok)
		if err != nil {
			if audit.ErrorCode(err) != audit.EINVALID || inner != "" {
				t.Fatalf("%q: %q, %v", tok, inner, err)
			}
			return
		}
		if c.Seal("l", "t", inner) != tok {
			t.Fatalf("%q opened to %q, which seals differently", tok, inner)
		}
	})
}
