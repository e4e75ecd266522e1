package httpapi

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
	"github.com/vigilhq/vigil/internal/investigate"
	"github.com/vigilhq/vigil/internal/query"
)

// maxQueryBody caps a POST /v1/query or /v1/export body: the query source
// (query.MaxSourceBytes) plus JSON escaping and the other fields.
const maxQueryBody = 4*query.MaxSourceBytes + 1024

type queryRequest struct {
	Q      string `json:"q"`
	Tenant string `json:"tenant,omitempty"`
	// Format is the export format: csv (default) or ndjson.
	Format string `json:"format,omitempty"`
}

type queryResponse struct {
	Query   string              `json:"query"`
	Columns []audit.QueryColumn `json:"columns"`
	Rows    [][]any             `json:"rows"`
	Events  []audit.Event       `json:"events,omitempty"`
	Stats   audit.QueryStats    `json:"stats"`
}

// parseQueryRequest decodes the body, resolves the scope and parses the
// query; every failure is a 4xx naming the field.
func (a *API) parseQueryRequest(w http.ResponseWriter, r *http.Request, p audit.Principal) (queryRequest, audit.QueryScope, *audit.Query, error) {
	var req queryRequest
	if a.opts.Query == nil {
		return req, audit.QueryScope{}, nil, audit.Errorf(audit.EUNAVAILABLE, "queries are not enabled on this server")
	}
	if err := httpx.DecodeJSON(w, r, maxQueryBody, &req); err != nil {
		return req, audit.QueryScope{}, nil, err
	}
	var scope audit.QueryScope
	var err error
	if scope.Tenant, scope.AllTenants, err = tenantScope(p, req.Tenant, true); err != nil {
		return req, scope, nil, err
	}
	q, err := query.Parse(req.Q, a.now())
	if err != nil {
		var ae *audit.Error
		if errors.As(err, &ae) && ae.Field == "" {
			err = &audit.Error{Code: ae.Code, Field: "q", Message: ae.Message, Err: ae.Err}
		}
		return req, scope, nil, err
	}
	return req, scope, q, nil
}

func (a *API) postQuery(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	req, scope, q, err := a.parseQueryRequest(w, r, p)
	if err != nil {
		return err
	}
	if req.Format != "" {
		return audit.FieldErrorf("format", "format applies to POST /v1/export only")
	}
	res, err := a.opts.Query.RunQuery(r.Context(), scope, q)
	if err != nil {
		return err
	}
	canon := q.String()
	if err := a.recordRead(r, p, scope, readRecord{action: audit.ActionSearch, route: "POST /v1/query", query: canon, rows: res.Stats.Rows}); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, queryResponse{Query: canon, Columns: res.Columns, Rows: res.Rows, Events: res.Events, Stats: res.Stats})
	return nil
}

func flush(w http.ResponseWriter) { _ = http.NewResponseController(w).Flush() }

// postExport streams every row of a query as CSV or NDJSON. Memory stays
// constant: rows go from the store's cursor through a buffered encoder to
// the connection. Errors after the first byte cannot change the status, so
// they end the stream early; the CSV/NDJSON then lacks the final
// X-Vigil-Rows trailer, which is how a client tells a complete export.
func (a *API) postExport(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	w = httpx.NewDeadlineWriter(w, a.opts.ExportWriteTimeout)
	if a.opts.MaxExportDuration > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), a.opts.MaxExportDuration)
		defer cancel()
		r = r.WithContext(ctx)
	}
	req, scope, q, err := a.parseQueryRequest(w, r, p)
	if err != nil {
		return err
	}
	format, err := investigate.ExportFormat(req.Format)
	if err != nil {
		return err
	}
	canon := q.String()
	// The record comes first: once rows flow the read cannot be refused.
	// Its row count is not known yet and stays out of it.
	if err := a.recordRead(r, p, scope, readRecord{action: audit.ActionExport, route: "POST /v1/export", query: canon, rows: -1,
		extra: map[string]any{"format": format}}); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", investigate.ExportContentType(format))
	h.Set("Content-Disposition", `attachment; filename="vigil-export.`+investigate.ExportExtension(format)+`"`)
	h.Set("Trailer", "X-Vigil-Rows")
	bw := bufio.NewWriterSize(w, 64<<10)
	sink := &investigate.Export{W: bw, Format: format, FlushEvery: 4096, Flush: func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		flush(w)
		return r.Context().Err()
	}}
	st, err := a.opts.Query.ExportQuery(r.Context(), scope, q, sink)
	if err == nil {
		err = sink.Finish()
	}
	if err != nil {
		if !sink.Started() {
			h.Del("Trailer")
			h.Del("Content-Disposition")
			return err // nothing written yet: a normal error response
		}
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "export ended early", slog.String("request_id", httpx.RequestID(r.Context())),
			slog.Int64("rows", st.Rows), slog.String("error", err.Error()))
		return nil
	}
	if !sink.Started() { // no columns at all cannot happen, but never send an empty 200 without a header
		w.WriteHeader(http.StatusOK)
	}
	h.Set("X-Vigil-Rows", strconv.FormatInt(st.Rows, 10))
	return nil
}

