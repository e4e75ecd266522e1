package client

import (
	"context"
	"errors"
	"iter"
	"net/url"
	"strconv"
	"time"
)

// Page sizes of searches.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// SearchParams selects events (GET /v1/events). Zero fields do not filter.
// The tenant comes from the client (WithTenant, ForTenant); an operator
// client without one searches every tenant.
type SearchParams struct {
	// Since is inclusive, Until exclusive.
	Since, Until time.Time
	// Action matches exactly, or as a prefix when it ends in ".*" ("auth.*").
	Action string
	// Actor and Target match actor.id and target.id.
	Actor, Target string
	// IP is an address or a CIDR prefix.
	IP string
	// Session matches context.session_id.
	Session string
	// Outcome is "success" or "failure".
	Outcome string
	// Country (ISO alpha-2), ASN, List (an IP list name) and UAClass filter
	// on enrichment.
	Country string
	ASN     uint32
	List    string
	UAClass string
	// Query is free text matched within metadata values (the q parameter).
	Query string
	// Limit is the page size: DefaultPageSize when 0, at most MaxPageSize.
	Limit int
	// Cursor continues from a previous page's NextCursor.
	Cursor string
}

func (p SearchParams) values() url.Values {
	q := url.Values{}
	setTime(q, "since", p.Since)
	setTime(q, "until", p.Until)
	set(q, "action", p.Action)
	set(q, "actor", p.Actor)
	set(q, "target", p.Target)
	set(q, "ip", p.IP)
	set(q, "session", p.Session)
	set(q, "outcome", p.Outcome)
	set(q, "country", p.Country)
	if p.ASN != 0 {
		q.Set("asn", strconv.FormatUint(uint64(p.ASN), 10))
	}
	set(q, "list", p.List)
	set(q, "ua_class", p.UAClass)
	set(q, "q", p.Query)
	if p.Limit != 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	set(q, "cursor", p.Cursor)
	return q
}

func set(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

func setTime(q url.Values, k string, t time.Time) {
	if !t.IsZero() {
		q.Set(k, t.Format(time.RFC3339Nano))
	}
}

// EventPage is one page of events, newest first. NextCursor continues the
// search; it is empty on the last page.
type EventPage struct {
	Events     []Event `json:"events"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// SearchEvents returns one page of events matching p, newest first.
func (c *Client) SearchEvents(ctx context.Context, p SearchParams) (*EventPage, error) {
	var page EventPage
	if err := c.getJSON(ctx, "/v1/events", c.scope(p.values()), &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// Events iterates over every event matching p, newest first, fetching pages
// of p.Limit as it goes and following cursors. An error ends the iteration
// after being yielded once with a zero Event; breaking out of the loop
// stops fetching.
//
//	for e, err := range c.Events(ctx, client.SearchParams{Action: "auth.*"}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(e.Time, e.Action, e.Actor.ID)
//	}
func (c *Client) Events(ctx context.Context, p SearchParams) iter.Seq2[Event, error] {
	return paginate(p.Cursor, func(cursor string) ([]Event, string, error) {
		p.Cursor = cursor
		page, err := c.SearchEvents(ctx, p)
		if err != nil {
			return nil, "", err
		}
		return page.Events, page.NextCursor, nil
	})
}

// errCursorLoop guards against a server that hands back the cursor it was given.
var errCursorLoop = errors.New("vigil: server returned the same cursor again")

// paginate turns a page fetcher into an iterator that follows cursors.
func paginate[T any](cursor string, fetch func(cursor string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		for {
			items, next, err := fetch(cursor)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			switch {
			case next == "":
				return
			case next == cursor:
				yield(zero, errCursorLoop)
				return
			}
			cursor = next
		}
	}
}

// GetEvent returns the event with id (GET /v1/events/{id}), or an
// ErrNotFound *Error.
func (c *Client) GetEvent(ctx context.Context, id string) (*Event, error) {
	if id == "" {
		return nil, &Error{Code: CodeInvalid, Field: "id", Message: "event id is empty"}
	}
	var e Event
	if err := c.getJSON(ctx, "/v1/events/"+url.PathEscape(id), c.scope(nil), &e); err != nil {
		return nil, err
	}
	return &e, nil
}
