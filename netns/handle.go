package netns

import (
	"errors"
	"os"
)

// NetNS is an open network namespace: a file descriptor that keeps the
// namespace alive and identifies it for as long as the handle is open,
// whatever later happens to the path it was opened from. Get one with
// [Open]; Close it when done. A NetNS may be used from several goroutines;
// a [NetNS.Do] that runs while it is closed has either entered the
// namespace already or fails with ErrClosed.
type NetNS struct {
	f    *os.File
	path string
	id   nsID
}

// nsID identifies a namespace: the device and inode of its nsfs file.
type nsID struct{ dev, ino uint64 }

// Path returns the path the namespace was opened from.
func (n *NetNS) Path() string { return n.path }

// Fd returns the namespace's file descriptor, for APIs that take one
// (setns(2), a netlink handle opened inside the namespace, nftables'
// WithNetNSFd). It stays valid until Close.
func (n *NetNS) Fd() uintptr { return n.f.Fd() }

// Close releases the handle. Closing twice is not an error.
func (n *NetNS) Close() error {
	if n == nil || n.f == nil {
		return nil
	}
	err := n.f.Close()
	if err != nil && errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}
