package fsutil

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestDirWatch: a watch reports each kind of change once, two watches of
// one directory (one kernel watch) both see it and closing one leaves the
// other working, and a removed directory's watch is lost.
func TestDirWatch(t *testing.T) {
	dir := t.TempDir()
	w1, err := WatchDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Close()
	w2, err := WatchDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if w1.Changed() || w2.Changed() {
		t.Fatal("a change before anything changed")
	}
	f := filepath.Join(dir, "f")
	for _, c := range []struct {
		what string
		do   func() error
	}{
		{"a file made", func() error { return os.WriteFile(f, []byte("a"), 0o600) }},
		{"a file written", func() error { return os.WriteFile(f, []byte("b"), 0o600) }},
		{"a file's mode", func() error { return os.Chmod(f, 0o644) }},
		{"a file renamed", func() error { return os.Rename(f, f+"2") }},
		{"a file removed", func() error { return os.Remove(f + "2") }},
	} {
		if err := c.do(); err != nil {
			t.Fatal(err)
		}
		if !w1.Changed() || !w2.Changed() {
			t.Errorf("%s: not seen by both watches", c.what)
		}
		if w1.Changed() || w2.Changed() {
			t.Errorf("%s: seen twice", c.what)
		}
	}
	w2.Close()
	if !w2.Changed() || !w2.Lost() {
		t.Error("a closed watch reports no change")
	}
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !w1.Changed() {
		t.Error("the other watch of the directory stopped seeing changes when one was closed")
	}
	if w1.Lost() {
		t.Error("lost while the directory is there")
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if !w1.Changed() || !w1.Lost() {
		t.Error("the directory's removal: the watch is not lost")
	}
	if !w1.Changed() {
		t.Error("a lost watch stopped reporting changes")
	}
}

// TestDirWatchOverflow: when the kernel drops events (more than its queue
// holds), every watch reports a change, those of other directories too.
func TestDirWatchOverflow(t *testing.T) {
	max := 16384
	if b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events"); err == nil {
		fmt.Sscan(string(b), &max)
	}
	if max > 100000 {
		t.Skipf("the kernel queues %d events: too many to overflow here", max)
	}
	busy, quiet := t.TempDir(), t.TempDir()
	wb, err := WatchDir(busy)
	if err != nil {
		t.Fatal(err)
	}
	defer wb.Close()
	wq, err := WatchDir(quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer wq.Close()
	var files [2]*os.File
	for i := range files {
		if files[i], err = os.Create(filepath.Join(busy, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		defer files[i].Close()
	}
	// One event per write: the kernel merges an event only with the one
	// queued just before it, so the writes alternate between two files.
	for i := 0; i <= max; i++ {
		if _, err := files[i%2].Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
	}
	if !wq.Changed() {
		t.Error("events were lost, but the other directory's watch reports no change")
	}
	if !wb.Changed() {
		t.Error("the busy directory reports no change")
	}
	if wq.Changed() || wb.Changed() {
		t.Error("a change reported again after the queue was read")
	}
}

// TestDirCache: nothing is kept until the directory has been read twice
// (the first reading makes no watch); then the value is kept until
// something else changes the directory, while the user's own changes,
// made between Get and Put, keep it.
func TestDirCache(t *testing.T) {
	dir := t.TempDir()
	c := NewDirCache[string](dir)
	defer c.Close()
	if _, ok := c.Get(); ok {
		t.Fatal("a value before any Put")
	}
	c.Put("one", true)
	if _, ok := c.Get(); ok {
		t.Fatal("kept after one reading, without a watch")
	}
	if err := os.WriteFile(filepath.Join(dir, "mine"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c.Put("two", true)
	if v, ok := c.Get(); !ok || v != "two" {
		t.Fatalf("Get = %q, %v; want two, kept across the user's own change", v, ok)
	}
	c.Put("two", true)
	if err := os.WriteFile(filepath.Join(dir, "theirs"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get(); ok {
		t.Error("kept after another's change")
	}
	c.Put("three", false)
	if _, ok := c.Get(); ok {
		t.Error("kept after a Put that kept nothing")
	}
}
