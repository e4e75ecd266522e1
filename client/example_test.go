package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/vigilhq/vigil/client"
)

// The examples run against a stand-in for a Vigil server; in your code the
// URL is your server's, e.g. "https://vigil.example.com", and the key comes
// from your secret store.

// Send a login event synchronously, e.g. from the login handler.
func Example() {
	srv := startFake()
	defer srv.Close()

	c, err := client.New(srv.URL, client.WithAPIKey("vgl_k1_s3cretvalue"))
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Send(context.Background(), client.Event{
		Time:   time.Now(),
		Action: client.ActionLoginSuccess,
		Actor:  client.Actor{ID: "user_42", Email: "alice@example.com"},
		Context: client.Context{
			IP:         "203.0.113.7",
			UserAgent:  "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
			AuthMethod: "password",
			SessionID:  "sess_9f2",
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("accepted:", res.Accepted)
	// Output: accepted: 1
}

// One bad event does not sink the batch: each event has its own result.
func ExampleClient_Send() {
	srv := startFake()
	defer srv.Close()
	c, _ := client.New(srv.URL, client.WithAPIKey("vgl_k1_s3cretvalue"))

	res, err := c.Send(context.Background(),
		client.Event{Action: client.ActionPasswordChanged, Actor: client.Actor{ID: "user_42"}},
		client.Event{Action: client.ActionPasswordChanged}, // no actor.id
	)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range res.Results {
		if r.Status == client.StatusRejected {
			fmt.Printf("event %d rejected: %s (field %s)\n", r.Index, r.Error.Message, r.Error.Field)
			continue
		}
		fmt.Printf("event %d %s\n", r.Index, r.Status)
	}
	// Output:
	// event 0 accepted
	// event 1 rejected: actor.id is required for auth.password.changed (field actor.id)
}

// Send in the background: Add returns at once, Close delivers the rest.
func ExampleBatcher() {
	srv := startFake()
	defer srv.Close()
	c, _ := client.New(srv.URL, client.WithAPIKey("vgl_k1_s3cretvalue"))

	var accepted atomic.Int64
	b, err := client.NewBatcher(c, client.BatcherOptions{
		MaxBatch:      500,
		FlushInterval: time.Second,
		OnResult: func(events []client.Event, res *client.IngestResult) {
			accepted.Add(int64(res.Accepted + res.Duplicates))
			for _, r := range res.Results {
				if r.Status == client.StatusRejected {
					log.Printf("event %s rejected: %s", events[r.Index].ID, r.Error.Message)
				}
			}
		},
		OnError: func(events []client.Event, err error) {
			log.Printf("%d events not delivered: %v", len(events), err)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for _, user := range []string{"alice", "bob", "carol"} {
		err := b.Add(ctx, client.Event{
			Action:  client.ActionLoginFailure,
			Reason:  "invalid_password",
			Actor:   client.Actor{ID: user},
			Context: client.Context{IP: "203.0.113.7"},
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	// On shutdown: deliver what is buffered, within a deadline.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("delivered:", accepted.Load())
	// Output: delivered: 3
}

// Iterate over every matching event; pages are fetched as needed.
func ExampleClient_Events() {
	srv := startFake()
	defer srv.Close()
	c, _ := client.New(srv.URL, client.WithAPIKey("vgl_k1_s3cretvalue"))
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, user := range []string{"alice", "bob", "carol"} {
		_, _ = c.Send(ctx, client.Event{Time: start.Add(time.Duration(i) * time.Minute), Action: client.ActionLoginFailure,
			Reason: "unknown_user", Actor: client.Actor{ID: user}, Context: client.Context{IP: "203.0.113.7"}})
	}

	for e, err := range c.Events(ctx, client.SearchParams{Action: "auth.login.*", Limit: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Time.Format(time.TimeOnly), e.Action, e.Actor.ID)
	}
	// Output:
	// 12:02:00 auth.login.failure carol
	// 12:01:00 auth.login.failure bob
	// 12:00:00 auth.login.failure alice
}

// Branch on the kind of error with errors.Is; errors.As gives the details.
func ExampleError() {
	srv := startFake()
	defer srv.Close()
	c, _ := client.New(srv.URL, client.WithAPIKey("vgl_k1_s3cretvalue"))

	_, err := c.GetEvent(context.Background(), "01JNOSUCHEVENT")
	if errors.Is(err, client.ErrNotFound) {
		fmt.Println("no such event")
	}
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.Code, apiErr.RequestID != "")
	}
	// Output:
	// no such event
	// 404 not_found true
}

// Operators act on every tenant and must name the one they mean.
func ExampleClient_ForTenant() {
	srv := startFake()
	defer srv.Close()
	op, _ := client.New(srv.URL, client.WithAPIKey("vgl_k1_s3cretvalue"))
	ctx := context.Background()

	if _, err := op.CreateTenant(ctx, client.CreateTenantRequest{ID: "globex", Name: "Globex"}); err != nil {
		log.Fatal(err)
	}
	globex := op.ForTenant("globex")
	k, err := globex.CreateKey(ctx, client.CreateKeyRequest{Name: "ingest", Scopes: []string{client.ScopeEventsWrite}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(k.Key.Tenant, k.Key.Scopes, k.Secret) // the secret prints redacted
	// Output: globex [events:write] [REDACTED]
}
