// Package fsutil holds the file-system primitives every store of ocinet
// shares (the journal, the hosts store, the port reservations): flock(2)
// locks on lock files and byte-range locks in one, atomic and durable
// record writes, and the clean-up
// of the temporary files a crash leaves. Lock files and records are opened
// with O_NOFOLLOW and must be regular files: a symbolic link planted in a
// state directory is refused, never followed.
package fsutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Lock is a held flock(2) lock on a file, or a lock on a byte of it
// (LockRange).
type Lock struct {
	f      *os.File
	ranged bool
}

// LockMode says how a lock is held.
type LockMode int

const (
	// Shared locks exclude Exclusive ones only: readers.
	Shared LockMode = iota
	// Exclusive locks exclude every other lock: writers.
	Exclusive
)

// LockFile opens (creating it if needed) the regular file at path and locks
// it in mode, blocking until the lock is granted. Every call opens its own
// file description, so the lock also excludes other goroutines of this
// process, not only other processes.
func LockFile(path string, mode LockMode) (*Lock, error) {
	f, err := openLockFile(path)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_SH
	if mode == Exclusive {
		how = unix.LOCK_EX
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// CheckRegular fails unless f is a regular file.
func CheckRegular(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s)", f.Name(), fi.Mode().Type())
	}
	return nil
}

// openLockFile opens (creating it if needed) the regular file at path.
func openLockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := CheckRegular(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// LockRange opens (creating it if needed) the regular file at path and
// takes an exclusive lock on the one byte at offset off, blocking until it
// is granted: many independent locks in one file, each named by its
// offset. It is an open file description lock (F_OFD_SETLKW), which, like
// flock, excludes other goroutines of this process too, and goes when the
// file is closed.
func LockRange(path string, off int64) (*Lock, error) {
	f, err := openLockFile(path)
	if err != nil {
		return nil, err
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
	for {
		err = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLKW, &lk)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s at %d: %w", path, off, err)
	}
	return &Lock{f: f, ranged: true}, nil
}

// Unlock releases the lock. It is safe to call on a nil Lock.
func (l *Lock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	if !l.ranged {
		_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	}
	l.f.Close() // releases a range lock, which is the file description's
	l.f = nil
}

// TempPrefix starts the names of the temporary files WriteFileAtomic
// writes; [CleanTemp] removes those a crash left.
const TempPrefix = ".tmp-"

// IsTemp reports whether name is one of WriteFileAtomic's temporary files.
func IsTemp(name string) bool { return strings.HasPrefix(name, TempPrefix) }

// CleanTemp removes the temporary files that interrupted writes left in
// dir. Call it under the lock that every writer of dir holds.
func CleanTemp(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if IsTemp(e.Name()) && e.Type().IsRegular() {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// WriteFileAtomic replaces path with data durably: it writes a temporary file
// in the same directory, fsyncs it, renames it over path and fsyncs the
// directory. A crash leaves either the old or the new content (and maybe a
// temporary file, which CleanTemp removes). Use it for what must outlive a
// power loss: configuration.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return writeAtomic(path, data, perm, true)
}

// ReplaceFile replaces path with data atomically but does not fsync the
// directory: a crash of the process, or of the machine, leaves the old or
// the new content whole, and after a power loss the replacement itself may
// be lost. Use it for state that describes what a reboot ends and must be
// whole after it (the first record of an attachment's journal): it saves a
// directory fsync per write (about 0.2 ms).
func ReplaceFile(path string, data []byte, perm os.FileMode) error {
	return writeAtomic(path, data, perm, false)
}

// ReplaceFileNoSync replaces path with data atomically for the processes
// of this boot, with no fsync at all: after a crash of the machine the
// file may hold the old content, the new, or a part of either. Use it for
// state that a reboot ends, whose readers know a file older than the boot
// for a crash's leftover.
func ReplaceFileNoSync(path string, data []byte, perm os.FileMode) error {
	return replace(path, data, perm, false)
}

// Remove deletes path; a missing file is not an error. Like ReplaceFile,
// it does not fsync the directory.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

func writeAtomic(path string, data []byte, perm os.FileMode, syncDir bool) error {
	if err := replace(path, data, perm, true); err != nil {
		return err
	}
	if !syncDir {
		return nil
	}
	return SyncDir(filepath.Dir(path))
}

// replace writes data to a temporary file beside path (fsynced when sync
// is set) and renames it over path.
func replace(path string, data []byte, perm os.FileMode, sync bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, TempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if perm != 0o600 { // CreateTemp makes the file 0600
		if err := tmp.Chmod(perm); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("write %s: fsync: %w", path, err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("write %s: rename: %w", path, err)
	}
	ok = true
	return nil
}

// SyncDir fsyncs a directory so that a rename or unlink in it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// RemoveDurable deletes path (a missing file is not an error) and fsyncs its
// directory.
func RemoveDurable(path string) error {
	if err := os.Remove(path); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}
