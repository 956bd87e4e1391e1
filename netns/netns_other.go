//go:build !linux

package netns

import "context"

// Create is not supported on this system.
func Create(dir, name string) (string, error) { return "", ErrNotSupported }

// Pin is not supported on this system.
func Pin(dir, name string, pid int) (string, error) { return "", ErrNotSupported }

// Remove is not supported on this system.
func Remove(path string) error { return ErrNotSupported }

// Closed reports true: no namespace can be held on this system.
func Closed(path string) bool { return true }

// Check is not supported on this system.
func Check(path string) error { return ErrNotSupported }

// Open is not supported on this system.
func Open(path string) (*NetNS, error) { return nil, ErrNotSupported }

// Do is not supported on this system.
func (n *NetNS) Do(fn func() error) error { return ErrNotSupported }

// List is not supported on this system.
func List(dir string) ([]string, error) { return nil, ErrNotSupported }

// Sweep is not supported on this system.
func Sweep(dir string, orphan func(path string) bool) ([]string, error) {
	return nil, ErrNotSupported
}

// Hold is not supported on this system.
func Hold(ctx context.Context, path string) (string, func(), error) {
	return "", nil, ErrNotSupported
}
