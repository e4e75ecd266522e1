package app_test

import (
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/config"
)

// TestMappedImportOverHTTP drives POST /v1/import/csv and
// /v1/import/ndjson with the RBA login sample and the example mapping
// file (the CLI's test data): the server applies the mapping, every row
// becomes an event with the import marks, a re-import stores nothing
// twice, bad rows are rejected with their line and column, and a body
// without the right parts, a bad mapping, a mapping of the other format
// or too many records are refused as a whole.
func TestMappedImportOverHTTP(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Ingest.KeyCacheTTL = time.Millisecond })
	c, key := n.tenantClient(t, "acme")
	days := 20 * 365 // the sample is from 2020
	if _, err := n.op.UpdateTenant(t.Context(), "acme", client.UpdateTenantRequest{MaxEventAgeDays: &days}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // past the 1 ms key cache
	rbaMap, err := os.ReadFile("../../examples/import/rba-dataset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sample, err := os.ReadFile("../importer/mapping/testdata/rba-dataset-head-200.csv")
	if err != nil {
		t.Fatal(err)
	}
	opts := client.ImportOptions{File: "rba.csv", Backfill: "silent"}
	res, err := c.ImportMapped(t.Context(), client.ImportCSV, rbaMap, sample, opts)
	if err != nil || res.Accepted != 200 || res.Rejected != 0 || len(res.Results) != 200 || res.Format != "csv" {
		t.Fatalf("import: %+v, %v", res, err)
	}
	if r := res.Results[199]; r.Line != 201 || r.Status != client.StatusAccepted || r.ID != "csv:rba:199" {
		t.Errorf("last row: %+v", r)
	}
	// All 200 rows are stored (100 of them failures), csv:rba:0 among them.
	waitForEvents(t, c, client.SearchParams{Since: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC), Limit: 1000}, 200)
	ev, err := c.GetEvent(t.Context(), "csv:rba:0")
	if err != nil || ev.Action != "auth.login.failure" || ev.Reason != "unknown_user" {
		t.Fatalf("csv:rba:0: %+v, %v", ev, err)
	}
	if imp, _ := ev.Metadata["import"].(map[string]any); imp["format"] != "csv:rba" || imp["file"] != "rba.csv" || imp["backfill"] != "silent" {
		t.Errorf("metadata.import of csv:rba:0: %v", ev.Metadata["import"])
	}
	if res, err := c.ImportMapped(t.Context(), client.ImportCSV, rbaMap, sample, opts); err != nil || res.Duplicates != 200 || res.Accepted != 0 {
		t.Errorf("re-import: %+v, %v", res, err)
	}

	// Bad rows: each is rejected with its line in the file and the column
	// at fault; the good row is stored.
	header, _, _ := strings.Cut(string(sample), "\n")
	bad := header + "\n" +
		"9001,yesterday,u1,,10.0.0.1,NO,-,-,1,UA,b,o,d,True,False,False\n" +
		"9002,2020-02-03 12:43:30.772,u1\n" +
		"9003,2020-02-03 12:43:30.772,u1,,10.0.0.1,NO,-,-,1,UA,b,o,d,Maybe,False,False\n" +
		"9004,2020-02-03 12:43:31.772,u1,,10.0.0.1,NO,-,-,1,UA,b,o,d,True,False,False\n"
	status, b := raw(t, "POST", n.url+"/v1/import/csv", key, mappedBody(string(rbaMap), bad))
	var a importAnswer
	if status != 202 || json.Unmarshal(b, &a) != nil || a.Accepted != 1 || a.Rejected != 3 {
		t.Fatalf("bad rows: %d %s", status, b)
	}
	for i, want := range []struct {
		line          int
		status, field string
	}{{2, "rejected", "Login Timestamp"}, {3, "rejected", ""}, {4, "rejected", "Login Successful"}, {5, "accepted", ""}} {
		r := a.Results[i]
		field := ""
		if r.Error != nil {
			field = r.Error.Field
		}
		if r.Line != want.line || r.Status != want.status || field != want.field {
			t.Errorf("result %d = %+v %+v, want %+v", i, r, r.Error, want)
		}
	}

	// NDJSON through the SDK; a record the mapping cannot use is rejected
	// naming its field, and when every record is, the batch is a 400 that
	// still carries each result.
	ndMap := []byte("name: app\nformat: ndjson\ntime: {from: ts, layout: unix}\naction: {value: auth.password.changed}\nfields:\n  actor.id: {from: user.id}\n  context.ip: {from: ip}\n")
	at := time.Now().Add(-time.Hour).Unix()
	nd := []byte(`{"ts":` + strconv.FormatInt(at, 10) + `,"user":{"id":"u1"},"ip":"192.0.2.1"}` + "\n" + `{"ts":` + strconv.FormatInt(at, 10) + `,"user":{"id":"u2"},"ip":"nope"}` + "\n")
	res, err = c.ImportMapped(t.Context(), client.ImportNDJSON, ndMap, nd, client.ImportOptions{})
	if err != nil || res.Accepted != 1 || res.Rejected != 1 || res.Results[1].Line != 2 || res.Results[1].Error.Field != "ip" {
		t.Fatalf("ndjson: %+v, %v", res, err)
	}
	var apiErr *client.Error
	res, err = c.ImportMapped(t.Context(), client.ImportNDJSON, ndMap, []byte(`{"ts":"x"}`), client.ImportOptions{})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || res == nil || len(res.Results) != 1 || res.Results[0].Error.Field != "ts" {
		t.Errorf("all rejected: %+v, %v", res, err)
	}

	const boundary = "--" + testBoundary
	one := boundary + "\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n" + string(sample) + "\r\n" + boundary + "--\r\n"
	refused := []struct {
		name, path, body string
		status           int
		field, msg       string
	}{
		{"not multipart", "/v1/import/csv", string(sample), 400, "Content-Type", "multipart/form-data"},
		{"no mapping", "/v1/import/csv", one, 400, "mapping", "before the file part"},
		{"mapping only", "/v1/import/csv", boundary + "\r\nContent-Disposition: form-data; name=\"mapping\"\r\n\r\n" + string(rbaMap) + "\r\n" + boundary + "--\r\n", 400, "file", "no file part"},
		{"unknown part", "/v1/import/csv", boundary + "\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\nx\r\n" + boundary + "--\r\n", 400, "data", "unknown part"},
		{"bad mapping", "/v1/import/csv", mappedBody("name: rba\nformat: csv\naction: {value: nope}\n", string(sample)), 400, "time.from", "time.from is required"},
		{"mapping of the other format", "/v1/import/ndjson", mappedBody(string(rbaMap), string(sample)), 400, "format", "POST /v1/import/csv"},
		{"header without a mapped column", "/v1/import/csv", mappedBody(string(rbaMap), "index,when\n1,2\n"), 400, "time.from", "is not in the header"},
		{"too many records", "/v1/import/csv", mappedBody(string(rbaMap), header+"\n"+strings.Repeat("1,2\n", 10_001)), 413, "", "more than 10000 records"},
	}
	for _, r := range refused {
		status, b := raw(t, "POST", n.url+r.path, key, r.body)
		var e struct {
			Error struct{ Field, Message string }
		}
		if status != r.status || json.Unmarshal(b, &e) != nil || e.Error.Field != r.field || !strings.Contains(e.Error.Message, r.msg) {
			t.Errorf("%s: %d %s, want %d on %q with %q", r.name, status, b, r.status, r.field, r.msg)
		}
	}
	if status, b := raw(t, "POST", n.url+"/v1/import/csv", n.operator, mappedBody(string(rbaMap), string(sample))); status != 400 || !strings.Contains(string(b), "tenant") {
		t.Errorf("operator without a tenant: %d %s", status, b)
	}
}
