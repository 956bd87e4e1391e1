package ocinettest

import (
	"strings"
	"testing"

	"github.com/ocinet/ocinet/internal/leakcheck"
)

// LeakConfig says where the leak oracle looks; see [TakeSnapshot].
type LeakConfig = leakcheck.Config

// Snapshot is what one look at the host found: the items of each kind.
type Snapshot = leakcheck.Snapshot

// TakeSnapshot looks at the host; see package internal/leakcheck's Take
// for every kind of item it counts.
func TakeSnapshot(c LeakConfig) (Snapshot, error) { return leakcheck.Take(c) }

// Diff returns what after has that before had not, one line per item,
// sorted.
func Diff(before, after Snapshot) []string { return leakcheck.Diff(before, after) }

// CheckLeaks takes a snapshot now and registers a cleanup that takes
// another when the test ends and fails the test if anything was left
// behind. Register it first, so that it runs after the test's other
// cleanups. It skips the test (or fails it under CI=true) without ip(8).
// Before the second look it removes what host-local leaves of a network
// whose lease directory the test made (a lock file and the last reserved
// addresses, which the plugin never removes), unless a lease is still
// there.
//
// The host is shared: another process's work that appears between the two
// snapshots is reported as well. Tests that run beside others give their
// containers, networks and namespaces names of their own and filter [Diff]
// by them instead.
func CheckLeaks(t testing.TB, c LeakConfig) {
	t.Helper()
	requireTools(t, "ip")
	before, err := TakeSnapshot(c)
	if err != nil {
		t.Fatalf("leak check: %v", err)
	}
	leaseDirs := leakcheck.LeaseDirs(c)
	t.Cleanup(func() {
		// What host-local leaves of the test's networks (a lock file and
		// its last reserved addresses, which it never removes) goes too.
		if err := leakcheck.RemoveNewLeaseDirs(leaseDirs, c); err != nil {
			t.Errorf("leak check: remove the test's lease directories: %v", err)
		}
		leaks, err := leakcheck.Settled(before, c)
		if err != nil {
			t.Errorf("leak check: %v", err)
			return
		}
		if len(leaks) > 0 {
			t.Errorf("left behind:\n  %s", joinLines(leaks))
		}
	})
}

func joinLines(lines []string) string { return strings.Join(lines, "\n  ") }
