package httpapi

import (
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
	"github.com/vigilhq/vigil/internal/importer"
	"github.com/vigilhq/vigil/internal/importer/mapping"
	"github.com/vigilhq/vigil/internal/ingest"
)

// importResult is one record's entry in an import response: Line is the
// line of the body on which the record starts.
type importResult struct {
	Index  int              `json:"index"`
	Line   int              `json:"line"`
	Status string           `json:"status"`
	ID     string           `json:"id,omitempty"`
	Action string           `json:"action,omitempty"`
	Error  *httpx.ErrorBody `json:"error,omitempty"`
}

type importResponse struct {
	Format     string         `json:"format"`
	Accepted   int            `json:"accepted"`
	Duplicates int            `json:"duplicates"`
	Rejected   int            `json:"rejected"`
	Results    []importResult `json:"results"`
	// Error is set, with the first record's problem, when no record was
	// stored; the status is then that problem's.
	Error *httpx.ErrorBody `json:"error,omitempty"`
}

// maxImportFileName bounds the file name recorded in metadata.import.file.
const maxImportFileName = 256

// postImport decodes a body of vendor records (NDJSON or one JSON array)
// with the format's importer and ingests the events exactly as POST
// /v1/events would, under the same limits: the body size, MaxBatch
// records, the in-flight byte budget, concurrency and backlog. Each
// record's result carries its line; a bad record never sinks the others.
func (a *API) postImport(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	format := r.PathValue("format")
	dec, ok := a.opts.Importers[format]
	if !ok {
		names := make([]string, 0, len(a.opts.Importers)+2)
		for n := range a.opts.Importers {
			names = append(names, n)
		}
		names = append(names, mapping.FormatCSV, mapping.FormatNDJSON)
		slices.Sort(names)
		return audit.Errorf(audit.ENOTFOUND, "no importer for %q; the formats are %s", clip(format, 40), strings.Join(names, ", "))
	}
	return a.runImport(w, r, p, format, func(body *httpx.BudgetReader) (func() (importer.Decoded, error), error) {
		return importer.DecodeAll(importer.NewReader(body), dec), nil
	})
}

// postMappedImport imports a CSV or NDJSON file of any shape with a
// mapping file (POST /v1/import/csv, /v1/import/ndjson): a
// multipart/form-data body whose part "mapping" (the YAML mapping file,
// at most mapping.MaxFileBytes) comes before the part "file" (the
// records). The file is streamed through the mapping and ingested like a
// vendor import: same limits, results and answer.
func (a *API) postMappedImport(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	format := mapping.FormatCSV
	if strings.HasSuffix(r.URL.Path, "/"+mapping.FormatNDJSON) {
		format = mapping.FormatNDJSON
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return audit.FieldErrorf("Content-Type", "the body must be multipart/form-data with the parts mapping and file")
	}
	return a.runImport(w, r, p, format, func(body *httpx.BudgetReader) (func() (importer.Decoded, error), error) {
		mr := multipart.NewReader(body, params["boundary"])
		var m *mapping.Mapping
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				if m == nil {
					return nil, audit.FieldErrorf("mapping", "the body has no mapping part")
				}
				return nil, audit.FieldErrorf("file", "the body has no file part")
			}
			if err != nil {
				return nil, a.bodyError(err, "the multipart body could not be read")
			}
			switch part.FormName() {
			case "mapping":
				if m != nil {
					return nil, audit.FieldErrorf("mapping", "the body has two mapping parts")
				}
				b, err := io.ReadAll(io.LimitReader(part, mapping.MaxFileBytes+1))
				if err != nil {
					return nil, a.bodyError(err, "the mapping part could not be read")
				}
				if m, err = mapping.Parse(b); err != nil {
					return nil, err
				}
				if m.Format() != format {
					return nil, audit.FieldErrorf("format", "the mapping reads %s records; send it to POST /v1/import/%s", m.Format(), m.Format())
				}
			case "file":
				if m == nil {
					return nil, audit.FieldErrorf("mapping", "the mapping part must come before the file part")
				}
				rd, err := m.NewReader(part)
				if err != nil {
					return nil, a.bodyError(err, "the file part could not be read")
				}
				return rd.Next, nil
			default:
				return nil, audit.FieldErrorf(clip(part.FormName(), 40), "unknown part %q: the parts are mapping and file", clip(part.FormName(), 40))
			}
		}
	})
}

