package console

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
	"github.com/vigilhq/vigil/internal/investigate"
	"github.com/vigilhq/vigil/internal/query"
)

// searchExamples are shown beside the search box.
var searchExamples = []struct{ Label, Q string }{
	{"Failed logins in the last hour", "time:>=-1h action:auth.login.failure"},
	{"Addresses trying many accounts", "action:auth.login.failure | stats count() dc(actor.id) as accounts by ip | sort -accounts | head 20"},
	{"Logins from Tor or hosting", "action:auth.login.success list:*"},
	{"MFA removed, by country", "time:>=-7d action:auth.mfa.removed | stats count() by geo.country"},
	{"Risky logins", "action:auth.login.success risk.score:>=60"},
}

// fieldInfo is one queryable field, for autocompletion.
type fieldInfo struct {
	Name string `json:"name"`
	Doc  string `json:"doc"`
}

func fieldsJSON() string {
	var fs []fieldInfo
	for _, f := range query.Fields() {
		fs = append(fs, fieldInfo{f.Name, f.Doc})
	}
	b, _ := json.Marshal(fs)
	return string(b)
}

// parse parses the query language and narrows it to what a restricted
// viewer may see: its actor and its actions are ANDed into the filter.
func (c *Console) parse(rq *request, src string) (*audit.Query, error) {
	q, err := query.Parse(src, c.now())
	if err != nil {
		return nil, err
	}
	var terms []audit.Expr
	if a := rq.ActorOnly(); a != "" {
		terms = append(terms, &audit.CompareExpr{Field: "actor.id", Op: audit.OpEq, Value: audit.QueryValue{Type: audit.FieldText, Text: a}})
	}
	if acts := rq.Actions(); len(acts) > 0 {
		var or []audit.Expr
		for _, a := range acts {
			if base, ok := strings.CutSuffix(a, ".*"); ok {
				or = append(or, &audit.CompareExpr{Field: "action", Op: audit.OpPrefix, Value: audit.QueryValue{Type: audit.FieldText, Text: base + "."}})
			} else {
				or = append(or, &audit.CompareExpr{Field: "action", Op: audit.OpEq, Value: audit.QueryValue{Type: audit.FieldText, Text: a}})
			}
		}
		if len(or) == 1 {
			terms = append(terms, or[0])
		} else {
			terms = append(terms, &audit.OrExpr{Terms: or})
		}
	}
	if len(terms) == 0 {
		return q, nil
	}
	if q.Filter != nil {
		if and, ok := q.Filter.(*audit.AndExpr); ok {
			terms = append(terms, and.Terms...)
		} else {
			terms = append(terms, q.Filter)
		}
	}
	if len(terms) == 1 {
		q.Filter = terms[0]
	} else {
		q.Filter = &audit.AndExpr{Terms: terms}
	}
	return q, nil
}

// resultRow is one row of the results table.
type resultRow struct {
	Cells []string
	Event *audit.Event
	JSON  string
}

func (c *Console) searchPage(w http.ResponseWriter, r *http.Request, rq *request) error {
	src := strings.TrimSpace(r.URL.Query().Get("q"))
	data := map[string]any{"Title": "Search", "Q": src, "Examples": searchExamples, "Fields": fieldsJSON()}
	if c.opts.Saved != nil {
		saved, err := c.opts.Saved.ListSavedSearches(r.Context(), rq.tenant)
		if err != nil {
			return err
		}
		data["SavedSearches"] = saved
	}
	if src == "" {
		c.render(w, r, rq, http.StatusOK, "search", data)
		return nil
	}
	if c.opts.Query == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "queries are not enabled on this server")
	}
	q, err := c.parse(rq, src)
	if err != nil {
		data["Error"] = audit.ErrorMessage(err)
		c.show(w, r, rq, "search", "invalid: "+src, 0, data)
		return nil
	}
	res, err := c.opts.Query.RunQuery(r.Context(), audit.QueryScope{Tenant: rq.tenant}, q)
	if audit.ErrorCode(err) == audit.EINVALID {
		data["Error"] = audit.ErrorMessage(err)
		c.show(w, r, rq, "search", q.String(), 0, data)
		return nil
	}
	if err != nil {
		return err
	}
	rows := make([]resultRow, len(res.Rows))
	for i, vals := range res.Rows {
		cells := make([]string, len(vals))
		for j, v := range vals {
			cells[j] = cellText(v)
		}
		rows[i].Cells = cells
		if i < len(res.Events) {
			ev := res.Events[i]
			rows[i].Event = &ev
			b, _ := json.MarshalIndent(ev, "", "  ")
			rows[i].JSON = string(b)
		}
	}
	data["Columns"], data["Rows"], data["Stats"], data["Canonical"] = res.Columns, rows, res.Stats, q.String()
	c.show(w, r, rq, "search", q.String(), len(rows), data)
	return nil
}

