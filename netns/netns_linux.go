package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Create makes a new, empty network namespace and binds it to dir/name. An
// empty dir means [DefaultDir]; an empty name means [RandomName] (a name
// derived from a container ID is the other usual choice: it lets a sweep
// after a crash find the namespace's owner). It returns the namespace's
// path. The name must not hold a namespace yet (ErrExists); a plain
// leftover file of that name is stale and is reused.
//
// The namespace is made on a fresh goroutine locked to its own OS thread,
// which is switched back to its original namespace before it is unlocked;
// if switching back fails the goroutine exits locked and the runtime
// discards the thread. The caller's thread never changes namespace.
func Create(dir, name string) (string, error) {
	if dir == "" {
		dir = DefaultDir
	}
	if name == "" {
		name = RandomName()
	}
	if err := validName(name); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	if _, err := identify(path); err == nil {
		return "", fmt.Errorf("create namespace %s: %w", path, ErrExists)
	}
	// The new namespace lives on as long as f is open; it is bound to the
	// name from this goroutine, outside the thread that made it.
	var f *os.File
	err := onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		var err error
		f, err = os.Open("/proc/thread-self/ns/net")
		return err
	})
	if err != nil {
		if f != nil {
			f.Close()
		}
		return "", fmt.Errorf("create namespace %s: %w", path, err)
	}
	defer f.Close()
	return bind(dir, name, f, "create namespace")
}

// Pin binds the network namespace of process pid onto dir/name (an empty dir
// means [DefaultDir]) and returns the path. The namespace then lives until
// [Remove], whatever happens to the process.
//
// The process's namespace is opened once and the bind mount is made from
// that open file, so a PID reused between the check and the mount cannot
// redirect it. The host's own namespace is refused (ErrHostNamespace).
// Pinning the same namespace to the same name again is a no-op; a name that
// holds a different namespace is refused with ErrExists.
func Pin(dir, name string, pid int) (string, error) {
	if dir == "" {
		dir = DefaultDir
	}
	if err := validName(name); err != nil {
		return "", err
	}
	if pid <= 0 {
		return "", fmt.Errorf("pin namespace of pid %d: %w", pid, ErrInvalid)
	}
	ns, err := Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", fmt.Errorf("pin namespace of pid %d: no such process: %w", pid, ErrNotFound)
		}
		return "", fmt.Errorf("pin namespace of pid %d: %w", pid, err)
	}
	defer ns.Close()
	return bind(dir, name, ns.f, fmt.Sprintf("pin namespace of pid %d", pid))
}

// bind mounts the namespace open as f onto dir/name, holding the
// directory's lock from the preparation of the directory to the mount, so
// that two binds of one name, or a sweep, never interleave with it.
func bind(dir, name string, f *os.File, what string) (string, error) {
	path := filepath.Join(dir, name)
	id, err := checkFile(f, path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	unlock, err := lockDir(dir, true)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	defer unlock()
	if cur, err := identify(path); err == nil {
		if cur == id {
			return path, nil
		}
		return "", fmt.Errorf("%s to %s: it holds another namespace: %w", what, path, ErrExists)
	}
	if err := createMountPoint(path); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("%s: %w", what, err)
	}
	var merr error
	if err := rc.Control(func(fd uintptr) {
		merr = unix.Mount("/proc/self/fd/"+strconv.Itoa(int(fd)), path, "none", unix.MS_BIND, "")
	}); err != nil {
		merr = err
	}
	if merr != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("%s to %s: bind mount: %w", what, path, merr)
	}
	return path, nil
}

