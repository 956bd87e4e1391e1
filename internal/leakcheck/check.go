package leakcheck

import (
	"strings"
	"testing"
)

// Check takes a snapshot now and registers a cleanup that takes another
// when the test ends and fails the test if anything was left behind.
// Register it first, so that it runs after the test's other cleanups.
func Check(t testing.TB, c Config) {
	t.Helper()
	before, err := Take(c)
	if err != nil {
		t.Fatalf("leak check: %v", err)
	}
	t.Cleanup(func() {
		after, err := Take(c)
		if err != nil {
			t.Errorf("leak check: %v", err)
			return
		}
		if leaks := Diff(before, after); len(leaks) > 0 {
			t.Errorf("left behind:\n  %s", strings.Join(leaks, "\n  "))
		}
	})
}
