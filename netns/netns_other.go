//go:build !linux

package netns

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