// maxAuditQueryBytes bounds the query text stored in a read-audit event
// (metadata is capped at audit.MaxMetadataBytes).
const maxAuditQueryBytes = 4 << 10

// maxAuditBatch bounds one append of an all-tenant read's records.
const maxAuditBatch = 5000

// errReadNotAudited answers a read whose audit record could not be made
// durable: the log shows every read, so an unrecorded read is not answered.
const errReadNotAudited = "this read could not be recorded in the audit log, so it was not answered; retry later"

// readRecord describes one read of the log for its audit record.
type readRecord struct {
	action string // audit.ActionSearch or audit.ActionExport
	route  string // the route pattern
	query  string // what was asked; may hold personal data (e-mails, IPs)
	rows   int64  // rows or events answered; -1 when not known beforehand (exports)
	extra  map[string]any
}

// recordRead durably records a read of the log before it is answered: a
// vigil.search or vigil.export event saying who (the key id), what (the
// query) and how much (rows), appended to the durable stream through the
// server's own path (ingest.Service.RecordBatch, which waits for the fsync). When the
// record cannot be made durable the read fails with 503 and nothing is
// answered; the error log names the tenant and key, never the query.
//
// A read of one tenant is recorded in that tenant, so its customers see
// that an operator looked. An operator's read across every tenant is
// recorded in every tenant, one record each (appended in batches of
// maxAuditBatch): such a read may have touched any tenant's data. Those
// copies carry the SHA-256 of the query text instead of the text, which
// may name another tenant's users. A read of installation-wide data (an
// installation finding, tenant "") is recorded the same way.
func (a *API) recordRead(r *http.Request, p audit.Principal, scope audit.QueryScope, rec readRecord) error {
	meta := make(map[string]any, len(rec.extra)+6)
	for k, v := range rec.extra {
		meta[k] = v
	}
	meta["route"] = rec.route
	meta["request_id"] = httpx.RequestID(r.Context())
	if rec.rows >= 0 {
		meta["rows"] = rec.rows
	}
	q := rec.query
	if len(q) > maxAuditQueryBytes {
		cut := maxAuditQueryBytes
		for cut > 0 && !utf8.RuneStart(q[cut]) {
			cut--
		}
		q = q[:cut]
		meta["query_truncated"] = true
	}
	ctx, cancel := context.WithTimeout(serverWrite(r.Context()), 5*time.Second)
	defer cancel()
	actor := audit.Actor{ID: p.KeyID, Type: audit.ActorAPIKey}
	var err error
	if !scope.AllTenants && scope.Tenant != "" {
		meta["query"] = q
		err = a.opts.Ingest.RecordBatch(ctx, p, []*audit.Event{{Tenant: scope.Tenant, Action: rec.action, Actor: actor, Metadata: meta}})
	} else {
		sum := sha256.Sum256([]byte(rec.query))
		meta["query_sha256"] = hex.EncodeToString(sum[:])
		meta["scope"] = "all_tenants"
		err = a.recordEverywhere(ctx, p, rec.action, actor, meta)
	}
	if err != nil {
		a.readAudits.WithLabelValues("failed").Inc()
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "read audit failed", slog.String("request_id", httpx.RequestID(r.Context())),
			slog.String("action", rec.action), slog.String("tenant_id", scope.Tenant), slog.Bool("all_tenants", scope.AllTenants),
			slog.String("key_id", p.KeyID), slog.String("error", err.Error()))
		return &audit.Error{Code: audit.EUNAVAILABLE, Message: errReadNotAudited, Err: err}
	}
	a.readAudits.WithLabelValues("recorded").Inc()
	return nil
}

// recordEverywhere appends one copy of a read record to every tenant.
func (a *API) recordEverywhere(ctx context.Context, p audit.Principal, action string, actor audit.Actor, meta map[string]any) error {
	ts, err := a.opts.Tenants.ListTenants(ctx)
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	for len(ts) > 0 {
		n := min(len(ts), maxAuditBatch)
		evs := make([]*audit.Event, n)
		for i, t := range ts[:n] {
			evs[i] = &audit.Event{Tenant: t.ID, Action: action, Actor: actor, Metadata: maps.Clone(meta)}
		}
		if err := a.opts.Ingest.RecordBatch(ctx, p, evs); err != nil {
			return err
		}
		ts = ts[n:]
	}
	return nil
}
