// Package client is the Go SDK for Vigil's HTTP API v1: sending audit
// events (synchronously with Client.Send, or in the background with a
// Batcher), searching events and findings, and administering tenants and
// API keys. It uses only the standard library.
//
// # Sending events
//
// Create one Client per server and share it; it is safe for concurrent use:
//
//	c, err := client.New("https://vigil.example.com", client.WithAPIKey(key))
//
// Client.Send posts a batch and returns once the server has made the
// accepted events durable, with one result per event: a rejected event (a
// missing actor.id, say) does not sink the others. Every event without an
// ID gets a ULID before the first attempt, so retries — automatic or your
// own with the same events — are answered as duplicates, never stored twice.
//
// A Batcher sends in the background: Add buffers (bounded; it blocks, or
// fails with ErrBufferFull, when full), batches go out when full or after
// FlushInterval, Flush and Close wait for delivery. Nothing is dropped
// silently: rejected or undelivered events reach the OnResult and OnError
// callbacks and the error of the next Flush or Close.
//
// # Retries
//
// Requests are retried on 429 and 503 (always), on other 5xx and network
// failures (only where repeating cannot do harm: reads, ingestion with ids,
// revocations, finding updates), with exponential backoff and full jitter,
// honouring Retry-After, for at most the attempts set with WithRetry and
// never past the context's deadline.
//
// # Errors
//
// An error answer is an *Error carrying the status, the API code, the
// server's message, the offending field and the request id. It matches the
// sentinel of its code with errors.Is:
//
//	if errors.Is(err, client.ErrNotFound) { … }
//
// The API key never appears in errors or logs.
//
// # Searching
//
// SearchEvents returns one page; Events iterates over every match,
// following cursors:
//
//	for e, err := range c.Events(ctx, client.SearchParams{Action: "auth.login.*"}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(e.Time, e.Actor.ID, e.Context.IP)
//	}
package client
