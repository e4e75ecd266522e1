package detect

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// keyState is everything the engine keeps for one (tenant, rule, group
// key): the sliding window or sequence hits, the baseline, and the open
// finding that absorbs further hits while suppression lasts. Exported
// fields but the key's parts are persisted (JSON); the rest is derived and
// rebuilt on load.
type keyState struct {
	// Tenant, Rule and Group are the state's key (tenant|rule|group), which
	// a checkpoint stores beside the value: they are left out of the value
	// (state written before carries them as "t", "r" and "g", ignored on
	// load), a third of a typical key's bytes.
	Tenant string `json:"-"`
	Rule   string `json:"-"`
	Group  string `json:"-"`
	// Entries are the window's events, sorted by time.
	Entries []entry `json:"e,omitempty"`
	// Newest is the newest event time of the key (ms).
	Newest int64 `json:"n"`
	// Baseline state: the current tumbling window's index and counts, and
	// the EWMA of closed windows.
	Bucket   int64   `json:"b,omitempty"`
	BCount   int     `json:"bc,omitempty"`
	BMatched int     `json:"bm,omitempty"`
	Base     float64 `json:"ba,omitempty"`
	BaseM    float64 `json:"bam,omitempty"`
	Closed   int     `json:"cl,omitempty"`
	// Steps are a sequence's hits, sorted by time.
	Steps []stepHit `json:"s,omitempty"`
	// Finding is the open finding and Until the end of its suppression (ms).
	Finding *audit.Finding `json:"f,omitempty"`
	Until   int64          `json:"u,omitempty"`
	// FVals and FMatched total the open finding's evidence: events per
	// distinct value (at most maxFindingValues values; FValsCapped when
	// more were seen) and matched events. Facts describe the whole attack,
	// not just the current window.
	FVals       map[string]int32 `json:"fv,omitempty"`
	FValsCapped bool             `json:"fc,omitempty"`
	FMatched    int              `json:"fm,omitempty"`

	sk             string // tenant|rule|group, the key in Engine.keys
	dirty          bool   // changed since the last checkpoint
	qAt            int64  // expiry queue bucket it is queued in
	live           bool   // held in Engine.keys (false once dropped)
	count, matched int
	per            map[string]int32 // value counts once there are two or more values
	one            string           // the only value, while there is one
	oneN           int32
	maxPer         int32
	// hist[c] is how many values of per occur exactly c times, so that
	// maxPer follows evictions in O(1) instead of a scan of per (which,
	// for a tenant-wide key with thousands of addresses, was most of the
	// engine's time under attack).
	hist []int32
	// fMax is the highest count in FVals and fLow its (at most
	// factValues) smallest values in order, both kept as FVals grows;
	// fDerived says they are in step with FVals (false after a restore).
	fMax     int32
	fLow     []string
	fDerived bool
}

// entry is one event in a window.
type entry struct {
	T  int64  `json:"t"`
	ID string `json:"i"`
	V  string `json:"v,omitempty"`
	M  bool   `json:"m,omitempty"`
	R  uint8  `json:"k,omitempty"` // login risk score
}

// stepHit is one event matching a sequence step.
type stepHit struct {
	Step int    `json:"s"`
	T    int64  `json:"t"`
	ID   string `json:"i"`
	R    uint8  `json:"k,omitempty"`
}

// rebuild recomputes the derived counters from Entries.
func (ks *keyState) rebuild() {
	ks.count, ks.matched, ks.maxPer = 0, 0, 0
	ks.per, ks.one, ks.oneN, ks.hist = nil, "", 0, nil
	for _, en := range ks.Entries {
		ks.inc(en)
	}
}

// The window's distinct values are counted in one inline slot while there
// is only one (most keys: an address, a session) and in the per map once
// there are more.

func (ks *keyState) inc(en entry) {
	ks.count++
	if en.M {
		ks.matched++
	}
	if en.V == "" {
		return
	}
	var c int32
	switch {
	case ks.per != nil && len(ks.per) > 0:
		c = ks.per[en.V] + 1
		ks.per[en.V] = c
		ks.histMove(c-1, c)
	case ks.oneN == 0 || ks.one == en.V:
		ks.one = en.V
		ks.oneN++
		c = ks.oneN
	default:
		if ks.per == nil {
			ks.per = make(map[string]int32, 2)
		}
		ks.per[ks.one] = ks.oneN
		ks.per[en.V] = 1
		clear(ks.hist)
		ks.histMove(0, ks.oneN)
		ks.histMove(0, 1)
		ks.one, ks.oneN = "", 0
		c = 1
	}
	if c > ks.maxPer {
		ks.maxPer = c
	}
}

