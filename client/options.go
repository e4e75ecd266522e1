package client

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// Option configures a Client. Options are applied in order by New; a later
// option overrides an earlier one.
type Option func(*Client) error

// WithAPIKey sets the API key sent as "Authorization: Bearer <key>" on every
// request except the health probes. Keys look like vgl_<keyid>_<secret>. The
// key never appears in errors or logs.
func WithAPIKey(key string) Option {
	return func(c *Client) error {
		for i := 0; i < len(key); i++ {
			if key[i] <= ' ' || key[i] == 0x7f {
				return errors.New("vigil: api key contains whitespace or control characters")
			}
		}
		c.apiKey = key
		return nil
	}
}

// WithHTTPClient sets the HTTP client used for requests. Its Timeout bounds
// one attempt, not the whole call with retries: use the context for that.
// The default is a fresh http.Client with a 30 second timeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("vigil: http client is nil")
		}
		c.http = hc
		return nil
	}
}

// WithUserAgent sets the User-Agent header. The default is "vigil-go".
func WithUserAgent(ua string) Option {
	return func(c *Client) error {
		c.userAgent = ua
		return nil
	}
}

// WithRetry sets the retry policy: at most maxAttempts attempts per call
// (1 disables retries), waiting between attempts a random duration in
// [0, min(maxDelay, baseDelay·2^(attempt-1))) ("full jitter"), or exactly
// the server's Retry-After when it sends one. maxDelay also caps every
// single wait: when the server asks for a longer Retry-After, the call
// stops retrying and returns the *Error, whose RetryAfter says how long the
// server asked for. The defaults are 5 attempts, 200ms and 30s.
func WithRetry(maxAttempts int, baseDelay, maxDelay time.Duration) Option {
	return func(c *Client) error {
		switch {
		case maxAttempts < 1:
			return errors.New("vigil: retry max attempts must be at least 1")
		case baseDelay <= 0 || maxDelay <= 0:
			return errors.New("vigil: retry delays must be positive")
		case baseDelay > maxDelay:
			return errors.New("vigil: retry base delay exceeds max delay")
		}
		c.maxAttempts, c.baseDelay, c.maxDelay = maxAttempts, baseDelay, maxDelay
		return nil
	}
}

// WithLogger sets a logger for retries and batcher failures (Warn) and
// per-request detail (Debug). Nil, the default, discards. API keys, key
// secrets and event payloads are never logged.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) error {
		if l != nil {
			c.log = l
		}
		return nil
	}
}

// WithTenant scopes the client to one tenant, which operator keys need:
// events without a tenant get this one on Send and Batcher.Add, and reads
// (searches, GetEvent, keys, findings) pass it as ?tenant=. Tenant keys
// imply their tenant and need not set it. See also Client.ForTenant.
func WithTenant(tenant string) Option {
	return func(c *Client) error {
		c.tenant = tenant
		return nil
	}
}

// withSleep replaces the wait between attempts (tests).
func withSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(c *Client) error {
		c.sleep = sleep
		return nil
	}
}

// withJitter replaces the random draw in [0, n) used for backoff (tests).
func withJitter(f func(n int64) int64) Option {
	return func(c *Client) error {
		c.jitter = f
		return nil
	}
}
