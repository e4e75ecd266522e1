package client_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vigilhq/vigil/client"
)

// seed stores n login failures one second apart and returns their ids,
// newest first.
func seed(t *testing.T, c *client.Client, n int) []string {
	t.Helper()
	evs := make([]client.Event, n)
	for i := range evs {
		evs[i] = loginFailure(fmt.Sprintf("user%d", i), t0.Add(time.Duration(i)*time.Second))
	}
	if _, err := c.Send(t.Context(), evs...); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range evs {
		ids[n-1-i] = evs[i].ID
	}
	return ids
}

func TestEventsIterator(t *testing.T) {
	s := newFakeServer(t)
	c, _ := newClient(t, s)
	want := seed(t, c, 7)

	var got []string
	for e, err := range c.Events(t.Context(), client.SearchParams{Action: "auth.*", Limit: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.ID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
	if n := s.count("GET /v1/events"); n != 3 {
		t.Errorf("%d page requests, want 3", n)
	}

	t.Run("break stops fetching", func(t *testing.T) {
		before := s.count("GET /v1/events")
		for range c.Events(t.Context(), client.SearchParams{Limit: 3}) {
			break
		}
		if n := s.count("GET /v1/events") - before; n != 1 {
			t.Errorf("%d requests after break, want 1", n)
		}
	})

	t.Run("error ends the iteration", func(t *testing.T) {
		s.setFault(func(w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Query().Get("cursor") == "o3" {
				writeError(w, http.StatusBadRequest, "invalid", "cursor", "malformed cursor", "r")
				return true
			}
			return false
		})
		t.Cleanup(func() { s.setFault(nil) })
		var n int
		var last error
		for _, err := range c.Events(t.Context(), client.SearchParams{Limit: 3}) {
			if err != nil {
				last = err
				continue // the iterator must stop by itself
			}
			n++
		}
		if n != 3 || !errors.Is(last, client.ErrInvalid) {
			t.Errorf("got %d events and %v, want 3 and ErrInvalid", n, last)
		}
	})

	t.Run("repeated cursor", func(t *testing.T) {
		s.setFault(func(w http.ResponseWriter, r *http.Request, n int) bool {
			writeJSON(w, 200, client.EventPage{Events: []client.Event{{ID: "x"}}, NextCursor: "same"})
			return true
		})
		t.Cleanup(func() { s.setFault(nil) })
		var n int
		var last error
		for _, err := range c.Events(t.Context(), client.SearchParams{Cursor: "same"}) {
			if err != nil {
				last = err
				continue
			}
			n++
		}
		if n != 1 || last == nil {
			t.Errorf("got %d events and %v, want 1 and a cursor error", n, last)
		}
	})
}

func TestSearchParams(t *testing.T) {
	s := newFakeServer(t)
	var got url.Values
	s.setFault(func(w http.ResponseWriter, r *http.Request, n int) bool {
		got = r.URL.Query()
		writeJSON(w, 200, client.EventPage{})
		return true
	})
	c, _ := newClient(t, s, client.WithTenant("acme"))
	p := client.SearchParams{
		Since: t0, Until: t0.Add(time.Hour), Action: "auth.*", Actor: "alice@example.com", Target: "k1",
		IP: "203.0.113.0/24", Session: "s1", Outcome: "failure", Country: "NL", ASN: 64500, List: "tor",
		UAClass: "scripted", Query: "export & more", Limit: 50, Cursor: "c/1",
	}
	if _, err := c.SearchEvents(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	want := url.Values{
		"since": {"2026-03-01T12:00:00.123456789Z"}, "until": {"2026-03-01T13:00:00.123456789Z"},
		"action": {"auth.*"}, "actor": {"alice@example.com"}, "target": {"k1"}, "ip": {"203.0.113.0/24"},
		"session": {"s1"}, "outcome": {"failure"}, "country": {"NL"}, "asn": {"64500"}, "list": {"tor"},
		"ua_class": {"scripted"}, "q": {"export & more"}, "limit": {"50"}, "cursor": {"c/1"}, "tenant": {"acme"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("query (-want +got):\n%s", diff)
	}
	if _, err := c.ForTenant("").SearchEvents(t.Context(), client.SearchParams{}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("empty params sent %v", got)
	}
}

func TestGetEvent(t *testing.T) {
	s := newFakeServer(t)
	c, _ := newClient(t, s)
	_, err := c.GetEvent(t.Context(), "no/such id")
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || !errors.Is(err, client.ErrNotFound) || apiErr.RequestID == "" || apiErr.StatusCode != 404 {
		t.Fatalf("err = %#v", err)
	}
	if n := s.count("GET /v1/events/{id}"); n != 1 {
		t.Errorf("%d requests for an id with a slash, want 1 (404 is final)", n)
	}
	if _, err := c.GetEvent(t.Context(), ""); !errors.Is(err, client.ErrInvalid) {
		t.Errorf("empty id: err = %v", err)
	}
	ids := seed(t, c, 1)
	e, err := c.GetEvent(t.Context(), ids[0])
	if err != nil || e.ID != ids[0] || e.ReceivedAt.IsZero() {
		t.Fatalf("GetEvent = %+v, %v", e, err)
	}
}
