package netns

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Open opens the network namespace at path (a file in a namespace
// directory, or /proc/<pid>/ns/net) and returns a handle that keeps it
// alive until Close. It fails with ErrNotFound when path does not exist,
// ErrNotNetNS when it exists but is not a network namespace (a plain file,
// a mount or user namespace, a directory), and ErrHostNamespace when it is
// the host's own network namespace: nothing in this package attaches to
// that one.
func Open(path string) (*NetNS, error) {
	f, id, err := openNS(path)
	if err != nil {
		return nil, err
	}
	if isHost(id) {
		f.Close()
		return nil, fmt.Errorf("namespace %s: %w", path, ErrHostNamespace)
	}
	return &NetNS{f: f, path: path, id: id}, nil
}

// Check reports whether path is a network namespace other than the host's:
// nil, or an error wrapping ErrNotFound, ErrNotNetNS or ErrHostNamespace.
func Check(path string) error {
	ns, err := Open(path)
	if err != nil {
		return err
	}
	return ns.Close()
}

// Closed reports whether path no longer holds a namespace: it is missing, or
// it is a plain leftover file (a mount point whose namespace was unmounted,
// or never mounted after a crash). [Remove] deletes such a file.
func Closed(path string) bool {
	_, err := identify(path)
	return err != nil
}

// identify returns the identity of the network namespace at path.
func identify(path string) (nsID, error) {
	f, id, err := openNS(path)
	if err != nil {
		return nsID{}, err
	}
	f.Close()
	return id, nil
}

// openNS opens path and checks that it is a network namespace. A path that
// is not a regular file after symbolic links (nsfs files are) is refused
// without being opened, and the open does not block, so that a FIFO or a
// device put where a namespace was expected is never waited on or driven.
func openNS(path string) (*os.File, nsID, error) {
	if path == "" {
		return nil, nsID{}, fmt.Errorf("namespace: empty path: %w", ErrInvalid)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR {
			return nil, nsID{}, fmt.Errorf("namespace %s: %w", path, ErrNotFound)
		}
		return nil, nsID{}, fmt.Errorf("namespace %s: stat: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, nsID{}, fmt.Errorf("namespace %s: %w", path, ErrNotNetNS)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		if err == unix.ENOENT {
			return nil, nsID{}, fmt.Errorf("namespace %s: %w", path, ErrNotFound)
		}
		return nil, nsID{}, fmt.Errorf("namespace %s: open: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	id, err := checkFile(f, path)
	if err != nil {
		f.Close()
		return nil, nsID{}, err
	}
	return f, id, nil
}

// checkFile returns the identity of the open namespace file f, or an error
// wrapping ErrNotNetNS when f is not a network namespace: its file system
// must be nsfs (or proc, on kernels before 3.19) and the kernel must say it
// is a network namespace.
func checkFile(f *os.File, path string) (nsID, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nsID{}, fmt.Errorf("namespace %s: %w", path, err)
	}
	var id nsID
	var cerr error
	err = rc.Control(func(fd uintptr) {
		var fs unix.Statfs_t
		if err := unix.Fstatfs(int(fd), &fs); err != nil {
			cerr = fmt.Errorf("namespace %s: statfs: %w", path, err)
			return
		}
		if fs.Type != unix.NSFS_MAGIC && fs.Type != unix.PROC_SUPER_MAGIC {
			cerr = fmt.Errorf("namespace %s: %w", path, ErrNotNetNS)
			return
		}
		kind, err := unix.IoctlRetInt(int(fd), unix.NS_GET_NSTYPE)
		if err != nil || kind != unix.CLONE_NEWNET {
			cerr = fmt.Errorf("namespace %s: %w", path, ErrNotNetNS)
			return
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(fd), &st); err != nil {
			cerr = fmt.Errorf("namespace %s: stat: %w", path, err)
			return
		}
		id = nsID{dev: st.Dev, ino: st.Ino}
	})
	if err == nil {
		err = cerr
	}
	return id, err
}

// isHost reports whether id is the network namespace of PID 1 or the one
// this process started in. PID 1's may be unreadable inside a container;
// then this process's own is the host's as far as it can tell.
func isHost(id nsID) bool {
	var st unix.Stat_t
	if err := unix.Stat("/proc/1/ns/net", &st); err == nil && st.Dev == id.dev && st.Ino == id.ino {
		return true
	}
	return startNSErr == nil && id == startNS
}

// startNS is the network namespace this process started in, read while
// the package initializes, when no goroutine can have taken a thread
// elsewhere yet. /proc/self/ns/net is no substitute: it names the main
// thread's namespace, which a goroutine locked to the main thread (as
// netlink's NewHandleAt locks the one it runs on) may have entered for a
// moment, and a container's namespace would then pass for the host's.
var startNS, startNSErr = identifyThread()

func identifyThread() (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return nsID{}, err
	}
	return nsID{dev: st.Dev, ino: st.Ino}, nil
}
