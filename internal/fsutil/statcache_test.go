package fsutil

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// An unchanged file older than RacyFor is loaded once; a recent one, a
// rewritten one and (with NoFollow) a symbolic link put in its place are
// loaded again.
func TestStatCache(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	write := func(content string, age time.Duration) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-age)
		if err := os.Chtimes(path, at, at); err != nil {
			t.Fatal(err)
		}
	}
	loads := 0
	c := StatCache[string]{NoFollow: true}
	get := func() string {
		t.Helper()
		v, err := c.Get(path, func() (string, error) {
			loads++
			b, err := os.ReadFile(path)
			return string(b), err
		}, func(s string) string { return s })
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	write("recent", 0)
	get()
	get()
	if loads != 2 {
		t.Errorf("a recent file loaded %d times in 2 reads, want 2", loads)
	}
	write("old", time.Hour)
	loads = 0
	get()
	if v := get(); v != "old" || loads != 1 {
		t.Errorf("an old file: %q after %d loads in 2 reads, want old after 1", v, loads)
	}
	write("rewritten", time.Hour/2)
	if v := get(); v != "rewritten" || loads != 2 {
		t.Errorf("a rewritten file: %q after %d loads, want rewritten after 2", v, loads)
	}
	// The file moves away and a link to it takes its name.
	moved := filepath.Join(dir, "moved")
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(moved, path); err != nil {
		t.Fatal(err)
	}
	get()
	if loads != 3 {
		t.Errorf("a link in the file's place was taken for it (%d loads, want 3)", loads)
	}
}
