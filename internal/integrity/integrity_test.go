package integrity_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/integrity"
)

func sample() audit.Event {
	lat := 48.85
	return audit.Event{ID: "e1", Tenant: "acme", Time: time.Date(2026, 11, 30, 10, 0, 0, 123, time.UTC),
		ReceivedAt: time.Date(2026, 11, 30, 10, 0, 1, 0, time.UTC), Action: "auth.login.success", Outcome: audit.OutcomeSuccess, Reason: "r",
		Actor:      audit.Actor{ID: "alice", Type: "user", Email: "a@example.com", Name: "Alice"},
		Target:     audit.Target{Type: "doc", ID: "d1", Name: "Doc"},
		Context:    audit.Context{IP: netip.MustParseAddr("198.51.100.7"), UserAgent: "ua", SessionID: "s", RequestID: "rq", AuthMethod: "password", DeviceID: "dev", Geo: &audit.ClientGeo{Country: "FR", Latitude: &lat}},
		Metadata:   map[string]any{"k": "v", "n": 1.0},
		Enrichment: audit.Enrichment{Network: &audit.Network{ASN: 64500}},
		Risk:       &audit.Risk{Score: 10}}
}

// TestLeafCoversEveryField: changing any field, the tenant, the id or the
// time changes the leaf; every field of Fields has a case.
func TestLeafCoversEveryField(t *testing.T) {
	base := integrity.Leaf(ptr(sample()), nil)
	cases := map[string]func(e *audit.Event){
		"tenant": func(e *audit.Event) { e.Tenant = "other" }, "id": func(e *audit.Event) { e.ID = "e2" },
		"time":   func(e *audit.Event) { e.Time = e.Time.Add(1) },
		"action": func(e *audit.Event) { e.Action = "x" }, "outcome": func(e *audit.Event) { e.Outcome = "failure" },
		"reason": func(e *audit.Event) { e.Reason = "" }, "actor.id": func(e *audit.Event) { e.Actor.ID = "bob" },
		"actor.type": func(e *audit.Event) { e.Actor.Type = "service" }, "actor.email": func(e *audit.Event) { e.Actor.Email = "" },
		"actor.name": func(e *audit.Event) { e.Actor.Name = "A" }, "target.type": func(e *audit.Event) { e.Target.Type = "" },
		"target.id": func(e *audit.Event) { e.Target.ID = "d2" }, "target.name": func(e *audit.Event) { e.Target.Name = "x" },
		"context.ip":          func(e *audit.Event) { e.Context.IP = netip.MustParseAddr("198.51.100.8") },
		"context.user_agent":  func(e *audit.Event) { e.Context.UserAgent = "ua2" },
		"context.session_id":  func(e *audit.Event) { e.Context.SessionID = "s2" },
		"context.request_id":  func(e *audit.Event) { e.Context.RequestID = "" },
		"context.auth_method": func(e *audit.Event) { e.Context.AuthMethod = "sso" },
		"context.device_id":   func(e *audit.Event) { e.Context.DeviceID = "d" },
		"context.geo":         func(e *audit.Event) { e.Context.Geo.Country = "DE" },
		"metadata":            func(e *audit.Event) { e.Metadata["n"] = 2.0 },
		"enrichment":          func(e *audit.Event) { e.Enrichment.Network.ASN = 1 },
		"risk":                func(e *audit.Event) { e.Risk.Score = 90 },
		"received_at":         func(e *audit.Event) { e.ReceivedAt = e.ReceivedAt.Add(1) },
	}
	for _, f := range integrity.Fields {
		if cases[f] == nil {
			t.Errorf("field %s has no case", f)
		}
	}
	for name, mut := range cases {
		ev := sample()
		mut(&ev)
		if bytes.Equal(integrity.Leaf(&ev, nil), base) {
			t.Errorf("changing %s kept the leaf", name)
		}
	}
	// Moving a value from one field to another changes it too (length prefixes).
	a, b := sample(), sample()
	a.Actor.Email, a.Actor.Name = "ab", "c"
	b.Actor.Email, b.Actor.Name = "a", "bc"
	if bytes.Equal(integrity.Leaf(&a, nil), integrity.Leaf(&b, nil)) {
		t.Error("shifting text between fields kept the leaf")
	}
}

func ptr[T any](v T) *T { return &v }

// TestErasedLeaf: an erased event with the original hashes gives the
// original leaf; without them, or edited after erasure, it does not.
func TestErasedLeaf(t *testing.T) {
	ev := sample()
	orig := integrity.Leaf(&ev, nil)
	kept := map[string][]byte{}
	for _, f := range integrity.Erasable {
		kept[f] = integrity.FieldHash(&ev, f)
		integrity.Erase(&ev, f)
		if !integrity.IsErased(&ev, f) {
			t.Fatalf("%s is not erased after Erase", f)
		}
	}
	if !bytes.Equal(integrity.Leaf(&ev, kept), orig) {
		t.Fatal("erased event with kept hashes does not give the original leaf")
	}
	if bytes.Equal(integrity.Leaf(&ev, nil), orig) {
		t.Fatal("erased event without kept hashes gives the original leaf")
	}
	ev.Context.UserAgent = "edited"
	if bytes.Equal(integrity.Leaf(&ev, kept), orig) {
		t.Fatal("a value edited after erasure still verifies")
	}
}

func signer(t testing.TB, seed byte) *integrity.Signer {
	return integrity.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32)))
}