// cellText renders a result value for the table.
func cellText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05")
	case netip.Addr:
		return x.String()
	case []string:
		return strings.Join(x, ", ")
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func (c *Console) saveSearch(w http.ResponseWriter, r *http.Request, rq *request) error {
	if c.opts.Saved == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "saved searches are not enabled on this server")
	}
	if rq.viewer != nil && rq.viewer.ReadOnly {
		return audit.Errorf(audit.EFORBIDDEN, "a read-only viewer cannot save searches")
	}
	name, src := strings.TrimSpace(r.PostFormValue("name")), strings.TrimSpace(r.PostFormValue("q"))
	var errs []error
	if name == "" || len(name) > 128 {
		errs = append(errs, audit.FieldErrorf("name", "name must be 1 to 128 bytes"))
	}
	if _, err := query.Parse(src, c.now()); err != nil {
		errs = append(errs, audit.FieldErrorf("q", "the query is not valid: %s", audit.ErrorMessage(err)))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	s := audit.SavedSearch{ID: hex.EncodeToString(id[:]), Tenant: rq.tenant, Name: name, Query: src, CreatedBy: rq.p.KeyID, CreatedAt: c.now().UTC()}
	if err := c.opts.Saved.SaveSearch(r.Context(), s); err != nil {
		return err
	}
	http.Redirect(w, r, "/search?q="+url.QueryEscape(src), http.StatusSeeOther)
	return nil
}

func (c *Console) deleteSearch(w http.ResponseWriter, r *http.Request, rq *request) error {
	if c.opts.Saved == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "saved searches are not enabled on this server")
	}
	if rq.viewer != nil && rq.viewer.ReadOnly {
		return audit.Errorf(audit.EFORBIDDEN, "a read-only viewer cannot delete saved searches")
	}
	if err := c.opts.Saved.DeleteSavedSearch(r.Context(), rq.tenant, r.PathValue("id")); err != nil {
		return err
	}
	http.Redirect(w, r, "/search", http.StatusSeeOther)
	return nil
}

// export streams a query's rows as CSV or NDJSON, audited as a
// vigil.export. The browser shows progress from the streamed bytes.
func (c *Console) export(w http.ResponseWriter, r *http.Request, rq *request) error {
	if c.opts.Query == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "exports are not enabled on this server")
	}
	format, err := investigate.ExportFormat(r.URL.Query().Get("format"))
	if err != nil {
		return err
	}
	q, err := c.parse(rq, r.URL.Query().Get("q"))
	if err != nil {
		return err
	}
	// Recorded before the first row: once rows flow the read cannot be
	// refused, so the record has no row count.
	if err := c.opts.AuditRead(r, rq.p, audit.QueryScope{Tenant: rq.tenant}, audit.ActionExport,
		map[string]any{"route": "console GET /export", "query": q.String(), "format": format, "via": rq.via()}, -1); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", investigate.ExportContentType(format))
	h.Set("Content-Disposition", `attachment; filename="vigil-`+rq.tenant+`-export.`+format+`"`)
	bw := bufio.NewWriterSize(w, 64<<10)
	// Flushed every 2,000 rows, so the browser's progress moves.
	sink := &investigate.Export{W: bw, Format: format, FlushEvery: 2000, Flush: func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		_ = http.NewResponseController(w).Flush()
		return r.Context().Err()
	}}
	_, err = c.opts.Query.ExportQuery(r.Context(), audit.QueryScope{Tenant: rq.tenant}, q, sink)
	if err == nil {
		err = sink.Finish()
	}
	if err != nil && !sink.Started() {
		h.Del("Content-Disposition")
		return err
	}
	if err != nil {
		c.log.LogAttrs(r.Context(), slog.LevelWarn, "console export ended early", slog.String("request_id", httpx.RequestID(r.Context())),
			slog.Int("rows", sink.Rows()), slog.String("error", err.Error()))
	}
	return nil
}