// runImport is what every import route shares: the tenant and backfill
// parameters, the ingest concurrency, backlog and body limits, decoding
// the body's records with open (which returns their iterator), ingesting
// them and answering per record.
func (a *API) runImport(w http.ResponseWriter, r *http.Request, p audit.Principal, format string,
	open func(body *httpx.BudgetReader) (func() (importer.Decoded, error), error)) error {
	q := r.URL.Query()
	tenant := q.Get("tenant")
	switch {
	case !p.Operator() && tenant != "" && tenant != p.Tenant:
		return &audit.Error{Code: audit.EFORBIDDEN, Field: "tenant", Message: "this key may not write to another tenant"}
	case p.Operator() && tenant == "":
		return audit.FieldErrorf("tenant", "tenant is required with an operator key (?tenant=)")
	}
	file := clip(q.Get("file"), maxImportFileName)
	// backfill marks the records as history (audit.BackfillSilent,
	// audit.BackfillAlert) in metadata.import.backfill.
	backfill := q.Get("backfill")
	if !audit.ValidBackfill(backfill) {
		return audit.FieldErrorf("backfill", "backfill must be %s or %s", audit.BackfillSilent, audit.BackfillAlert)
	}
	select {
	case a.inflight <- struct{}{}:
		defer func() { <-a.inflight }()
	default:
		a.overload.Inc()
		return a.limits.Refused(LimitIngestConcurrency, "the server is at its ingest capacity; retry after the Retry-After delay")
	}
	if err := a.checkBacklog(r); err != nil {
		return err
	}
	maxBody := a.opts.MaxBodyBytes
	if r.ContentLength > maxBody {
		return tooLarge(maxBody)
	}
	body := httpx.NewBudgetReader(http.MaxBytesReader(w, r.Body, maxBody), a.bodyBytes)
	defer body.Release()
	if r.ContentLength >= 0 && !body.Reserve(r.ContentLength+1) {
		return a.overBudget()
	}
	next, err := open(body)
	if err != nil {
		return err
	}
	items, lines, err := a.readRecords(body, next, tenant, format, file, backfill)
	if err != nil {
		return err
	}
	res, err := a.opts.Ingest.Ingest(r.Context(), p, items)
	if err != nil {
		return err
	}
	out := importResponse{Format: format, Accepted: res.Accepted, Duplicates: res.Duplicates, Rejected: res.Rejected,
		Results: make([]importResult, len(res.Results))}
	for i, er := range res.Results {
		ir := importResult{Index: er.Index, Line: lines[i], Status: er.Status, ID: er.ID}
		if ev := items[i].Event; ev != nil {
			ir.Action = ev.Action
		}
		if er.Err != nil {
			b := httpx.Body(er.Err, "")
			ir.Error = &b
		}
		out.Results[i] = ir
	}
	status := http.StatusAccepted
	if res.Accepted == 0 && res.Duplicates == 0 {
		first := out.Results[0].Error
		status = httpx.Status(first.Code)
		out.Error = &httpx.ErrorBody{Code: first.Code, Message: first.Message, Field: first.Field, Problems: first.Problems, RequestID: httpx.RequestID(r.Context())}
		if len(out.Results) > 1 {
			out.Error.Message = "every record was rejected; the first (line " + strconv.Itoa(out.Results[0].Line) + "): " + first.Message
		}
	}
	httpx.WriteJSON(w, status, out)
	return nil
}

// bodyError translates an error reading the request body: over the size
// limit, over the in-flight budget, an input error kept as it is (it
// names its field), anything else a generic invalid body.
func (a *API) bodyError(err error, msg string) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge(a.opts.MaxBodyBytes)
	case errors.Is(err, httpx.ErrBudgetExhausted):
		return a.overBudget()
	case audit.ErrorCode(err) == audit.EINTERNAL:
		return &audit.Error{Code: audit.EINVALID, Message: msg, Err: err}
	}
	return err
}

// readRecords takes the decoded records from next, charging each one's
// decoded form to the in-flight budget, and stamps each event with its
// tenant and import marks. It returns the items for ingestion and each
// one's line.
func (a *API) readRecords(br *httpx.BudgetReader, next func() (importer.Decoded, error), tenant, format, file, backfill string) ([]ingest.Item, []int, error) {
	var items []ingest.Item
	var lines []int
	for {
		rec, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, a.bodyError(err, "the request body could not be read")
		}
		if len(items) == ingest.MaxBatch {
			return nil, nil, audit.Errorf(audit.ETOOLARGE, "the body holds more than %d records; send smaller batches", ingest.MaxBatch)
		}
		// The decoded event holds a copy of up to MaxRawBytes of the record.
		if !br.Reserve(decodedEventBytes + int64(min(rec.Size, importer.MaxRawBytes))) {
			return nil, nil, a.overBudget()
		}
		it := ingest.Item{Index: len(items), Err: rec.Err}
		if ev := rec.Event; rec.Err == nil && ev != nil {
			ev.Tenant = tenant
			// The decoder recorded the format (a mapping's is csv:<name>).
			imp, _ := ev.Metadata["import"].(map[string]any)
			if imp == nil {
				imp = map[string]any{"format": format}
			}
			if file != "" {
				imp["file"] = file
			}
			if backfill != "" {
				imp["backfill"] = backfill
			}
			if len(imp) > 1 {
				ev.Metadata["import"] = imp
			}
			it.Event = ev
		}
		items = append(items, it)
		lines = append(lines, rec.Line)
	}
	if len(items) == 0 {
		return nil, nil, audit.Errorf(audit.EINVALID, "the body holds no records")
	}
	return items, lines, nil
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string { return importer.Text(s, n) }
