package httpapi

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
	"github.com/vigilhq/vigil/internal/importer"
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
		names := make([]string, 0, len(a.opts.Importers))
		for n := range a.opts.Importers {
			names = append(names, n)
		}
		slices.Sort(names)
		return audit.Errorf(audit.ENOTFOUND, "no importer for %q; the formats are %s", clip(format, 40), strings.Join(names, ", "))
	}
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
	items, lines, err := a.readRecords(body, dec, tenant, format, file, backfill)
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

// readRecords splits the body into records and decodes each, charging
// every record's decoded form to the in-flight budget. It returns the
// items for ingestion and each one's line.
func (a *API) readRecords(body io.Reader, dec importer.Decoder, tenant, format, file, backfill string) ([]ingest.Item, []int, error) {
	br, _ := body.(*httpx.BudgetReader)
	rd := importer.NewReader(body)
	var items []ingest.Item
	var lines []int
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			switch {
			case errors.As(err, &mbe):
				return nil, nil, tooLarge(a.opts.MaxBodyBytes)
			case errors.Is(err, httpx.ErrBudgetExhausted):
				return nil, nil, a.overBudget()
			case audit.ErrorCode(err) == audit.EINTERNAL:
				return nil, nil, &audit.Error{Code: audit.EINVALID, Message: "the request body could not be read", Err: err}
			}
			return nil, nil, err
		}
		if len(items) == ingest.MaxBatch {
			return nil, nil, audit.Errorf(audit.ETOOLARGE, "the body holds more than %d records; send smaller batches", ingest.MaxBatch)
		}
		// The decoded event holds a copy of up to MaxRawBytes of the record.
		if br != nil && !br.Reserve(decodedEventBytes+int64(min(len(rec.Raw), importer.MaxRawBytes))) {
			return nil, nil, a.overBudget()
		}
		it := ingest.Item{Index: len(items), Err: rec.Err}
		if rec.Err == nil {
			ev, err := dec(rec.Raw)
			if err != nil {
				it.Err = err
			} else {
				ev.Tenant = tenant
				imp := map[string]any{"format": format}
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
