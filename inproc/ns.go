package inproc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ocinet/ocinet/netns"
)

// container is an open container namespace and a netlink handle in it.
type container struct {
	ns *netns.NetNS
	nl *netlink.Handle
}

// openContainer opens the namespace at path and a netlink handle inside it.
// A namespace that is gone wraps ErrNotFound; a path that is not a network
// namespace (or is the host's) wraps ErrInvalid.
func openContainer(path string) (*container, error) {
	n, err := openNS(path)
	if err != nil {
		return nil, err
	}
	// Route requests only: a handle for every netlink family would open
	// (and enter the namespace for) three sockets.
	h, err := netlink.NewHandleAt(vnetns.NsHandle(int(n.Fd())), unix.NETLINK_ROUTE)
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("netlink in namespace %s: %w", path, err)
	}
	return &container{ns: n, nl: h}, nil
}

// openNS opens the container's namespace at path.
func openNS(path string) (*netns.NetNS, error) {
	if path == "" {
		return nil, fmt.Errorf("no namespace given (CNI_NETNS): %w", ErrInvalid)
	}
	n, err := netns.Open(path)
	if err != nil {
		if errors.Is(err, netns.ErrNotFound) {
			return nil, fmt.Errorf("namespace %s: %w: %w", path, ErrNotFound, err)
		}
		return nil, fmt.Errorf("namespace %s: %w: %w", path, ErrInvalid, err)
	}
	return n, nil
}

// hostHandle opens a netlink route socket in the calling thread's
// namespace (the host's) for the requests of one plugin call: netlink's
// package functions open and close a socket for each request.
func hostHandle() (*netlink.Handle, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return h, nil
}

func (c *container) Close() {
	c.nl.Close()
	c.ns.Close()
}

// gone reports whether err says the namespace no longer exists (or the path
// no longer holds one), which DEL treats as nothing left to do inside.
func gone(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, netns.ErrNotNetNS)
}

// sysctl is one write below /proc/sys; path uses '/' as separator.
type sysctl struct {
	path, value string
	// onlyIfNot: skip the write when the current value is this.
	onlyIfNot string
	// mustSucceed: a failure is an error (else ignored, as the plugins do).
	mustSucceed bool
}

// writeSysctls writes sysctls in the current thread's network namespace.
func writeSysctls(list []sysctl) error {
	for _, s := range list {
		file := filepath.Join("/proc/sys", s.path)
		if s.onlyIfNot != "" {
			if b, err := os.ReadFile(file); err == nil && strings.TrimSpace(string(b)) == s.onlyIfNot {
				continue
			}
		}
		if err := os.WriteFile(file, []byte(s.value), 0o644); err != nil && s.mustSucceed {
			return fmt.Errorf("sysctl %s=%s: %w", strings.ReplaceAll(s.path, "/", "."), s.value, err)
		}
	}
	return nil
}

// retryDump runs a netlink dump again when the kernel reports that it was
// interrupted by a concurrent change (at most 5 tries).
func retryDump[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for range 5 {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}

func mkdirAll(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("make %s: %w", dir, err)
	}
	return nil
}

// linkNotFound reports whether err is netlink's "no such link".
func linkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// validIfName checks a CNI_IFNAME as the kernel would take it.
func validIfName(name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n\x00") {
		return fmt.Errorf("interface name %q (CNI_IFNAME): not a valid Linux interface name: %w", name, ErrInvalid)
	}
	return nil
}
