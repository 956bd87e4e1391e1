package leakcheck

import (
	"testing"

	"github.com/ocinet/ocinet/ocinettest"
)

// Check takes a snapshot now and registers a cleanup that takes another
// when the test ends and fails the test if anything was left behind.
// Register it first, so that it runs after the test's other cleanups.
func Check(t testing.TB, c Config) { t.Helper(); ocinettest.CheckLeaks(t, c) }