func TestStatements(t *testing.T) {
	s := signer(t, 1)
	st := s.Sign(integrity.Body{Kind: audit.StatementCheckpoint, Tenant: "acme", Day: "2026-11-30", Count: 3,
		Head: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", Time: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
	keys := integrity.Keyring{s.KeyID(): s.Public()}
	b, err := keys.Open(st.Body, st.Signature)
	if err != nil || b.Count != 3 || b.KeyID != s.KeyID() || b.Format != integrity.Format {
		t.Fatalf("open: %+v %v", b, err)
	}
	if _, err := keys.Open(bytes.Replace(st.Body, []byte(`"count":3`), []byte(`"count":2`), 1), st.Signature); err == nil {
		t.Fatal("an edited statement verified")
	}
	other := signer(t, 2)
	if _, err := (integrity.Keyring{other.KeyID(): other.Public()}).Open(st.Body, st.Signature); err == nil {
		t.Fatal("a statement verified without its key")
	}
	// A rotated keyring holding the old key still opens it.
	if _, err := (integrity.Keyring{other.KeyID(): other.Public(), s.KeyID(): s.Public()}).Open(st.Body, st.Signature); err != nil {
		t.Fatal(err)
	}
}

func TestParseBodyErrorsNameTheField(t *testing.T) {
	good := `{"format":"vigil-integrity/1","kind":"checkpoint","tenant":"acme","day":"2026-11-30","count":1,"head":"` +
		"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" + `","time":"2026-12-01T00:00:00Z","key_id":"0011223344556677"}`
	if _, err := integrity.ParseBody([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for field, bad := range map[string]string{
		"format":    `{"format":"x","kind":"checkpoint","tenant":"acme","day":"2026-11-30","count":0,"time":"2026-12-01T00:00:00Z","key_id":"0011223344556677"}`,
		"kind":      `{"format":"vigil-integrity/1","kind":"x","tenant":"acme","day":"2026-11-30","count":0,"time":"2026-12-01T00:00:00Z","key_id":"0011223344556677"}`,
		"day":       `{"format":"vigil-integrity/1","kind":"checkpoint","tenant":"acme","day":"2026-13-30","count":0,"time":"2026-12-01T00:00:00Z","key_id":"0011223344556677"}`,
		"head":      `{"format":"vigil-integrity/1","kind":"checkpoint","tenant":"acme","day":"2026-11-30","count":1,"head":"zz","time":"2026-12-01T00:00:00Z","key_id":"0011223344556677"}`,
		"key_id":    `{"format":"vigil-integrity/1","kind":"checkpoint","tenant":"acme","day":"2026-11-30","count":0,"time":"2026-12-01T00:00:00Z","key_id":"x"}`,
		"statement": `{"format":"vigil-integrity/1","extra":1}`,
	} {
		_, err := integrity.ParseBody([]byte(bad))
		var ae *audit.Error
		if !asError(err, &ae) || ae.Field != field {
			t.Errorf("%s: %v", field, err)
		}
	}
}

func asError(err error, target **audit.Error) bool {
	e, ok := err.(*audit.Error)
	if ok {
		*target = e
	}
	return ok
}

// FuzzParseBody: decoding never panics, and a body that decodes marshals
// back to a body that decodes to the same value.
func FuzzParseBody(f *testing.F) {
	s := signer(f, 3)
	for _, kind := range []string{audit.StatementCheckpoint, audit.StatementTombstone} {
		f.Add(s.Sign(integrity.Body{Kind: kind, Tenant: "acme", Day: "2026-11-30", Count: 2, Head: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}).Body)
	}
	f.Add(s.Sign(integrity.Body{Kind: audit.StatementErasure, Tenant: "acme", Day: "2026-11-30", Count: 2, Erasure: "er_1.1", Fields: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}).Body)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":"vigil-integrity/1"}{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 2*integrity.MaxStatementBytes {
			return
		}
		got, err := integrity.ParseBody(b)
		if err != nil {
			if audit.ErrorCode(err) != audit.EINVALID {
				t.Fatalf("error code %q: %v", audit.ErrorCode(err), err)
			}
			return
		}
		again, err := integrity.ParseBody(got.Marshal())
		if err != nil {
			t.Fatalf("re-parse of %s: %v", got.Marshal(), err)
		}
		if diff := cmp.Diff(got, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

// FuzzParseProof: decoding a day proof never panics, a decoded proof
// round-trips, and VerifyExport on it (with no events) never panics.
func FuzzParseProof(f *testing.F) {
	s := signer(f, 4)
	cp := s.Sign(integrity.Body{Kind: audit.StatementCheckpoint, Tenant: "acme", Day: "2026-11-30", Count: 1, Head: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"})
	p := audit.DayProof{Tenant: "acme", Day: "2026-11-30", Checkpoint: &audit.SignedStatement{Statement: string(cp.Body), Signature: "AAAA"},
		Events: []string{"e1"}, Erased: []string{"e1 context.ip 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff er_1.1/2026-11-30"}}
	b, _ := json.Marshal(p)
	f.Add(b)
	f.Add([]byte(`{"tenant":"acme","day":"2026-11-30","events":["a","a"]}`))
	f.Add([]byte(`null`))
	keys := integrity.Keyring{s.KeyID(): s.Public()}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		got, err := integrity.ParseProof(b)
		if err != nil {
			if audit.ErrorCode(err) != audit.EINVALID {
				t.Fatalf("error code %q: %v", audit.ErrorCode(err), err)
			}
			return
		}
		enc, _ := json.Marshal(got)
		again, err := integrity.ParseProof(enc)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		// An empty list and an absent one mean the same.
		if diff := cmp.Diff(got, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		if rep, err := integrity.VerifyExport(nil, got, keys); err == nil && rep.OK && len(got.Events) > 0 {
			t.Fatalf("a proof of %d events verified without events", len(got.Events))
		}
	})
}
