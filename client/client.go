package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Default retry policy and HTTP timeout; see WithRetry and WithHTTPClient.
const (
	DefaultMaxAttempts = 5
	DefaultBaseDelay   = 200 * time.Millisecond
	DefaultMaxDelay    = 30 * time.Second
	DefaultHTTPTimeout = 30 * time.Second
)

// Client talks to a Vigil server's HTTP API v1. It is safe for concurrent use
// and holds no goroutines of its own, so it needs no Close.
type Client struct {
	base      *url.URL
	http      *http.Client
	apiKey    string
	userAgent string
	tenant    string
	log       *slog.Logger

	maxAttempts         int
	baseDelay, maxDelay time.Duration
	sleep               func(ctx context.Context, d time.Duration) error
	jitter              func(n int64) int64
	now                 func() time.Time

	ids *idGenerator
}

// New returns a client for the server at baseURL, e.g.
// "https://vigil.example.com" or "http://127.0.0.1:8080/vigil" (a path
// prefix is kept). It fails on a malformed URL or an invalid option.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("vigil: base url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("vigil: base url %q: want http(s)://host[:port][/prefix]", u.Redacted())
	}
	if u.User != nil {
		return nil, errors.New("vigil: base url must not carry credentials; use WithAPIKey")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("vigil: base url %q must not have a query or fragment", u.Redacted())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	c := &Client{
		base:        u,
		http:        &http.Client{Timeout: DefaultHTTPTimeout},
		userAgent:   "vigil-go",
		log:         slog.New(slog.DiscardHandler),
		maxAttempts: DefaultMaxAttempts,
		baseDelay:   DefaultBaseDelay,
		maxDelay:    DefaultMaxDelay,
		sleep:       sleepCtx,
		jitter:      rand.Int64N,
		now:         time.Now,
		ids:         &idGenerator{},
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// ForTenant returns a copy of c scoped to tenant (see WithTenant). The copy
// shares c's HTTP client, key and id generator; it is cheap, so an operator
// tool may make one per request.
func (c *Client) ForTenant(tenant string) *Client {
	cp := *c
	cp.tenant = tenant
	return &cp
}

// Tenant returns the tenant the client is scoped to, "" when none.
func (c *Client) Tenant() string { return c.tenant }

// NewID returns a fresh event id: a 26-character ULID, sortable by creation
// time and unique. Send and Batcher.Add assign one to events without an id;
// call NewID yourself when you want to know an event's id before sending it
// or to retry a failed Send without risking a duplicate.
func (c *Client) NewID() string { return c.ids.newID(c.now()) }

// Health checks the server's liveness probe (GET /healthz, no auth). It
// returns nil when the server answers 200.
func (c *Client) Health(ctx context.Context) error {
	_, err := c.do(ctx, call{method: http.MethodGet, path: "/healthz", noAuth: true, idempotent: true})
	return err
}

// Ready checks the server's readiness probe (GET /readyz, no auth): nil when
// the server can take traffic, an ErrUnavailable *Error when it cannot.
// Ready does not retry, so a probe sees the state of the moment.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.do(ctx, call{method: http.MethodGet, path: "/readyz", noAuth: true, noRetry: true})
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
