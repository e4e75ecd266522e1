package audit

import (
	"context"
	"time"
)

// Tamper evidence (internal/integrity computes; stores only keep).
//
// Each tenant's events form one hash chain per UTC day of event time:
// h_0 is fixed, h_n = SHA-256(h_{n-1} || leaf_n), in the order the events
// were stored. Signed statements (checkpoints, tombstones, erasure records)
// make the heads verifiable with a published Ed25519 public key.

// ChainEntry is one event's link in its (Tenant, Day) chain.
type ChainEntry struct {
	Tenant string
	// Day is the UTC day of the event's time, "2006-01-02".
	Day string
	// Seq is the 1-based position in the day's chain.
	Seq     int64
	EventID string
	// Leaf is the SHA-256 of the event's canonical encoding; Hash is h_Seq.
	Leaf, Hash []byte
}

// ChainHead is the end of one (Tenant, Day) chain: Count links, the last
// hash Head. A day with no links has Count 0 and a nil Head.
type ChainHead struct {
	Tenant string `json:"tenant"`
	Day    string `json:"day"`
	Count  int64  `json:"count"`
	Head   []byte `json:"head"`
}

// Kinds of signed statements.
const (
	// StatementCheckpoint signs a day's chain head.
	StatementCheckpoint = "checkpoint"
	// StatementTombstone signs the head of the chain links a purge
	// deleted: the day's chain goes on from it.
	StatementTombstone = "tombstone"
	// StatementErasure signs the original hashes of erased field values.
	StatementErasure = "erasure"
)

// Statement is a signed integrity statement as stored: Body is the exact
// signed bytes (canonical JSON made by internal/integrity), Signature the
// Ed25519 signature over them by the key KeyID. Tenant, Day, Kind, Count
// and ID repeat what Body says, for lookups; the verifier trusts only Body.
type Statement struct {
	Tenant string
	Kind   string
	// Day is set for checkpoints and tombstones; ID for erasures.
	Day       string
	ID        string
	Count     int64
	KeyID     string
	Body      []byte
	Signature []byte
	At        time.Time
}

// ErasedField is the original hash of one erased field value of an event,
// kept so the event's leaf can still be recomputed. Erasure names the
// erasure statement that signs it.
type ErasedField struct {
	Tenant  string
	Day     string
	EventID string
	Field   string
	Hash    []byte
	Erasure string
}

// IntegrityStore keeps hash chains and signed statements.
//
// Contract:
//   - AppendChain stores entries atomically: all or none. Entries of one
//     (Tenant, Day) must continue its head (Seq = head count + 1, in
//     order); the caller computes them, the store only checks that no
//     (Tenant, Day, Seq) and no (Tenant, EventID) repeats (ECONFLICT) and
//     keeps each day's head (ChainHead) in the same transaction.
//   - Chained returns which of ids already have an entry in tenant.
//   - ChainEntries returns a day's entries with Seq > after, ascending, at
//     most limit (capped at 10,000).
//   - ChainDays returns the days of tenant, ascending, that have a head, a
//     checkpoint or a tombstone, within [from, to] (inclusive, "" means
//     unbounded); ChainTenants the tenants that have any.
//   - TrimChain deletes a day's entries with Seq <= through, keeping its
//     head: a purge, after the tombstone is stored.
//   - PutStatement replaces the checkpoint or tombstone of (Tenant, Day,
//     Kind), or stores an erasure statement under (Tenant, ID); Statement
//     returns it (ENOTFOUND when none).
//   - Unsigned returns the heads whose Count is beyond their latest
//     checkpoint's, at most limit.
//   - PutErasure stores the erasure statement and its fields in one
//     transaction; ErasedFields returns a day's erased fields.
//   - An empty tenant is EINVALID. Safe for concurrent use.
type IntegrityStore interface {
	AppendChain(ctx context.Context, entries []ChainEntry) error
	ChainHead(ctx context.Context, tenant, day string) (ChainHead, error)
	Chained(ctx context.Context, tenant string, ids []string) (map[string]bool, error)
	ChainEntries(ctx context.Context, tenant, day string, after int64, limit int) ([]ChainEntry, error)
	ChainDays(ctx context.Context, tenant, from, to string) ([]string, error)
	ChainTenants(ctx context.Context) ([]string, error)
	TrimChain(ctx context.Context, tenant, day string, through int64) error
	PutStatement(ctx context.Context, s Statement) error
	Statement(ctx context.Context, tenant, kind, dayOrID string) (*Statement, error)
	Unsigned(ctx context.Context, limit int) ([]ChainHead, error)
	PutErasure(ctx context.Context, s Statement, fields []ErasedField) error
	ErasedFields(ctx context.Context, tenant, day string) ([]ErasedField, error)
}

