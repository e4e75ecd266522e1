package client

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Webhook is a subscription to lifecycle changes of findings and incidents.
// Tenant is "" for an installation-wide webhook.
type Webhook struct {
	ID          string   `json:"id"`
	Tenant      string   `json:"tenant,omitempty"`
	Name        string   `json:"name,omitempty"`
	URL         string   `json:"url"`
	Format      string   `json:"format"`
	Rules       []string `json:"rules,omitempty"`
	Families    []string `json:"families,omitempty"`
	MinSeverity string   `json:"min_severity,omitempty"`
	Changes     []string `json:"changes"`
	Kinds       []string `json:"kinds"`
	Disabled    bool     `json:"disabled,omitempty"`
	// HasCredential: a receiver credential (PagerDuty's routing key) is
	// set; it is never shown.
	HasCredential      bool       `json:"has_credential,omitempty"`
	SecretGeneration   int        `json:"secret_generation"`
	PreviousGeneration int        `json:"previous_generation,omitempty"`
	PreviousValidUntil *time.Time `json:"previous_valid_until,omitempty"`
	CreatedAt          time.Time  `json:"created_at"`
	UpdatedAt          time.Time  `json:"updated_at"`
}

// WebhookRequest is the body of CreateWebhook and UpdateWebhook; nil
// fields keep their value (update) or default (create).
type WebhookRequest struct {
	Tenant      string    `json:"tenant,omitempty"`
	Name        *string   `json:"name,omitempty"`
	URL         *string   `json:"url,omitempty"`
	Format      *string   `json:"format,omitempty"`
	Rules       *[]string `json:"rules,omitempty"`
	Families    *[]string `json:"families,omitempty"`
	MinSeverity *string   `json:"min_severity,omitempty"`
	Changes     *[]string `json:"changes,omitempty"`
	Kinds       *[]string `json:"kinds,omitempty"`
	Disabled    *bool     `json:"disabled,omitempty"`
	// RoutingKey is the integration key of a "pagerduty" webhook (its URL
	// defaults to PagerDuty's Events API v2 and its min_severity to high).
	RoutingKey *string `json:"routing_key,omitempty"`
}

// WebhookWithSecret is a webhook with its signing secret, which the server
// shows only when it is made or rotated.
type WebhookWithSecret struct {
	Webhook Webhook `json:"webhook"`
	Secret  string  `json:"secret"`
}

// Delivery is one request to a webhook's receiver. ID is sent as the
// Vigil-Delivery header on every attempt.
type Delivery struct {
	ID             string     `json:"id"`
	SubscriptionID string     `json:"subscription_id"`
	Tenant         string     `json:"tenant,omitempty"`
	Status         string     `json:"status"`
	Items          int        `json:"items"`
	Attempts       int        `json:"attempts"`
	CreatedAt      time.Time  `json:"created_at"`
	RetryFrom      time.Time  `json:"retry_from,omitzero"`
	NextAttemptAt  time.Time  `json:"next_attempt_at,omitzero"`
	DeliveredAt    *time.Time `json:"delivered_at,omitempty"`
	LastStatus     int        `json:"last_status,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
}

// CreateWebhook makes a webhook (scope admin) and returns its secret.
func (c *Client) CreateWebhook(ctx context.Context, r WebhookRequest) (*WebhookWithSecret, error) {
	var out WebhookWithSecret
	if err := c.sendJSON(ctx, call{method: http.MethodPost, path: "/v1/webhooks"}, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Webhooks lists webhooks: a tenant key's own; an operator's of tenant, or
// every webhook when tenant is "".
func (c *Client) Webhooks(ctx context.Context, tenant string) ([]Webhook, error) {
	q := url.Values{}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	var out struct {
		Webhooks []Webhook `json:"webhooks"`
	}
	if err := c.getJSON(ctx, "/v1/webhooks", q, &out); err != nil {
		return nil, err
	}
	return out.Webhooks, nil
}

// RotateWebhookSecret gives a webhook a new secret; the previous one stays
// valid for overlap (the server's default when negative).
func (c *Client) RotateWebhookSecret(ctx context.Context, id string, overlap time.Duration) (*WebhookWithSecret, error) {
	body := map[string]string{}
	if overlap >= 0 {
		body["overlap"] = overlap.String()
	}
	var out WebhookWithSecret
	if err := c.sendJSON(ctx, call{method: http.MethodPost, path: "/v1/webhooks/" + url.PathEscape(id) + "/rotate-secret"}, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Deliveries lists a webhook's deliveries, newest first; status "dead"
// lists its dead letters ("" any status).
func (c *Client) Deliveries(ctx context.Context, webhook, status string, limit int) ([]Delivery, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Deliveries []Delivery `json:"deliveries"`
	}
	if err := c.getJSON(ctx, "/v1/webhooks/"+url.PathEscape(webhook)+"/deliveries", q, &out); err != nil {
		return nil, err
	}
	return out.Deliveries, nil
}

// ReplayDelivery sends a dead delivery again, with the same id and body.
func (c *Client) ReplayDelivery(ctx context.Context, id string) (*Delivery, error) {
	var out struct {
		Delivery Delivery `json:"delivery"`
	}
	if err := c.sendJSON(ctx, call{method: http.MethodPost, path: "/v1/deliveries/" + url.PathEscape(id) + "/replay"}, struct{}{}, &out); err != nil {
		return nil, err
	}
	return &out.Delivery, nil
}

// Errors of VerifyWebhook.
var (
	// ErrWebhookSignature: no signature of the request matches the secret
	// (a forged or altered request, or the wrong secret).
	ErrWebhookSignature = errors.New("webhook signature does not match")
	// ErrWebhookTimestamp: the request's timestamp is missing or further
	// from now than the tolerance (a replayed request).
	ErrWebhookTimestamp = errors.New("webhook timestamp is missing or outside the tolerance")
)

// VerifyWebhook checks a webhook request from Vigil: its Vigil-Timestamp
// is within tolerance of now, and one of its Vigil-Signature values is the
// HMAC-SHA256 of timestamp + "." + body under secret. During a secret
// rotation the request carries two signatures; either verifies. Pass the
// raw body, before any JSON decoding. Deduplicate verified requests on the
// Vigil-Delivery header: a retry carries the same id.
func VerifyWebhook(secret string, header http.Header, body []byte, tolerance time.Duration) error {
	return VerifyWebhookAt(secret, header, body, tolerance, time.Now())
}

// VerifyWebhookAt is VerifyWebhook at a given time.
func VerifyWebhookAt(secret string, header http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	ts := header.Get("Vigil-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrWebhookTimestamp, ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %s ago", ErrWebhookTimestamp, d.Round(time.Second))
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	want := m.Sum(nil)
	for _, part := range strings.Fields(header.Get("Vigil-Signature")) {
		v, ok := strings.CutPrefix(part, "v1=")
		if !ok {
			continue
		}
		got, err := hex.DecodeString(v)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrWebhookSignature
}
