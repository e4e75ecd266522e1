//go:build race

package demo_test

// raceOn is true when the race detector is on: TestDemoGoals then runs the
// first goal seed only (each seed takes about a minute under -race; the
// normal run asserts all of them).
const raceOn = true
