package httpapi

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/httpx"
	"github.com/vigilhq/vigil/internal/ingest"
)

// wireResult is one event's entry in an ingest response.
type wireResult struct {
	Index  int              `json:"index"`
	Status string           `json:"status"`
	ID     string           `json:"id,omitempty"`
	Error  *httpx.ErrorBody `json:"error,omitempty"`
}

type ingestResponse struct {
	Accepted   int              `json:"accepted"`
	Duplicates int              `json:"duplicates"`
	Rejected   int              `json:"rejected"`
	Results    []wireResult     `json:"results"`
	Error      *httpx.ErrorBody `json:"error,omitempty"`
}

func (a *API) postEvents(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
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
	body := httpx.NewBudgetReader(http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes), a.bodyBytes)
	defer body.Release() // the decoded events live until the answer is written
	items, err := a.readEvents(r, body)
	if err != nil {
		return err
	}
	res, err := a.opts.Ingest.Ingest(r.Context(), p, items)
	if err != nil {
		return err
	}
	out := ingestResponse{Accepted: res.Accepted, Duplicates: res.Duplicates, Rejected: res.Rejected, Results: make([]wireResult, len(res.Results))}
	rid := httpx.RequestID(r.Context())
	for i, er := range res.Results {
		wr := wireResult{Index: er.Index, Status: er.Status, ID: er.ID}
		if er.Err != nil {
			b := httpx.Body(er.Err, "")
			wr.Error = &b
		}
		out.Results[i] = wr
	}
	status := http.StatusAccepted
	if res.Accepted == 0 && res.Duplicates == 0 {
		first := out.Results[0].Error
		status = httpx.Status(first.Code)
		out.Error = &httpx.ErrorBody{Code: first.Code, Message: first.Message, Field: first.Field, Problems: first.Problems, RequestID: rid}
		if len(out.Results) > 1 {
			out.Error.Message = "every event was rejected; the first: " + first.Message
		}
	}
	httpx.WriteJSON(w, status, out)
	return nil
}

// bodyFormat reads an ingest body's format from its Content-Type. JSON
// and NDJSON types are taken at their word; any other type, or none, is
// sniffed from the body (plain `curl -d` sends a form type), so every JSON
// endpoint accepts JSON whatever the client labelled it.
func bodyFormat(ct string) ingest.Format {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ingest.FormatSniff
	}
	switch mt {
	case "application/json":
		return ingest.FormatJSON
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines":
		return ingest.FormatNDJSON
	}
	return ingest.FormatSniff
}

// readEvents streams and decodes an ingest body through br, which charges
// its bytes to the server-wide in-flight budget (up front when the length
// is announced, else as they arrive) and decodedEventBytes per event. The caller releases them once the
// request is answered, because the decoded events live that long.
func (a *API) readEvents(r *http.Request, br *httpx.BudgetReader) ([]ingest.Item, error) {
	maxBody := a.opts.MaxBodyBytes
	if r.ContentLength > maxBody {
		return nil, tooLarge(maxBody)
	}
	// One byte over the announced length lets the reader see the end of
	// the body without reserving another step.
	if r.ContentLength >= 0 && !br.Reserve(r.ContentLength+1) {
		return nil, a.overBudget()
	}
	admit := func() error {
		if !br.Reserve(decodedEventBytes) {
			return httpx.ErrBudgetExhausted
		}
		return nil
	}
	items, err := ingest.DecodeReader(br, bodyFormat(r.Header.Get("Content-Type")), admit)
	if err == nil {
		return items, nil
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, tooLarge(maxBody)
	case errors.Is(err, httpx.ErrBudgetExhausted):
		return nil, a.overBudget()
	case audit.ErrorCode(err) == audit.EINTERNAL:
		return nil, &audit.Error{Code: audit.EINVALID, Message: "the request body could not be read", Err: err}
	}
	return nil, err
}

// decodedEventBytes is what each event is charged beyond its body bytes:
// its decoded form (an audit.Event is about 400 bytes before its strings)
// and its result. Without it, 10,000 events of `{}` would cost 30 KB of
// budget and 5 MB of memory.
const decodedEventBytes = 512

