package storetest

import "testing"

// runViewers tests the ViewerTokenStore contract (to be written).
func runViewers(t *testing.T, open func(t *testing.T) Backend) {}

// runSearches tests the SavedSearchStore contract (to be written).
func runSearches(t *testing.T, open func(t *testing.T) Backend) {}
