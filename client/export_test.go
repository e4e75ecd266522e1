package client

// Test hooks, visible only to this package's tests.
var (
	WithSleep  = withSleep
	WithJitter = withJitter
)
