package alert

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/vigilhq/vigil/internal/fsutil"
)

// SecretPrefix starts every webhook signing secret.
const SecretPrefix = "whsec_"

// Keyring derives webhook signing secrets from one server key, so no
// secret is stored: secret = HMAC-SHA256(key, "vigil webhook secret" ‖ id ‖
// generation). Rotating a subscription's secret moves it to the next
// generation.
type Keyring struct {
	key []byte
}

// NewKeyring returns a Keyring for a key of at least 32 bytes.
func NewKeyring(key []byte) (*Keyring, error) {
	if len(key) < 32 {
		return nil, errors.New("alert: the webhook key must be at least 32 bytes")
	}
	return &Keyring{key: append([]byte(nil), key...)}, nil
}

// Secret returns the signing secret of a subscription's generation.
func (k *Keyring) Secret(subscription string, gen int) string {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte("vigil webhook secret\x00" + subscription + "\x00" + strconv.Itoa(gen)))
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// LoadOrCreateKey reads the hex key in path, creating it (0600, 32 random
// bytes) when the file does not exist.
func LoadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		// Written durably: a crash right after creation must not leave an
		// empty file, which would refuse the next start.
		if err := fsutil.WriteNew(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("create webhook key %s: %w", path, err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read webhook key %s: %w", path, err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, fmt.Errorf("webhook key %s is empty (was the machine stopped while it was first written?); restore it from a backup, or delete it to create a new key, after which every webhook's signing secret changes and must be rotated", path)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("webhook key %s: must hold at least 32 bytes in hex", path)
	}
	return key, nil
}

// Sign returns the hex HMAC-SHA256 of timestamp + "." + body under secret.
func Sign(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// SignatureHeader is the Vigil-Signature value: "v1=<hex>" for each secret,
// newest first, separated by spaces.
func SignatureHeader(secrets []string, timestamp string, body []byte) string {
	parts := make([]string, len(secrets))
	for i, s := range secrets {
		parts[i] = "v1=" + Sign(s, timestamp, body)
	}
	return strings.Join(parts, " ")
}

// sealKey is the AES-256 key credentials are sealed with, derived from the
// webhook key (so a backup of the key file opens them, and nothing else).
func (k *Keyring) sealKey() []byte {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte("vigil credential seal\x00v1"))
	return m.Sum(nil)
}

// Seal encrypts a receiver's credential (PagerDuty's routing key) for
// storage with AES-256-GCM; context binds it to one subscription, so a
// sealed value copied onto another subscription does not open.
func (k *Keyring) Seal(plain, context string) (string, error) {
	aead, err := newAEAD(k.sealKey())
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := aead.Seal(nonce, nonce, []byte(plain), []byte(context))
	return "v1." + base64.RawURLEncoding.EncodeToString(out), nil
}

// Open decrypts what Seal produced for the same context.
func (k *Keyring) Open(sealed, context string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, "v1.")
	if !ok {
		return "", errors.New("alert: sealed credential has an unknown version")
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return "", errors.New("alert: sealed credential is not base64")
	}
	aead, err := newAEAD(k.sealKey())
	if err != nil {
		return "", err
	}
	if len(b) < aead.NonceSize() {
		return "", errors.New("alert: sealed credential is too short")
	}
	plain, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(context))
	if err != nil {
		return "", errors.New("alert: sealed credential does not open with this server's webhook key")
	}
	return string(plain), nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
