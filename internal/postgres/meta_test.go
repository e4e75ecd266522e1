package postgres_test

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// TestStateBatchesAndByteOrder saves more keys than one batch and scans
// them back in byte order (not the database's collation), values exact:
// empty, NUL bytes, binary.
func TestStateBatchesAndByteOrder(t *testing.T) {
	s, ctx := open(t), t.Context()
	puts := map[string][]byte{}
	var want []string
	for i := range 2500 {
		k := fmt.Sprintf("k%05d", i)
		puts[k] = []byte{byte(i), 0, byte(i >> 8)}
		want = append(want, k)
	}
	for _, k := range []string{"B", "a", "Z", "é", "_x", "k"} {
		puts[k] = []byte{}
		want = append(want, k)
	}
	slices.Sort(want) // Go's string order is byte order.
	if err := s.SaveState(ctx, "ns", puts, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := s.ScanState(ctx, "ns", func(k string, v []byte) error {
		if !bytes.Equal(v, puts[k]) || v == nil {
			return fmt.Errorf("value of %q = %v, want %v", k, v, puts[k])
		}
		got = append(got, k)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("scan order: got %d keys, first %v, want %v", len(got), got[:8], want[:8])
	}
	// Deletes of more than one batch, with puts in the same call.
	var dels []string
	for i := range 2400 {
		dels = append(dels, fmt.Sprintf("k%05d", i))
	}
	if err := s.SaveState(ctx, "ns", map[string][]byte{"k00000": []byte("back")}, dels); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := s.ScanState(ctx, "ns", func(string, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if want := 2500 - 2400 + 6 + 1; n != want {
		t.Fatalf("%d keys after the deletes, want %d", n, want)
	}
	if v, err := s.GetState(ctx, "ns", "k00000"); err != nil || string(v) != "back" {
		t.Fatalf("a key deleted and put in one call: %q, %v", v, err)
	}
	if v, err := s.GetState(ctx, "ns", "B"); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("empty value: %v, %v", v, err)
	}
}

// TestScanStateSeesOneSnapshot: a save made while a scan runs is not seen
// by the scan's later pages.
func TestScanStateSeesOneSnapshot(t *testing.T) {
	s, ctx := open(t), t.Context()
	puts := map[string][]byte{}
	for i := range 1500 {
		puts[fmt.Sprintf("k%05d", i)] = []byte("v")
	}
	if err := s.SaveState(ctx, "ns", puts, nil); err != nil {
		t.Fatal(err)
	}
	n, saved := 0, false
	err := s.ScanState(ctx, "ns", func(k string, v []byte) error {
		n++
		if !saved {
			saved = true
			return s.SaveState(ctx, "ns", map[string][]byte{"z-late": []byte("v")}, []string{"k01499"})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1500 {
		t.Fatalf("scan saw %d keys, want the 1500 of its snapshot", n)
	}
}

// TestSavedSearchCapUnderConcurrency: saves racing for the last free
// places never leave a tenant above audit.MaxSavedSearches.
func TestSavedSearchCapUnderConcurrency(t *testing.T) {
	s, ctx := open(t), t.Context()
	for i := range audit.MaxSavedSearches - 2 {
		if err := s.SaveSearch(ctx, audit.SavedSearch{Tenant: "a", ID: fmt.Sprintf("s%03d", i), Name: "n", Query: "q"}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			errs <- s.SaveSearch(ctx, audit.SavedSearch{Tenant: "a", ID: fmt.Sprintf("race%d", i), Name: "n", Query: "q"})
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch audit.ErrorCode(err) {
		case "":
			ok++
		case audit.ETOOLARGE:
		default:
			t.Fatalf("racing save: %v", err)
		}
	}
	list, err := s.ListSavedSearches(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if ok != 2 || len(list) != audit.MaxSavedSearches {
		t.Fatalf("%d racing saves succeeded, tenant holds %d; want 2 and %d", ok, len(list), audit.MaxSavedSearches)
	}
}

// TestAppendChainConcurrentWriters: writers racing to extend one day's
// chain never leave a gap or a repeated seq; the losers get ECONFLICT or
// EUNAVAILABLE (a retryable conflict), and the head matches the entries.
func TestAppendChainConcurrentWriters(t *testing.T) {
	s, ctx := open(t), t.Context()
	const day = "2026-11-01"
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 20 {
				h, err := s.ChainHead(ctx, "a", day)
				if err != nil {
					t.Error(err)
					return
				}
				e := audit.ChainEntry{Tenant: "a", Day: day, Seq: h.Count + 1, EventID: fmt.Sprintf("w%d-%d", w, i),
					Leaf: []byte{1}, Hash: []byte{byte(h.Count + 1)}}
				switch err := s.AppendChain(ctx, []audit.ChainEntry{e}); audit.ErrorCode(err) {
				case "", audit.ECONFLICT, audit.EUNAVAILABLE:
				default:
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	h, err := s.ChainHead(ctx, "a", day)
	if err != nil {
		t.Fatal(err)
	}
	es, err := s.ChainEntries(ctx, "a", day, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(es)) != h.Count || h.Count == 0 {
		t.Fatalf("%d entries, head count %d", len(es), h.Count)
	}
	for i, e := range es {
		if e.Seq != int64(i+1) {
			t.Fatalf("entry %d has seq %d", i, e.Seq)
		}
	}
	if !bytes.Equal(h.Head, es[len(es)-1].Hash) {
		t.Fatalf("head %v is not the last entry's hash %v", h.Head, es[len(es)-1].Hash)
	}
}

// TestListsAreInByteOrder: ids sort as bytes, as in the SQLite store,
// whatever the database's default collation.
func TestListsAreInByteOrder(t *testing.T) {
	s, ctx := open(t), t.Context()
	for _, id := range []string{"b", "B", "a-1", "a_1", "A"} {
		if err := s.CreateTenant(ctx, audit.Tenant{ID: id, CreatedAt: time.Unix(1, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListTenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tn := range list {
		got = append(got, tn.ID)
	}
	if want := []string{"A", "B", "a-1", "a_1", "b"}; !slices.Equal(got, want) {
		t.Fatalf("tenants %v, want %v", got, want)
	}
}

// TestKeyHashStoredAsGiven: the store keeps the hash it is given and
// nothing else of the secret.
func TestKeyHashStoredAsGiven(t *testing.T) {
	s, ctx := open(t), t.Context()
	k, full, err := audit.MintKey(ctx, s, "a", "ingest", []audit.Scope{audit.ScopeEventsWrite}, time.Unix(100, 0))
	if err != nil {
		t.Fatal(err)
	}
	_, secret, ok := audit.ParseKey(full)
	if !ok {
		t.Fatal("minted key does not parse")
	}
	got, err := s.GetKey(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !audit.SecretMatches(secret, got.Hash) || bytes.Contains(got.Hash, []byte(secret)) {
		t.Fatalf("stored hash %x does not match the secret's", got.Hash)
	}
	if err := s.TouchKey(ctx, "nope", time.Unix(200, 0)); audit.ErrorCode(err) != audit.ENOTFOUND {
		t.Fatalf("touching an unknown key: %v", err)
	}
}
