// Package leakcheck is the project's name for the leak oracle of package
// ocinettest: every integration test takes a snapshot of the host before
// and after, and fails on any difference. See ocinettest.Snapshot for what
// it looks at.
package leakcheck

import "github.com/ocinet/ocinet/ocinettest"

// Config says where to look; see ocinettest.LeakConfig.
type Config = ocinettest.LeakConfig

// Snapshot is what one look at the host found.
type Snapshot = ocinettest.Snapshot

// Take looks at the host.
func Take(c Config) (Snapshot, error) { return ocinettest.TakeSnapshot(c) }

// Diff returns what after has that before had not, one line per item, sorted.
func Diff(before, after Snapshot) []string { return ocinettest.Diff(before, after) }
