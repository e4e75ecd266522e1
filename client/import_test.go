package client_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/client"
)

// TestImportMapped checks the request ImportMapped sends: POST
// /v1/import/<format> as multipart/form-data with the mapping part before
// the file part, and the import options as query parameters.
func TestImportMapped(t *testing.T) {
	var parts []string
	var path, query string
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, query = r.URL.Path, r.URL.RawQuery
		mr, err := r.MultipartReader()
		if err != nil {
			t.Errorf("not multipart: %v", err)
			return
		}
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			b, _ := io.ReadAll(p)
			parts = append(parts, p.FormName()+"="+string(b))
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"format":"csv","accepted":1,"results":[{"index":0,"line":2,"status":"accepted","id":"csv:m:1"}]}`)
	}))
	defer s.Close()
	c, err := client.New(s.URL, client.WithAPIKey("k"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.ImportMapped(t.Context(), client.ImportCSV, []byte("name: m"), []byte("id,ts\n1,x\n"), client.ImportOptions{File: "f.csv", Backfill: "silent"})
	if err != nil || res.Accepted != 1 || res.Results[0].Line != 2 {
		t.Fatalf("%+v, %v", res, err)
	}
	if path != "/v1/import/csv" || !strings.Contains(query, "file=f.csv") || !strings.Contains(query, "backfill=silent") {
		t.Errorf("request %s?%s", path, query)
	}
	if len(parts) != 2 || parts[0] != "mapping=name: m" || parts[1] != "file=id,ts\n1,x\n" {
		t.Errorf("parts %q", parts)
	}
	if _, err := c.ImportMapped(t.Context(), "okta", nil, nil, client.ImportOptions{}); err == nil {
		t.Error("a vendor format is not a mapped import")
	}
}
