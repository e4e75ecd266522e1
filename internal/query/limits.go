package query

import "time"

// Limits on one query. They keep a single query from exhausting the parser
// or the server; a query beyond any of them is rejected as invalid.
const (
	// MaxSourceBytes is the longest query source accepted.
	MaxSourceBytes = 32 << 10
	// MaxTerms is the largest number of comparisons and free-text terms.
	MaxTerms = 256
	// MaxDepth is the deepest filter tree: the most AND, OR and NOT nodes
	// on any path from the root to a comparison.
	MaxDepth = 32
	// MaxNesting is the deepest nesting of parentheses and NOT in the
	// source. It guards the recursive-descent parser's stack, and leaves
	// room for the parentheses String adds, so that every accepted query
	// re-parses from its canonical form.
	MaxNesting = 2*MaxDepth + 2
	// MaxValueBytes is the longest single value or free-text term.
	MaxValueBytes = 1024
	// MaxStages is the largest number of pipe stages.
	MaxStages = 16
	// MaxAggs is the largest number of aggregates in one stats stage.
	MaxAggs = 16
	// MaxGroupKeys is the largest number of "by" keys in one stats stage.
	MaxGroupKeys = 8
	// MaxSortKeys is the largest number of keys in one sort stage.
	MaxSortKeys = 8
	// MaxGroups is the largest number of groups a stats stage may produce.
	// It cannot be checked before running the query, so the compiler must
	// enforce it (e.g. LIMIT MaxGroups+1 and fail when exceeded).
	MaxGroups = 10_000
	// MaxRows is the largest N of head and the most rows any query returns;
	// the compiler caps results at it whether or not the query has a head.
	MaxRows = 10_000
	// MaxBuckets is the largest number of time buckets bin(time, w) may make
	// over the query's time range.
	MaxBuckets = 10_000
	// MinBinWidth is the narrowest time bucket.
	MinBinWidth = time.Second
	// DefaultRange is the time range of a query with no lower time bound:
	// the DefaultRange before its upper bound.
	DefaultRange = 24 * time.Hour
	// MaxRange is the widest time range of one query (the default tenant
	// retention).
	MaxRange = 400 * 24 * time.Hour
)