// EventRewriter is an optional capability of event stores, used only by
// erasure: ReplaceEvents overwrites stored events (matched on Tenant, ID
// and Time) with the given values and returns how many it found; events
// not stored are skipped. Search indexes follow the new values.
type EventRewriter interface {
	ReplaceEvents(ctx context.Context, events []Event) (int, error)
}

// IntegrityReport is the result of verifying chains.
type IntegrityReport struct {
	OK bool `json:"ok"`
	// Days, Events, Tombstones and Erasures count what was checked.
	Days       int   `json:"days"`
	Events     int64 `json:"events"`
	Tombstones int   `json:"tombstones"`
	Erasures   int   `json:"erasures"`
	// Unsigned lists chains with links after their latest checkpoint:
	// reported, not a failure (the next checkpoint signs them).
	Unsigned []ChainTail `json:"unsigned,omitempty"`
	// Broken is the first broken link found, nil when none.
	Broken *ChainBreak `json:"broken,omitempty"`
}

// ChainTail is a chain's unsigned end: Links links, Signed of them covered
// by its latest checkpoint.
type ChainTail struct {
	Tenant string `json:"tenant"`
	Day    string `json:"day"`
	Signed int64  `json:"signed"`
	Links  int64  `json:"links"`
}

// ChainBreak is a broken link: where, and why (Reason is one of the
// reasons internal/integrity documents).
type ChainBreak struct {
	Tenant  string `json:"tenant"`
	Day     string `json:"day,omitempty"`
	Seq     int64  `json:"seq,omitempty"`
	EventID string `json:"event_id,omitempty"`
	Reason  string `json:"reason"`
	Detail  string `json:"detail"`
}

// PublicKey is a published statement-signing key.
type PublicKey struct {
	ID string `json:"id"`
	// Key is the raw Ed25519 public key, base64 (standard encoding).
	Key string `json:"key"`
	// Current says this key signs new statements; the others only verify
	// what they signed before a rotation.
	Current bool `json:"current"`
}

// SignedStatement is a statement as published: the exact signed text and
// its Ed25519 signature (base64).
type SignedStatement struct {
	Statement string `json:"statement"`
	Signature string `json:"signature"`
}

// DayProof is what a customer needs, besides the events of one tenant-day
// and a public key, to recompute and check the day's signed head: the
// chain order, the signed checkpoint (and tombstone, when part of the day
// was purged), and the original hashes of erased values with the
// records that sign them.
type DayProof struct {
	Tenant     string            `json:"tenant"`
	Day        string            `json:"day"`
	Checkpoint *SignedStatement  `json:"checkpoint,omitempty"`
	Tombstone  *SignedStatement  `json:"tombstone,omitempty"`
	Erasures   []SignedStatement `json:"erasures,omitempty"`
	// Events lists the day's event ids in chain order (after the
	// tombstone's links).
	Events []string `json:"events"`
	// Erased lists "event_id field hash-hex erasure" for erased values.
	Erased []string `json:"erased,omitempty"`
}

// ErasureRequest asks to redact Fields (names of internal/integrity's
// erasable fields, "context.ip", "actor.email"…) in every stored event of
// one actor of Tenant.
type ErasureRequest struct {
	Tenant string   `json:"tenant"`
	Actor  string   `json:"actor"`
	Fields []string `json:"fields"`
}

// ErasureReport is what an erasure did.
type ErasureReport struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	// Events is how many of the actor's events had a value erased; Values
	// how many field values were erased in all.
	Events int      `json:"events"`
	Values int      `json:"values"`
	Fields []string `json:"fields"`
}

// ActionErasureCompleted is written by Vigil in the tenant's own log when
// an erasure redacted an actor's events.
const ActionErasureCompleted = "vigil.erasure.completed"
