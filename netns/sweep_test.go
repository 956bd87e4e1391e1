//go:build linux

package netns_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ocinet/ocinet/netns"
)

func TestListSweep(t *testing.T) {
	dir := testDir(t)
	prefix := name(t)
	var live, orphans []string
	for i, n := range []string{"a-live", "b-orphan", "c-live", "d-orphan"} {
		path, err := netns.Create(dir, prefix+"-"+n)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = netns.Remove(path) })
		if i%2 == 0 {
			live = append(live, path)
		} else {
			orphans = append(orphans, path)
		}
	}
	write := func(base string, data []byte, age time.Duration) string {
		path := filepath.Join(dir, base)
		if err := os.WriteFile(path, data, 0o444); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-age)
		if err := os.Chtimes(path, old, old); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(path) })
		return path
	}
	stale := write("stale", nil, time.Hour)                // a crash's leftover mount point
	fresh := write("fresh", nil, 0)                        // perhaps another tool's mount point, about to be mounted
	data := write("data", []byte("not ours"), time.Hour)   // not a mount point at all
	all := append(append([]string{}, live...), orphans...) // every namespace
	slices.Sort(all)

	got, err := netns.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, all) {
		t.Errorf("List = %v, want %v", got, all)
	}

	var asked []string
	removed, err := netns.Sweep(dir, func(path string) bool {
		asked = append(asked, path)
		return slices.Contains(orphans, path)
	})
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if !slices.Equal(asked, all) {
		t.Errorf("Sweep asked about %v, want every namespace %v", asked, all)
	}
	want := append(append([]string{}, orphans...), stale)
	slices.Sort(removed)
	slices.Sort(want)
	if !slices.Equal(removed, want) {
		t.Errorf("Sweep removed %v, want %v", removed, want)
	}
	for _, p := range want {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived the sweep: %v", p, err)
		}
		if n := mounts(t, p)[p]; n != 0 {
			t.Errorf("%d mounts left on %s", n, p)
		}
	}
	for _, p := range live {
		if err := netns.Check(p); err != nil {
			t.Errorf("live namespace %s after the sweep: %v", p, err)
		}
	}
	for _, p := range []string{fresh, data} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was swept: %v", p, err)
		}
	}
	got, err = netns.List(dir)
	if err != nil || !slices.Equal(got, live) {
		t.Errorf("List after the sweep = %v, %v; want %v", got, err, live)
	}
	for _, p := range live {
		if err := netns.Remove(p); err != nil {
			t.Error(err)
		}
	}
}

func TestListSweepMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "none")
	if got, err := netns.List(dir); err != nil || len(got) != 0 {
		t.Errorf("List of a missing directory = %v, %v", got, err)
	}
	if got, err := netns.Sweep(dir, func(string) bool { return true }); err != nil || len(got) != 0 {
		t.Errorf("Sweep of a missing directory = %v, %v", got, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Sweep created %s: %v", dir, err)
	}
	if _, err := netns.Sweep(dir, nil); !errors.Is(err, netns.ErrInvalid) {
		t.Errorf("Sweep with a nil predicate: err = %v, want ErrInvalid", err)
	}
}
