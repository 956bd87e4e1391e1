package fsutil

import (
	"path/filepath"
	"testing"
	"time"
)

// A range lock excludes another lock of the same byte, in the same
// process too, until it is released; a lock of another byte of the same
// file is granted at once.
func TestLockRange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locks")
	first, err := LockRange(path, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	other, err := LockRange(path, 1<<40+1)
	if err != nil {
		t.Fatal(err)
	}
	other.Unlock()
	got := make(chan *Lock)
	go func() {
		l, err := LockRange(path, 1<<40)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	select {
	case l := <-got:
		l.Unlock()
		t.Fatal("a second lock of the same byte was granted while the first was held")
	case <-time.After(200 * time.Millisecond):
	}
	first.Unlock()
	select {
	case l := <-got:
		l.Unlock()
	case <-time.After(10 * time.Second):
		t.Fatal("the second lock was not granted after the first was released")
	}
}
