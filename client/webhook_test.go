package client_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
)

func sign(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

func TestVerifyWebhook(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"delivery_id":"d1","items":[]}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	h := http.Header{}
	h.Set("Vigil-Timestamp", ts)
	h.Set("Vigil-Signature", sign("whsec_new", ts, body)+" "+sign("whsec_old", ts, body))
	for _, secret := range []string{"whsec_new", "whsec_old"} {
		if err := client.VerifyWebhookAt(secret, h, body, 5*time.Minute, now); err != nil {
			t.Errorf("%s: %v", secret, err)
		}
	}
	if err := client.VerifyWebhookAt("whsec_other", h, body, 5*time.Minute, now); !errors.Is(err, client.ErrWebhookSignature) {
		t.Errorf("wrong secret: %v", err)
	}
	// Tampering: the body or the timestamp changed.
	if err := client.VerifyWebhookAt("whsec_new", h, append(body, ' '), 5*time.Minute, now); !errors.Is(err, client.ErrWebhookSignature) {
		t.Errorf("tampered body: %v", err)
	}
	moved := h.Clone()
	moved.Set("Vigil-Timestamp", strconv.FormatInt(now.Unix()+1, 10))
	if err := client.VerifyWebhookAt("whsec_new", moved, body, 5*time.Minute, now); !errors.Is(err, client.ErrWebhookSignature) {
		t.Errorf("tampered timestamp: %v", err)
	}
	// Replay: a correctly signed request from an hour ago.
	if err := client.VerifyWebhookAt("whsec_new", h, body, 5*time.Minute, now.Add(time.Hour)); !errors.Is(err, client.ErrWebhookTimestamp) {
		t.Errorf("replayed request: %v", err)
	}
	if err := client.VerifyWebhookAt("whsec_new", http.Header{}, body, 5*time.Minute, now); !errors.Is(err, client.ErrWebhookTimestamp) {
		t.Errorf("no timestamp: %v", err)
	}
}
