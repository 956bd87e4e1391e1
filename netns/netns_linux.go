package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Create makes a new, empty network namespace and binds it to dir/name. An
// empty dir means [DefaultDir]; an empty name means [RandomName]. It returns
// the namespace's path. The name must not exist yet (ErrExists); a plain
// leftover file of that name that holds no namespace is taken as stale and
// reused.
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
	if err := prepareDir(dir); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	if err := createMountPoint(path); err != nil {
		return "", err
	}
	errc := make(chan error, 1)
	go func() {
		// The new namespace is made on this goroutine's own locked thread,
		// which is switched back before it is unlocked. If switching back
		// fails, the goroutine exits still locked and the runtime discards
		// the thread instead of running other code in the wrong namespace.
		runtime.LockOSThread()
		self := "/proc/thread-self/ns/net"
		orig, err := os.Open(self)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("create namespace %s: %w", path, err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("create namespace %s: unshare: %w", path, err)
			return
		}
		err = unix.Mount(self, path, "none", unix.MS_BIND, "")
		if rerr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); rerr != nil {
			errc <- errors.Join(err, fmt.Errorf("create namespace %s: restore thread: %w", path, rerr))
			return // locked: the thread is discarded
		}
		runtime.UnlockOSThread()
		if err != nil {
			err = fmt.Errorf("create namespace %s: bind mount: %w", path, err)
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		_ = os.Remove(path)
		return "", err
	}
	return path, nil
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
	src := "/proc/" + strconv.Itoa(pid) + "/ns/net"
	f, err := os.Open(src)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("pin namespace of pid %d: no such process: %w", pid, ErrNotFound)
		}
		return "", fmt.Errorf("pin namespace of pid %d: %w", pid, err)
	}
	defer f.Close()
	id, err := checkFile(f, src)
	if err != nil {
		return "", fmt.Errorf("pin namespace of pid %d: %w", pid, err)
	}
	if isHost(id) {
		return "", fmt.Errorf("pin namespace of pid %d: %w", pid, ErrHostNamespace)
	}
	if err := prepareDir(dir); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	if cur, err := identify(path); err == nil {
		if cur == id {
			return path, nil
		}
		return "", fmt.Errorf("pin namespace of pid %d to %s: it holds another namespace: %w", pid, path, ErrExists)
	}
	if err := createMountPoint(path); err != nil {
		return "", err
	}
	fdPath := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	if err := unix.Mount(fdPath, path, "none", unix.MS_BIND, ""); err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("pin namespace of pid %d to %s: bind mount: %w", pid, path, err)
	}
	return path, nil
}

// Remove unmounts and deletes a namespace file made by [Create] or [Pin]. The
// namespace itself disappears once no process and no other mount holds it.
// Removing a path that does not exist is not an error; a plain file that
// holds no namespace is stale and is deleted.
func Remove(path string) error {
	if path == "" {
		return fmt.Errorf("remove namespace: empty path: %w", ErrInvalid)
	}
	// A lazy unmount cannot fail with EBUSY; the unlink can, briefly, while
	// another mount namespace still sees the mount. Retry that a few times.
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = unix.Unmount(path, unix.MNT_DETACH)
		if err != nil && err != unix.EINVAL && err != unix.ENOENT {
			return fmt.Errorf("remove namespace %s: unmount: %w", path, err)
		}
		err = os.Remove(path)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
	}
	return fmt.Errorf("remove namespace %s: %w", path, err)
}

// Closed reports whether path no longer holds a namespace: it is missing, or
// it is a plain leftover file.
func Closed(path string) bool {
	_, err := identify(path)
	return err != nil
}

// Check reports whether path is a network namespace other than the host's:
// nil, or an error wrapping ErrNotFound, ErrNotNetNS or ErrHostNamespace.
func Check(path string) error {
	id, err := identify(path)
	if err != nil {
		return err
	}
	if isHost(id) {
		return fmt.Errorf("namespace %s: %w", path, ErrHostNamespace)
	}
	return nil
}

// isHost reports whether id is the network namespace of PID 1 or of the
// calling process or thread. (PID 1's may be unreadable, inside a container; then the
// caller's own is the host's as far as this process can tell.)
func isHost(id nsID) bool {
	for _, host := range []string{"/proc/1/ns/net", "/proc/self/ns/net", "/proc/thread-self/ns/net"} {
		if h, err := identify(host); err == nil && h == id {
			return true
		}
	}
	return false
}

// nsID identifies a namespace: the device and inode of its nsfs file.
type nsID struct{ dev, ino uint64 }

// identify opens path and returns the identity of the network namespace it
// holds.
func identify(path string) (nsID, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nsID{}, fmt.Errorf("namespace %s: %w", path, ErrNotFound)
		}
		return nsID{}, fmt.Errorf("namespace %s: %w", path, err)
	}
	defer f.Close()
	return checkFile(f, path)
}

// checkFile returns the identity of the open namespace file f, or an error
// wrapping ErrNotNetNS when f is not a network namespace.
func checkFile(f *os.File, path string) (nsID, error) {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &fs); err != nil {
		return nsID{}, fmt.Errorf("namespace %s: statfs: %w", path, err)
	}
	if fs.Type != unix.NSFS_MAGIC && fs.Type != unix.PROC_SUPER_MAGIC {
		return nsID{}, fmt.Errorf("namespace %s: %w", path, ErrNotNetNS)
	}
	kind, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err != nil || kind != unix.CLONE_NEWNET {
		return nsID{}, fmt.Errorf("namespace %s: %w", path, ErrNotNetNS)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nsID{}, fmt.Errorf("namespace %s: stat: %w", path, err)
	}
	return nsID{dev: st.Dev, ino: st.Ino}, nil
}

// createMountPoint creates the empty file a namespace is bound onto. It
// fails with ErrExists if a namespace is already bound there; a plain
// leftover file is stale and is reused.
func createMountPoint(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("namespace %s: create mount point: %w", path, err)
	}
	if _, ierr := identify(path); ierr == nil {
		return fmt.Errorf("namespace %s: %w", path, ErrExists)
	}
	st, serr := os.Lstat(path)
	if serr != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("namespace %s: exists and is not a regular file: %w", path, ErrExists)
	}
	return nil
}

// prepareDir creates dir and makes it a shared mount, under an flock on the
// directory so that concurrent callers do not stack mounts.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("namespace directory %s: %w", dir, err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("namespace directory %s: open: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := flock(fd, unix.LOCK_EX); err != nil {
		return fmt.Errorf("namespace directory %s: lock: %w", dir, err)
	}
	defer func() { _ = unix.Flock(fd, unix.LOCK_UN) }()

	// Already a mount point: make it shared (a no-op when it is).
	err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == nil {
		return nil
	}
	if err != unix.EINVAL {
		return fmt.Errorf("namespace directory %s: make shared: %w", dir, err)
	}
	// Not a mount point yet: bind it onto itself, then make it shared.
	if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("namespace directory %s: bind onto itself: %w", dir, err)
	}
	if err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("namespace directory %s: make shared: %w", dir, err)
	}
	return nil
}

func flock(fd, how int) error {
	for {
		err := unix.Flock(fd, how)
		if err != unix.EINTR {
			return err
		}
	}
}