// histMove moves one value of per from count from to count to in hist
// (0 meaning absent).
func (ks *keyState) histMove(from, to int32) {
	if from > 0 {
		ks.hist[from]--
	}
	if to > 0 {
		if int(to) >= len(ks.hist) {
			ks.hist = append(ks.hist, make([]int32, int(to)+1-len(ks.hist))...)
		}
		ks.hist[to]++
	}
}

func (ks *keyState) dec(en entry) {
	ks.count--
	if en.M {
		ks.matched--
	}
	if en.V == "" {
		return
	}
	if len(ks.per) > 0 {
		c := ks.per[en.V] - 1
		if c <= 0 {
			delete(ks.per, en.V)
		} else {
			ks.per[en.V] = c
		}
		ks.histMove(c+1, max(c, 0))
		for ks.maxPer > 0 && (int(ks.maxPer) >= len(ks.hist) || ks.hist[ks.maxPer] == 0) {
			ks.maxPer--
		}
	} else if ks.one == en.V {
		ks.oneN--
		ks.maxPer = ks.oneN
		if ks.oneN == 0 {
			ks.one = ""
		}
	}
}

// distinctCount is the number of distinct values in the window.
func (ks *keyState) distinctCount() int {
	if len(ks.per) > 0 {
		return len(ks.per)
	}
	if ks.oneN > 0 {
		return 1
	}
	return 0
}

// values calls f for each distinct value of the window, in no order.
func (ks *keyState) values(f func(string)) {
	if len(ks.per) > 0 {
		for v := range ks.per {
			f(v)
		}
		return
	}
	if ks.oneN > 0 {
		f(ks.one)
	}
}

// maxPerValue returns the highest count of one distinct value.
func (ks *keyState) maxPerValue() int32 { return ks.maxPer }

// add inserts en in time order, then evicts what fell out of the window
// (relative to the key's newest event) and beyond the cap. It returns how
// many entries the cap dropped.
func (ks *keyState) add(en entry, window time.Duration, maxEntries int) (dropped int) {
	i := sort.Search(len(ks.Entries), func(i int) bool { return ks.Entries[i].T > en.T })
	ks.Entries = slices.Insert(ks.Entries, i, en)
	ks.inc(en)
	if en.T > ks.Newest {
		ks.Newest = en.T
	}
	cut := ks.Newest - window.Milliseconds()
	n := 0
	for n < len(ks.Entries) && (ks.Entries[n].T <= cut || len(ks.Entries)-n > maxEntries) {
		if ks.Entries[n].T > cut {
			dropped++
		}
		ks.dec(ks.Entries[n])
		n++
	}
	if n > 0 {
		// Reslice rather than shift: O(1); append reallocates (and frees
		// the dead head) when capacity runs out.
		clear(ks.Entries[:n])
		ks.Entries = ks.Entries[n:]
	}
	return dropped
}

// roll advances the tumbling baseline window to the one holding t. Closed
// windows fold into the EWMA unless a finding was open (an attack must not
// become the new normal).
func (ks *keyState) roll(t int64, window time.Duration, alpha float64) {
	w := window.Milliseconds()
	idx := t / w
	if ks.Bucket == 0 {
		ks.Bucket = idx
		return
	}
	if idx <= ks.Bucket {
		return
	}
	open := ks.Finding != nil && ks.Bucket*w <= ks.Until
	if !open {
		if ks.Closed == 0 {
			ks.Base, ks.BaseM = float64(ks.BCount), float64(ks.BMatched)
		} else {
			ks.Base = alpha*float64(ks.BCount) + (1-alpha)*ks.Base
			ks.BaseM = alpha*float64(ks.BMatched) + (1-alpha)*ks.BaseM
		}
	}
	ks.Closed++
	if gap := idx - ks.Bucket - 1; gap > 0 {
		g := min(gap, 10000)
		f := math.Pow(1-alpha, float64(g))
		ks.Base *= f
		ks.BaseM *= f
		ks.Closed += int(g)
	}
	ks.Bucket = idx
	ks.BCount, ks.BMatched = 0, 0
}

// baselineIdle is how long a key with a baseline survives without events.
const baselineIdle = 7 * 24 * time.Hour

// reset empties ks for reuse, keeping its buffers' capacity.
func (ks *keyState) reset() {
	ents := ks.Entries[:cap(ks.Entries)]
	clear(ents)
	steps := ks.Steps[:cap(ks.Steps)]
	clear(steps)
	per := ks.per
	clear(per)
	hist := ks.hist[:0]
	*ks = keyState{Entries: ents[:0], Steps: steps[:0], per: per, hist: hist}
}