// Remove unmounts and deletes a namespace file made by [Create] or [Pin] (or
// by `ip netns add`). The namespace itself disappears once no process, open
// handle or other mount holds it. Removing a path that does not exist is not
// an error; a plain empty file that holds no namespace is stale and is
// deleted. Any other file is left alone (ErrNotNetNS).
//
// The unmount is lazy (MNT_DETACH) and cannot fail because the namespace is
// in use. Deleting the file fails with EBUSY while it is still a mount
// point, for example when it was mounted twice: Remove then unmounts again
// and retries, for at most a couple of seconds, and then gives up with
// ErrBusy.
func Remove(path string) error {
	if path == "" {
		return fmt.Errorf("remove namespace: empty path: %w", ErrInvalid)
	}
	if _, err := identify(path); err != nil {
		switch {
		case errors.Is(err, ErrNotFound):
			return nil
		case errors.Is(err, ErrNotNetNS) && plainEmpty(path):
			// A stale mount point: nothing mounted, nothing to unmount.
		default:
			return fmt.Errorf("remove namespace: %w", err)
		}
	}
	deadline := time.Now().Add(removeWait)
	for attempt := 0; ; attempt++ {
		uerr := unix.Unmount(path, unix.MNT_DETACH)
		if uerr != nil && uerr != unix.EINVAL && uerr != unix.ENOENT {
			return fmt.Errorf("remove namespace %s: unmount: %w", path, uerr)
		}
		err := unix.Unlink(path)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.EBUSY {
			return fmt.Errorf("remove namespace %s: %w", path, err)
		}
		if attempt >= removeAttempts || time.Now().After(deadline) {
			return fmt.Errorf("remove namespace %s: still a mount point after %d attempts: %w: %w", path, attempt+1, ErrBusy, err)
		}
		if uerr == nil {
			continue // a mount came off: there may be another under it
		}
		time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
	}
}

// Bounds of Remove's retries on EBUSY.
const (
	removeWait     = 2 * time.Second
	removeAttempts = 100
)

// plainEmpty reports whether path is an empty regular file that is not a
// namespace: what a crash between creating a mount point and mounting on
// it, or an unmount without the unlink, leaves behind.
func plainEmpty(path string) bool {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != 0 {
		return false
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return false
	}
	return fs.Type != unix.NSFS_MAGIC && fs.Type != unix.PROC_SUPER_MAGIC
}

// createMountPoint creates the empty file a namespace is bound onto, with
// O_EXCL. It fails with ErrExists if a namespace is already bound there; a
// plain leftover file is stale and is reused. The caller holds the
// directory's lock.
func createMountPoint(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o444)
	if err == nil {
		return unix.Close(fd)
	}
	if err != unix.EEXIST {
		return fmt.Errorf("namespace %s: create mount point: %w", path, err)
	}
	if _, ierr := identify(path); ierr == nil {
		return fmt.Errorf("namespace %s: %w", path, ErrExists)
	}
	if !plainEmpty(path) {
		return fmt.Errorf("namespace %s: exists and is not an empty regular file: %w", path, ErrExists)
	}
	return nil
}

// lockDir creates dir if needed, takes an exclusive flock(2) on it (the lock
// `ip netns` takes too) and returns the function that releases it. With
// share, it also makes dir a shared mount: if dir is not a mount point yet
// it is bind-mounted onto itself first (recursively, so that namespaces
// already in it stay visible), as `ip netns` and podman do. Taking the lock
// first means concurrent callers never stack two self-mounts.
func lockDir(dir string, share bool) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("namespace directory %s: %w", dir, err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("namespace directory %s: open: %w", dir, err)
	}
	if err := retryEINTR(func() error { return unix.Flock(fd, unix.LOCK_EX) }); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("namespace directory %s: lock: %w", dir, err)
	}
	unlock := func() { unix.Close(fd) } // closing the only descriptor drops the lock
	if !share {
		return unlock, nil
	}
	// Already a mount point: make it shared (a no-op when it is).
	err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == unix.EINVAL {
		// Not a mount point yet: bind it onto itself, then make it shared.
		err = unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, "")
		if err != nil {
			unlock()
			return nil, fmt.Errorf("namespace directory %s: bind onto itself: %w", dir, err)
		}
		err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		unlock()
		return nil, fmt.Errorf("namespace directory %s: make shared: %w", dir, err)
	}
	return unlock, nil
}

func retryEINTR(call func() error) error {
	for {
		if err := call(); err != unix.EINTR {
			return err
		}
	}
}
