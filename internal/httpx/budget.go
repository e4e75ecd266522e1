package httpx

import (
	"errors"
	"io"
	"sync"
)

// ErrBudgetExhausted is returned by a BudgetReader when the shared byte
// budget has no room for the bytes it is about to read.
var ErrBudgetExhausted = errors.New("in-flight request byte budget exhausted")

// ByteBudget bounds the request-body bytes held by all in-flight requests
// together. Reservations never wait: a request that does not fit is
// refused, so a burst of large bodies is answered 429 instead of growing
// the heap. Safe for concurrent use.
type ByteBudget struct {
	mu   sync.Mutex
	max  int64
	used int64
}

// NewByteBudget returns a budget of max bytes.
func NewByteBudget(max int64) *ByteBudget { return &ByteBudget{max: max} }

// Max returns the budget's size.
func (b *ByteBudget) Max() int64 { return b.max }

// InUse returns the bytes reserved now.
func (b *ByteBudget) InUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// TryAcquire reserves n bytes and reports whether they fit.
func (b *ByteBudget) TryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n < 0 || b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

// Release returns n reserved bytes.
func (b *ByteBudget) Release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// budgetStep is how much a BudgetReader reserves at a time when the body's
// length is not known in advance.
const budgetStep = 64 << 10

// BudgetReader charges every byte read from R to a ByteBudget. Bytes stay
// reserved until Release, because the request keeps what it decoded from
// them until it is answered. Not safe for concurrent use.
type BudgetReader struct {
	r      io.Reader
	budget *ByteBudget
	held   int64 // reserved
	read   int64 // read so far
}

// NewBudgetReader returns a reader over r charging b. When the body's
// length is known (Content-Length), reserve it up front with Reserve so an
// over-budget request is refused before anything is read.
func NewBudgetReader(r io.Reader, b *ByteBudget) *BudgetReader {
	return &BudgetReader{r: r, budget: b}
}

// Reserve reserves n more bytes now; false when they do not fit.
func (br *BudgetReader) Reserve(n int64) bool {
	if !br.budget.TryAcquire(n) {
		return false
	}
	br.held += n
	return true
}

// Read implements io.Reader. It never reads past what is reserved,
// reserving more in steps, and fails with ErrBudgetExhausted when the
// budget has no room.
func (br *BudgetReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if br.read >= br.held && !br.Reserve(budgetStep) {
		return 0, ErrBudgetExhausted
	}
	if room := br.held - br.read; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := br.r.Read(p)
	br.read += int64(n)
	return n, err
}

// Release returns every reserved byte to the budget; call it once, when
// the request is done.
func (br *BudgetReader) Release() {
	br.budget.Release(br.held)
	br.held = 0
}