func tooLarge(max int64) error {
	return audit.Errorf(audit.ETOOLARGE, "request body is over %s (server.max_body_size); send smaller batches", byteSize(max))
}

// LimitIngestBytes names the in-flight ingest byte budget in 429 answers.
const LimitIngestBytes = "ingest_bytes"

func (a *API) overBudget() error {
	a.overload.Inc()
	return a.limits.Refused(LimitIngestBytes, "the server holds its limit of %s of ingest requests in flight (server.max_inflight_ingest_bytes); retry after the Retry-After delay",
		byteSize(a.bodyBytes.Max()))
}

// byteSize writes n in the largest binary unit that divides it.
func byteSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + " " + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// checkBacklog answers 429 when the pipeline is too far behind ingestion,
// so a flood slows clients down instead of filling the disk.
func (a *API) checkBacklog(r *http.Request) error {
	st, ok := a.opts.Stream.(audit.StreamStats)
	if !ok {
		return nil
	}
	last, committed, err := st.Backlog(r.Context())
	if err != nil {
		return nil // the append itself will report a broken stream
	}
	if last-committed > a.opts.MaxBacklog {
		a.overload.Inc()
		return a.limits.Refused(LimitIngestBacklog, "ingestion is %d events ahead of processing; retry after the Retry-After delay", last-committed)
	}
	return nil
}

