package integrity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// Format names the statement format.
const Format = "vigil-integrity/1"

// MaxStatementBytes caps a statement body a decoder accepts.
const MaxStatementBytes = 4096

// Body is what a signed statement says. Its JSON (fields in this order, no
// extra space) is the exact text that is signed and stored.
//
//   - checkpoint: the (Tenant, Day) chain had Count links, the last hash
//     Head, at Time.
//   - tombstone: the first Count links of the day, ending in Head, were
//     purged at Time; the chain goes on from Head.
//   - erasure: for erasure Erasure, Count erased field values of the
//     tenant's events dated Day had the hashes whose list (one
//     "event_id field hash-hex" line each, sorted) hashes to Fields.
type Body struct {
	Format  string    `json:"format"`
	Kind    string    `json:"kind"`
	Tenant  string    `json:"tenant"`
	Day     string    `json:"day"`
	Count   int64     `json:"count"`
	Head    string    `json:"head,omitempty"`
	Erasure string    `json:"erasure,omitempty"`
	Fields  string    `json:"fields_sha256,omitempty"`
	Time    time.Time `json:"time"`
	KeyID   string    `json:"key_id"`
}

var (
	dayRe  = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	hashRe = regexp.MustCompile(`^[0-9a-f]{64}$`)
	keyRe  = regexp.MustCompile(`^[0-9a-f]{16}$`)
)

// ParseBody decodes and checks a statement body. Errors name the field.
func ParseBody(b []byte) (*Body, error) {
	if len(b) > MaxStatementBytes {
		return nil, &audit.Error{Code: audit.EINVALID, Field: "statement", Message: fmt.Sprintf("statement is longer than %d bytes", MaxStatementBytes)}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s Body
	if err := dec.Decode(&s); err != nil {
		return nil, &audit.Error{Code: audit.EINVALID, Field: "statement", Message: "statement is not a statement object: " + err.Error(), Err: err}
	}
	if dec.More() {
		return nil, audit.FieldErrorf("statement", "statement has trailing data")
	}
	bad := func(field, msg string) error { return audit.FieldErrorf(field, "statement %s %s", field, msg) }
	switch {
	case s.Format != Format:
		return nil, bad("format", "must be "+Format)
	case s.Kind != audit.StatementCheckpoint && s.Kind != audit.StatementTombstone && s.Kind != audit.StatementErasure:
		return nil, bad("kind", "must be checkpoint, tombstone or erasure")
	case !audit.ValidTenantID(s.Tenant):
		return nil, bad("tenant", "is not a tenant id")
	case !validDay(s.Day):
		return nil, bad("day", "must be a date YYYY-MM-DD")
	case s.Count < 0:
		return nil, bad("count", "must not be negative")
	case s.Kind != audit.StatementErasure && s.Count > 0 && !hashRe.MatchString(s.Head):
		return nil, bad("head", "must be 64 lowercase hex digits")
	case s.Kind == audit.StatementErasure && (s.Erasure == "" || len(s.Erasure) > 64 || !hashRe.MatchString(s.Fields)):
		return nil, bad("erasure", "needs an erasure id and fields_sha256")
	case !keyRe.MatchString(s.KeyID):
		return nil, bad("key_id", "must be 16 lowercase hex digits")
	}
	return &s, nil
}

func validDay(d string) bool {
	if !dayRe.MatchString(d) {
		return false
	}
	_, err := time.Parse(DayLayout, d)
	return err == nil
}

// Marshal returns the canonical body text.
func (s *Body) Marshal() []byte {
	b, _ := json.Marshal(s) // a struct of strings, ints and a time: cannot fail
	return b
}

// HeadBytes returns Head decoded (nil when empty).
func (s *Body) HeadBytes() []byte {
	b, _ := hex.DecodeString(s.Head)
	return b
}

// KeyID is the id of a public key: the first 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// Signer signs statements with one Ed25519 private key.
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// NewSigner returns a signer for key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, id: KeyID(key.Public().(ed25519.PublicKey))}
}

// KeyID is the id of the signer's public key.
func (s *Signer) KeyID() string { return s.id }

// Public is the signer's public key.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Sign completes b (format, key id) and returns it as a stored statement.
func (s *Signer) Sign(b Body) audit.Statement {
	b.Format, b.KeyID = Format, s.id
	b.Time = b.Time.UTC()
	body := b.Marshal()
	st := audit.Statement{Tenant: b.Tenant, Kind: b.Kind, Day: b.Day, Count: b.Count, KeyID: s.id,
		Body: body, Signature: ed25519.Sign(s.key, body), At: b.Time}
	if b.Kind == audit.StatementErasure {
		st.ID = b.Erasure + "/" + b.Day
	}
	return st
}

// Keyring holds the public keys statements may be signed with, by id.
type Keyring map[string]ed25519.PublicKey

// Open checks a statement's signature with the key it names and returns
// its body. The error says what is wrong (unknown key, bad signature,
// malformed body).
func (k Keyring) Open(body, sig []byte) (*Body, error) {
	b, err := ParseBody(body)
	if err != nil {
		return nil, err
	}
	pub, ok := k[b.KeyID]
	if !ok {
		return nil, fmt.Errorf("signed by unknown key %s", b.KeyID)
	}
	if !ed25519.Verify(pub, body, sig) {
		return nil, fmt.Errorf("signature does not verify with key %s", b.KeyID)
	}
	return b, nil
}

// FieldsDigest is the hash an erasure statement signs over its fields:
// SHA-256 of "event_id field hash-hex\n" lines, sorted.
func FieldsDigest(fields []audit.ErasedField) string {
	lines := make([]string, len(fields))
	for i, f := range fields {
		lines[i] = f.EventID + " " + f.Field + " " + hex.EncodeToString(f.Hash) + "\n"
	}
	slices.Sort(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
	}
	return hex.EncodeToString(h.Sum(nil))
}
