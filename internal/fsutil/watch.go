package fsutil

import (
	"encoding/binary"
	"errors"
	"sync"

	"golang.org/x/sys/unix"
)

// DirWatch reports whether a directory changed: an entry made, removed,
// renamed or changed in attributes, a file in it written. A program keeps
// what it read of a directory while its watch reports no change but the
// program's own; a writer that keeps what it read drains its own changes
// before it lets others write (as under the directory's lock, which every
// writer takes):
//
//	if w.Changed() { read the directory again }
//	... write ...
//	w.Changed() // the writes' own events
//
// Every DirWatch of the process shares one inotify instance (the kernel
// allows a user 128 of them, shared with every other program; watches are
// plentiful).
type DirWatch struct {
	dir      string
	dev, ino uint64
	wd       int32
	changed  bool // under watcher's lock
	gone     bool // under watcher's lock: the kernel dropped the watch
}

// watcher is the process's inotify instance and its watches.
var watcher struct {
	sync.Mutex
	fd      int // 0: not made yet; -1: refused
	watches map[int32][]*DirWatch
	buf     []byte
}

const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MODIFY | unix.IN_ATTRIB |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF |
	unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW

// WatchDir watches the directory dir (not a symbolic link). The watch is of
// the directory dir named both before and after the watch was made.
func WatchDir(dir string) (*DirWatch, error) {
	var before unix.Stat_t
	if err := unix.Lstat(dir, &before); err != nil {
		return nil, err
	}
	watcher.Lock()
	defer watcher.Unlock()
	if watcher.fd == 0 {
		fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
		if err != nil {
			watcher.fd = -1
			return nil, err
		}
		watcher.fd, watcher.watches, watcher.buf = fd, map[int32][]*DirWatch{}, make([]byte, 16<<10)
	}
	if watcher.fd < 0 {
		return nil, errors.New("no inotify instance")
	}
	drainLocked() // the events so far belong to the watches before this one
	wd, err := unix.InotifyAddWatch(watcher.fd, dir, watchMask)
	if err != nil {
		return nil, err
	}
	w := &DirWatch{dir: dir, dev: before.Dev, ino: before.Ino, wd: int32(wd)}
	watcher.watches[w.wd] = append(watcher.watches[w.wd], w)
	if !w.same() {
		w.closeLocked()
		return nil, errors.New("the directory was replaced while it was being watched")
	}
	return w, nil
}

// Changed reports whether anything happened to the directory since the
// watch was made or since the last call, and whether it may have: the
// watch lost (the directory removed or moved, its path naming another
// directory now), events lost (the kernel's queue overflowed), or the
// watch closed. Once the watch is lost, every call reports a change.
func (w *DirWatch) Changed() bool {
	watcher.Lock()
	defer watcher.Unlock()
	if !drainLocked() {
		for _, ws := range watcher.watches {
			for _, o := range ws {
				o.changed = true
			}
		}
	}
	changed := w.changed || w.gone || !w.same()
	w.changed = false
	return changed
}

// Lost reports whether the watch no longer sees the directory's changes:
// the kernel dropped it (the directory removed or moved, its file system
// unmounted), the path names another directory now, or it was closed.
func (w *DirWatch) Lost() bool {
	watcher.Lock()
	defer watcher.Unlock()
	return w.gone || !w.same()
}

// Close ends the watch; Changed reports a change from then on.
func (w *DirWatch) Close() {
	watcher.Lock()
	defer watcher.Unlock()
	w.closeLocked()
}

func (w *DirWatch) closeLocked() {
	if w.gone {
		return
	}
	w.gone = true
	ws := watcher.watches[w.wd]
	for i, o := range ws {
		if o == w {
			ws = append(ws[:i:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) > 0 {
		watcher.watches[w.wd] = ws
		return
	}
	delete(watcher.watches, w.wd)
	_, _ = unix.InotifyRmWatch(watcher.fd, uint32(w.wd))
}

// same reports whether the watched path still names the directory watched.
func (w *DirWatch) same() bool {
	var st unix.Stat_t
	return unix.Lstat(w.dir, &st) == nil && st.Dev == w.dev && st.Ino == w.ino
}

// drainLocked reads every queued event and marks the watches they name;
// false when events may have been lost (an overflow, or reading failed).
func drainLocked() bool {
	lost := false
	for {
		n, err := unix.Read(watcher.fd, watcher.buf)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return !lost
		case err != nil || n <= 0:
			return false
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			wd := int32(binary.NativeEndian.Uint32(watcher.buf[off:]))
			mask := binary.NativeEndian.Uint32(watcher.buf[off+4:])
			off += unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(watcher.buf[off+12:]))
			if mask&unix.IN_Q_OVERFLOW != 0 {
				lost = true
			}
			for _, w := range watcher.watches[wd] {
				w.changed = true
				if mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_UNMOUNT) != 0 {
					w.gone = true
				}
			}
			if mask&unix.IN_IGNORED != 0 {
				delete(watcher.watches, wd) // the kernel may give wd to a new watch
			}
		}
	}
}

// DirCache keeps a value read from a directory (an index of its files)
// from one use to the next while a DirWatch shows no change but the
// user's own. It is for a user that reads and writes the directory under
// a lock every writer takes: Get and Put are called with the lock held,
// so that the events between them are the user's. The watch is made when
// the directory is read the second time: a process that reads it once (a
// hook) takes none of the kernel's inotify instances, 128 per user and
// shared with every other program of the user, and does not wait at its
// exit for the kernel to free the watch (an RCU grace period, several ms
// here). The zero DirCache caches
// nothing; it is not safe for concurrent use.
type DirCache[T any] struct {
	dir   string
	w     *DirWatch
	v     T
	ok    bool
	reads int
}

// NewDirCache returns a DirCache of dir.
func NewDirCache[T any](dir string) *DirCache[T] { return &DirCache[T]{dir: dir} }

// Get returns the value kept by the last Put when the directory has not
// changed since; otherwise ok is false, the caller reads the directory
// (the watch is made, or made again, before it does) and Puts what it
// read.
func (c *DirCache[T]) Get() (v T, ok bool) {
	if c == nil || c.dir == "" {
		return v, false
	}
	if c.w != nil {
		if !c.w.Changed() && c.ok {
			return c.v, true
		}
		if c.w.Lost() {
			c.w.Close()
			c.w = nil
		}
	}
	var zero T
	c.v, c.ok = zero, false
	if c.w == nil && c.reads > 0 {
		c.w, _ = WatchDir(c.dir) // without a watch nothing is kept
	}
	c.reads++
	return zero, false
}

// Put keeps v for the next Get, once the caller's own changes to the
// directory are made (their events are dropped here). ok false keeps
// nothing (the caller did not read the directory, or does not know what
// its writes left).
func (c *DirCache[T]) Put(v T, ok bool) {
	if c == nil || c.w == nil {
		return
	}
	c.w.Changed()
	if c.w.Lost() {
		c.w.Close()
		c.w = nil
		ok = false
	}
	if !ok {
		var zero T
		v = zero
	}
	c.v, c.ok = v, ok
}

// Watching reports whether the cache has a watch: it has read the
// directory twice.
func (c *DirCache[T]) Watching() bool { return c != nil && c.w != nil }

// Close ends the watch.
func (c *DirCache[T]) Close() {
	if c != nil && c.w != nil {
		c.w.Close()
		c.w = nil
	}
}
