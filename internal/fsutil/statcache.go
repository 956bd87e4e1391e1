package fsutil

import (
	"os"
	"sync"
	"syscall"
	"time"
)

// StatCache keeps what was decoded from files, each entry valid while its
// file's device, inode, size and modification time are the same, so that
// a reader of a whole directory decodes only the files that changed. A
// file modified less than RacyFor before it was read is not kept: file
// times tick coarsely, and a rewrite of the same size within one tick (or
// a new file that got a freed inode back) would look unchanged.
type StatCache[T any] struct {
	// NoFollow keys an entry by the file at path itself, a symbolic link
	// included, for a reader that refuses links (its load fails on one,
	// and a link never passes for the file it names).
	NoFollow bool

	mu sync.Mutex
	m  map[string]statEntry[T]
}

// RacyFor is how recent a file's modification must be for StatCache not
// to keep what it decoded.
const RacyFor = 2 * time.Second

// maxStatEntries bounds a StatCache: past it, it starts over.
const maxStatEntries = 4096

type statEntry[T any] struct {
	key statKey
	v   T
}

type statKey struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

// Get returns what load decodes from the file at path (following symbolic
// links, as os.ReadFile does, unless NoFollow), from the cache when the
// file is unchanged.
// clone makes the caller's own copy of a kept value (the cache keeps one
// copy, and hands out others).
func (c *StatCache[T]) Get(path string, load func() (T, error), clone func(T) T) (T, error) {
	stat := os.Stat
	if c.NoFollow {
		stat = os.Lstat
	}
	fi, err := stat(path)
	if err != nil {
		var zero T
		return zero, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return load()
	}
	key := statKey{dev: uint64(st.Dev), ino: st.Ino, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	c.mu.Lock()
	e, hit := c.m[path]
	c.mu.Unlock()
	if hit && e.key == key {
		return clone(e.v), nil
	}
	v, err := load()
	if err != nil {
		return v, err
	}
	if time.Since(fi.ModTime()) > RacyFor {
		c.mu.Lock()
		if c.m == nil || len(c.m) >= maxStatEntries {
			c.m = map[string]statEntry[T]{}
		}
		c.m[path] = statEntry[T]{key: key, v: clone(v)}
		c.mu.Unlock()
	}
	return v, nil
}

// Has reports whether path has an entry (for tests).
func (c *StatCache[T]) Has(path string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[path]
	return ok
}
