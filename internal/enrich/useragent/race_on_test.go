//go:build race

package useragent

// raceEnabled is set when the tests run with the race detector, which
// makes the reference parser (every regex in order, per input) several
// times slower: the exhaustive comparisons then take a sample.
const raceEnabled = true
