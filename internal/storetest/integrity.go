package storetest

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

func entry(tenant, day string, seq int64, id string) audit.ChainEntry {
	return audit.ChainEntry{Tenant: tenant, Day: day, Seq: seq, EventID: id,
		Leaf: bytes.Repeat([]byte{byte(seq)}, 32), Hash: bytes.Repeat([]byte{byte(seq + 100)}, 32)}
}

func runIntegrity(t *testing.T, open func(t *testing.T) Backend) {
	get := func(t *testing.T) audit.IntegrityStore {
		b := open(t)
		if b.Integrity == nil {
			t.Skip("backend has no integrity store")
		}
		return b.Integrity
	}
	const d1, d2 = "2026-11-01", "2026-11-02"

	t.Run("AppendContinuesHeadsAtomically", func(t *testing.T) {
		s, ctx := get(t), t.Context()
		noErr(t, s.AppendChain(ctx, []audit.ChainEntry{entry("a", d1, 1, "e1"), entry("a", d1, 2, "e2"), entry("a", d2, 1, "e3"), entry("b", d1, 1, "e1")}))
		h, err := s.ChainHead(ctx, "a", d1)
		noErr(t, err)
		if h.Count != 2 || !bytes.Equal(h.Head, entry("a", d1, 2, "").Hash) {
			t.Fatalf("head of a/%s: %+v", d1, h)
		}
		if h, err := s.ChainHead(ctx, "a", "2026-11-03"); err != nil || h.Count != 0 || h.Head != nil {
			t.Fatalf("head of an empty day: %+v %v", h, err)
		}
		// A gap, a repeated seq and a repeated event are refused, and the
		// good entry of the same call is not kept.
		wantCode(t, s.AppendChain(ctx, []audit.ChainEntry{entry("a", d1, 3, "e4"), entry("a", d1, 5, "e5")}), audit.ECONFLICT)
		wantCode(t, s.AppendChain(ctx, []audit.ChainEntry{entry("a", d1, 2, "e9")}), audit.ECONFLICT)
		wantCode(t, s.AppendChain(ctx, []audit.ChainEntry{entry("a", d1, 3, "e1")}), audit.ECONFLICT)
		if h, _ := s.ChainHead(ctx, "a", d1); h.Count != 2 {
			t.Fatalf("a refused call moved the head: %+v", h)
		}
		got, err := s.Chained(ctx, "a", []string{"e1", "e3", "e4", "nope"})
		noErr(t, err)
		if !got["e1"] || !got["e3"] || got["e4"] || got["nope"] || len(got) != 2 {
			t.Fatalf("chained: %v", got)
		}
		es, err := s.ChainEntries(ctx, "a", d1, 1, 10)
		noErr(t, err)
		if len(es) != 1 || es[0].Seq != 2 || es[0].EventID != "e2" || !bytes.Equal(es[0].Leaf, entry("a", d1, 2, "").Leaf) {
			t.Fatalf("entries after 1: %+v", es)
		}
		days, err := s.ChainDays(ctx, "a", "", "")
		noErr(t, err)
		if len(days) != 2 || days[0] != d1 || days[1] != d2 {
			t.Fatalf("days of a: %v", days)
		}
		if days, _ := s.ChainDays(ctx, "a", d2, d2); len(days) != 1 {
			t.Fatalf("days of a in [%s, %s]: %v", d2, d2, days)
		}
		tenants, err := s.ChainTenants(ctx)
		noErr(t, err)
		if len(tenants) != 2 || tenants[0] != "a" || tenants[1] != "b" {
			t.Fatalf("tenants: %v", tenants)
		}
		wantCode(t, s.AppendChain(ctx, []audit.ChainEntry{entry("", d1, 1, "x")}), audit.EINVALID)

		// A pipeline batch: hundreds of entries over two days in one call,
		// more than one statement of any backend; one repeated event in a
		// second such call refuses all of it.
		var many []audit.ChainEntry
		for i := range 700 {
			many = append(many, entry("c", d1, int64(i+1), fmt.Sprintf("m%03d", i)), entry("c", d2, int64(i+1), fmt.Sprintf("n%03d", i)))
		}
		noErr(t, s.AppendChain(ctx, many))
		if h, err := s.ChainHead(ctx, "c", d2); err != nil || h.Count != 700 || !bytes.Equal(h.Head, many[len(many)-1].Hash) {
			t.Fatalf("head after 1,400 entries in one call: %+v %v", h, err)
		}
		more := []audit.ChainEntry{}
		for i := range 600 {
			more = append(more, entry("c", d1, int64(701+i), fmt.Sprintf("x%03d", i)))
		}
		more[550].EventID = "m004" // already chained
		err = s.AppendChain(ctx, more)
		wantCode(t, err, audit.ECONFLICT)
		if !strings.Contains(err.Error(), "m004") {
			t.Errorf("the refusal does not name the event chained already: %v", err)
		}
		if h, _ := s.ChainHead(ctx, "c", d1); h.Count != 700 {
			t.Fatalf("a refused call of 600 entries moved the head: %+v", h)
		}
		_, err = s.ChainHead(ctx, "", d1)
		wantCode(t, err, audit.EINVALID)
	})

	t.Run("StatementsAndUnsigned", func(t *testing.T) {
		s, ctx := get(t), t.Context()
		noErr(t, s.AppendChain(ctx, []audit.ChainEntry{entry("a", d1, 1, "e1"), entry("a", d2, 1, "e2")}))
		un, err := s.Unsigned(ctx, 10)
		noErr(t, err)
		if len(un) != 2 {
			t.Fatalf("unsigned before any checkpoint: %+v", un)
		}
		at := time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
		cp := audit.Statement{Tenant: "a", Kind: audit.StatementCheckpoint, Day: d1, Count: 1, KeyID: "k", Body: []byte("body"), Signature: []byte("sig"), At: at}
		noErr(t, s.PutStatement(ctx, cp))
		un, _ = s.Unsigned(ctx, 10)
		if len(un) != 1 || un[0].Day != d2 {
			t.Fatalf("unsigned after a checkpoint of %s: %+v", d1, un)
		}
		got, err := s.Statement(ctx, "a", audit.StatementCheckpoint, d1)
		noErr(t, err)
		if got.Count != 1 || string(got.Body) != "body" || string(got.Signature) != "sig" || got.Day != d1 || !got.At.Equal(at) {
			t.Fatalf("statement: %+v", got)
		}
		// A later checkpoint replaces it.
		cp.Body = []byte("body2")
		noErr(t, s.PutStatement(ctx, cp))
		if got, _ := s.Statement(ctx, "a", audit.StatementCheckpoint, d1); string(got.Body) != "body2" {
			t.Fatalf("replaced statement: %+v", got)
		}
		_, err = s.Statement(ctx, "a", audit.StatementTombstone, d1)
		wantCode(t, err, audit.ENOTFOUND)
		_, err = s.Statement(ctx, "b", audit.StatementCheckpoint, d1)
		wantCode(t, err, audit.ENOTFOUND)
		wantCode(t, s.PutStatement(ctx, audit.Statement{Tenant: "a", Kind: "other", Day: d1}), audit.EINVALID)
	})

	t.Run("TrimKeepsHead", func(t *testing.T) {
		s, ctx := get(t), t.Context()
		noErr(t, s.AppendChain(ctx, []audit.ChainEntry{entry("a", d1, 1, "e1"), entry("a", d1, 2, "e2"), entry("b", d1, 1, "e1")}))
		noErr(t, s.TrimChain(ctx, "a", d1, 2))
		if es, _ := s.ChainEntries(ctx, "a", d1, 0, 10); len(es) != 0 {
			t.Fatalf("entries after the trim: %+v", es)
		}
		if h, _ := s.ChainHead(ctx, "a", d1); h.Count != 2 {
			t.Fatalf("the trim moved the head: %+v", h)
		}
		if es, _ := s.ChainEntries(ctx, "b", d1, 0, 10); len(es) != 1 {
			t.Fatalf("another tenant's entries were trimmed: %+v", es)
		}
		// A purged id may be chained again (idempotency lasts as long as retention).
		noErr(t, s.AppendChain(ctx, []audit.ChainEntry{entry("a", d1, 3, "e1")}))
	})

	t.Run("Erasures", func(t *testing.T) {
		s, ctx := get(t), t.Context()
		noErr(t, s.AppendChain(ctx, []audit.ChainEntry{entry("a", d1, 1, "e1")}))
		st := audit.Statement{Tenant: "a", Kind: audit.StatementErasure, ID: "er1.1/" + d1, Day: d1, Count: 1, KeyID: "k", Body: []byte("b"), Signature: []byte("s")}
		f := audit.ErasedField{Tenant: "a", Day: d1, EventID: "e1", Field: "context.ip", Hash: bytes.Repeat([]byte{7}, 32), Erasure: st.ID}
		noErr(t, s.PutErasure(ctx, st, []audit.ErasedField{f}))
		// Erased again later: the first (original) hash stays.
		st2 := st
		st2.ID = "er2.1/" + d1
		f2 := f
		f2.Hash, f2.Erasure = bytes.Repeat([]byte{8}, 32), st2.ID
		noErr(t, s.PutErasure(ctx, st2, []audit.ErasedField{f2}))
		fs, err := s.ErasedFields(ctx, "a", d1)
		noErr(t, err)
		if len(fs) != 1 || fs[0].Hash[0] != 7 || fs[0].Erasure != st.ID {
			t.Fatalf("erased fields: %+v", fs)
		}
		if got, err := s.Statement(ctx, "a", audit.StatementErasure, st.ID); err != nil || got.ID != st.ID {
			t.Fatalf("erasure statement: %+v %v", got, err)
		}
		if fs, _ := s.ErasedFields(ctx, "b", d1); len(fs) != 0 {
			t.Fatalf("another tenant's erased fields: %+v", fs)
		}
		f.Erasure = "other"
		wantCode(t, s.PutErasure(ctx, st, []audit.ErasedField{f}), audit.EINVALID)
		// Trimming the day drops its erased fields.
		noErr(t, s.TrimChain(ctx, "a", d1, 1))
		if fs, _ := s.ErasedFields(ctx, "a", d1); len(fs) != 0 {
			t.Fatalf("erased fields after the trim: %+v", fs)
		}
	})
}