type eventsResponse struct {
	Events     []audit.Event `json:"events"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

func (a *API) searchEvents(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	q := r.URL.Query()
	f, err := parseEventFilter(q)
	if err != nil {
		return err
	}
	if f.Tenant, f.AllTenants, err = tenantScope(p, q.Get("tenant"), true); err != nil {
		return err
	}
	page, err := a.opts.Events.SearchEvents(r.Context(), f)
	if err != nil {
		return err
	}
	if page.Events == nil {
		page.Events = []audit.Event{}
	}
	q.Del("cursor")
	if err := a.recordRead(r, p, audit.QueryScope{Tenant: f.Tenant, AllTenants: f.AllTenants}, readRecord{action: audit.ActionSearch,
		route: "GET /v1/events", query: q.Encode(), rows: int64(len(page.Events)), extra: map[string]any{"page": f.Cursor != ""}}); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, eventsResponse{Events: page.Events, NextCursor: a.nextCursor(r, page.Next)})
	return nil
}

func (a *API) getEvent(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	tenant, _, err := tenantScope(p, r.URL.Query().Get("tenant"), false)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	ev, err := a.opts.Events.GetEvent(r.Context(), tenant, id)
	if err != nil && audit.ErrorCode(err) != audit.ENOTFOUND {
		return err
	}
	// A lookup that finds nothing is recorded too: probing ids is a read.
	if aerr := a.recordRead(r, p, audit.QueryScope{Tenant: tenant}, readRecord{action: audit.ActionSearch,
		route: "GET /v1/events/{id}", query: "id:" + id, rows: cond(err == nil, int64(1), 0)}); aerr != nil {
		return aerr
	}
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, ev)
	return nil
}

// parseEventFilter reads GET /v1/events query parameters; errors name the parameter.
func parseEventFilter(q url.Values) (audit.EventFilter, error) {
	var f audit.EventFilter
	known := map[string]bool{"since": true, "until": true, "action": true, "actor": true, "target": true, "ip": true,
		"session": true, "outcome": true, "country": true, "asn": true, "list": true, "ua_class": true, "q": true,
		"limit": true, "cursor": true, "tenant": true}
	for k := range q {
		if !known[k] {
			return f, audit.FieldErrorf(k, "unknown query parameter %q", k)
		}
	}
	var err error
	if f.Since, err = parseTime(q, "since"); err != nil {
		return f, err
	}
	if f.Until, err = parseTime(q, "until"); err != nil {
		return f, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return f, audit.FieldErrorf("until", "until must be after since")
	}
	f.Action = q.Get("action")
	if f.Action != "" {
		base := strings.TrimSuffix(f.Action, ".*")
		if base != f.Action && !audit.ValidAction(base+".x") || base == f.Action && !audit.ValidAction(f.Action) {
			return f, audit.FieldErrorf("action", "action must be an action name or a prefix such as auth.*")
		}
	}
	f.ActorID, f.TargetID, f.SessionID = q.Get("actor"), q.Get("target"), q.Get("session")
	if s := q.Get("ip"); s != "" {
		if f.IP, err = ParseIPOrCIDR(s); err != nil {
			return f, audit.FieldErrorf("ip", "ip must be an IP address or CIDR, not %q", s)
		}
	}
	switch o := audit.Outcome(q.Get("outcome")); o {
	case audit.OutcomeUnknown, audit.OutcomeSuccess, audit.OutcomeFailure:
		f.Outcome = o
	default:
		return f, audit.FieldErrorf("outcome", "outcome must be success or failure")
	}
	f.Country = strings.ToUpper(q.Get("country"))
	if s := q.Get("asn"); s != "" {
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(s), "AS"), 10, 32)
		if err != nil {
			return f, audit.FieldErrorf("asn", "asn must be a number such as 64500 or AS64500")
		}
		f.ASN = uint32(n)
	}
	f.List, f.UAClass, f.Text, f.Cursor = q.Get("list"), q.Get("ua_class"), q.Get("q"), q.Get("cursor")
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > audit.MaxPageSize {
			return f, audit.FieldErrorf("limit", "limit must be between 1 and %d", audit.MaxPageSize)
		}
		f.Limit = n
	}
	return f, nil
}

func parseTime(q url.Values, key string) (time.Time, error) {
	s := q.Get(key)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, audit.FieldErrorf(key, "%s must be an RFC 3339 time such as 2026-11-25T00:00:00Z", key)
	}
	return t.UTC(), nil
}

// ParseIPOrCIDR parses "203.0.113.7" as a /32 (or /128) and
// "203.0.113.0/24" as itself, masked.
func ParseIPOrCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		return p.Masked(), nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	ip = ip.Unmap().WithZone("")
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

func (a *API) postRisk(w http.ResponseWriter, r *http.Request, p audit.Principal) error {
	if a.opts.Scorer == nil {
		return audit.Errorf(audit.EUNAVAILABLE, "risk scoring is not enabled on this server")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, audit.MaxEventBytes+1))
	if err != nil {
		return audit.Errorf(audit.ETOOLARGE, "a risk request is one event of at most %d bytes", audit.MaxEventBytes)
	}
	ev, err := ingest.DecodeEvent(body)
	if err != nil {
		return err
	}
	if ev.Action == "" {
		ev.Action = audit.ActionLoginSuccess
	}
	if ev.Action != audit.ActionLoginSuccess {
		return audit.FieldErrorf("action", "risk is scored for %s events", audit.ActionLoginSuccess)
	}
	switch {
	case !p.Operator() && ev.Tenant == "":
		ev.Tenant = p.Tenant
	case !p.Operator() && ev.Tenant != p.Tenant:
		return &audit.Error{Code: audit.EFORBIDDEN, Field: "tenant", Message: "this key may not score another tenant's logins"}
	}
	now := a.now().UTC()
	ev.Normalize(now)
	if err := ev.Validate(now); err != nil {
		return err
	}
	ctx := r.Context()
	if a.opts.Enricher != nil {
		_ = a.opts.Enricher.Enrich(ctx, ev)
	}
	var risk audit.Risk
	if cs, ok := a.opts.Scorer.(CheckedScorer); ok {
		if risk, err = cs.ScoreChecked(ctx, ev); err != nil {
			return err
		}
	} else {
		risk = a.opts.Scorer.ScoreContext(ctx, ev)
	}
	if err := ctx.Err(); err != nil {
		// The caller gave up (its deadline passed): nobody reads the answer.
		return audit.Errorf(audit.EUNAVAILABLE, "the risk score was not ready before the request ended")
	}
	httpx.WriteJSON(w, http.StatusOK, risk)
	return nil
}

func cond[T any](c bool, a, b T) T {
	if c {
		return a
	}
	return b
}
