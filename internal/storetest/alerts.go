package storetest

import "testing"

// runAlerts tests the AlertStore contract (to be written).
func runAlerts(t *testing.T, open func(t *testing.T) Backend) {}

// runSIEM tests the SIEMStore contract (to be written).
func runSIEM(t *testing.T, open func(t *testing.T) Backend) {}
