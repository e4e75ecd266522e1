//go:build !race

package demo_test

// raceOn is true when the race detector is on (see race_on_test.go).
const raceOn = false
