package leakcheck

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestRemoveNewLeaseDirs: of the network directories that appeared after
// LeaseDirs, those with only host-local's lock and last_reserved_ip files
// go; one that holds a lease, a directory or another file stays whole, as
// does one that was there before, bookkeeping and all.
func TestRemoveNewLeaseDirs(t *testing.T) {
	c := Config{CNIDataDir: filepath.Join(t.TempDir(), "networks")}
	write := func(rel string) {
		t.Helper()
		p := filepath.Join(c.CNIDataDir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("old/lock")
	write("old/last_reserved_ip.0")
	before := LeaseDirs(c)
	if !before["old"] || len(before) != 1 {
		t.Fatalf("LeaseDirs = %v, want old", before)
	}
	write("empty/lock")
	write("empty/last_reserved_ip.0")
	write("empty/last_reserved_ip.1")
	write("leased/lock")
	write("leased/10.99.0.2")
	write("other/lock")
	write("other/notes")
	write("nested/lock")
	write("nested/sub/x")
	if err := os.MkdirAll(filepath.Join(c.CNIDataDir, "bare"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := RemoveNewLeaseDirs(before, c); err != nil {
		t.Fatal(err)
	}
	var got []string
	for d := range LeaseDirs(c) {
		got = append(got, d)
	}
	slices.Sort(got)
	if want := []string{"leased", "nested", "old", "other"}; !slices.Equal(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
	for _, rel := range []string{"old/lock", "old/last_reserved_ip.0", "leased/lock", "leased/10.99.0.2", "other/notes", "nested/sub/x"} {
		if _, err := os.Stat(filepath.Join(c.CNIDataDir, rel)); err != nil {
			t.Errorf("%s: %v", rel, err)
		}
	}
	// No data directory at all is no error.
	if err := RemoveNewLeaseDirs(nil, Config{CNIDataDir: filepath.Join(t.TempDir(), "none")}); err != nil {
		t.Error(err)
	}
}
