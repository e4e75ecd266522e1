package httpx_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/vigilhq/vigil/internal/httpx"
)

func TestByteBudget(t *testing.T) {
	b := httpx.NewByteBudget(100)
	if !b.TryAcquire(60) || b.TryAcquire(41) || !b.TryAcquire(40) || b.TryAcquire(1) {
		t.Fatal("reservations do not add up to the budget")
	}
	b.Release(60)
	if b.InUse() != 40 || !b.TryAcquire(60) {
		t.Fatalf("after release: in use %d", b.InUse())
	}
}

// TestBudgetReaderChargesWhatItReads: an unannounced body is charged in
// steps as it is read, fails with ErrBudgetExhausted when it no longer
// fits, and gives everything back on Release.
func TestBudgetReaderChargesWhatItReads(t *testing.T) {
	b := httpx.NewByteBudget(200 << 10)
	other := httpx.NewBudgetReader(bytes.NewReader(nil), b)
	if !other.Reserve(100 << 10) {
		t.Fatal("reserve")
	}
	br := httpx.NewBudgetReader(bytes.NewReader(make([]byte, 1<<20)), b)
	n, err := io.Copy(io.Discard, br)
	if !errors.Is(err, httpx.ErrBudgetExhausted) {
		t.Fatalf("err = %v after %d bytes", err, n)
	}
	if n > 100<<10 || b.InUse() > 200<<10 {
		t.Fatalf("read %d bytes, %d in use: over the budget", n, b.InUse())
	}
	br.Release()
	other.Release()
	if b.InUse() != 0 {
		t.Fatalf("%d bytes still in use", b.InUse())
	}
	// With the budget free, a body that fits is read whole.
	br = httpx.NewBudgetReader(bytes.NewReader(make([]byte, 150<<10)), b)
	if n, err := io.Copy(io.Discard, br); err != nil || n != 150<<10 {
		t.Fatalf("n = %d, err = %v", n, err)
	}
	br.Release()
}
