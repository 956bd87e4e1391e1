package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// staleAfter is how old a plain file in a namespace directory must be before
// Sweep deletes it: other programs (`ip netns add`, containerd) create the
// empty mount point a moment before they mount on it, without any lock this
// package could take.
const staleAfter = time.Minute

// List returns the paths of the network namespaces bound in dir (an empty
// dir means [DefaultDir]), sorted by name. Entries that hold no network
// namespace are not listed. A missing directory holds none.
func List(dir string) ([]string, error) {
	if dir == "" {
		dir = DefaultDir
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list namespaces in %s: %w", dir, err)
	}
	var paths []string
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		if _, err := identify(path); err == nil {
			paths = append(paths, path)
		}
	}
	return paths, nil
}

// Sweep removes, from dir (an empty dir means [DefaultDir]), the namespaces
// that orphan says belong to nobody, and the stale plain files that
// crashes leave (empty, not mounted, older than a minute). It returns the
// paths it removed, and the errors of those it could not remove, joined.
//
// orphan is called once per namespace, with its path, and without any lock
// held. A namespace made by [Create] is an orphan only for a moment, until
// its owner records it; a caller that sweeps while it also creates must
// make orphan see that record, or sweep under its own lock (at start-up,
// for example, before anything is created).
func Sweep(dir string, orphan func(path string) bool) ([]string, error) {
	if dir == "" {
		dir = DefaultDir
	}
	if orphan == nil {
		return nil, fmt.Errorf("sweep namespaces in %s: nil predicate: %w", dir, ErrInvalid)
	}
	live, err := List(dir)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	var removed []string
	var errs []error
	for _, path := range live {
		if !orphan(path) {
			continue
		}
		if err := Remove(path); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, path)
	}
	stale, err := sweepStale(dir)
	removed = append(removed, stale...)
	return removed, errors.Join(append(errs, err)...)
}

// sweepStale deletes the stale plain files in dir, under the directory's
// lock so that a concurrent [Create] or [Pin] of this package, which
// creates its mount point and mounts on it under the same lock, is never
// caught in between.
func sweepStale(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("sweep namespaces in %s: %w", dir, err)
	}
	unlock, err := lockDir(dir, false)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	defer unlock()
	cutoff := time.Now().Add(-staleAfter)
	var removed []string
	var errs []error
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		if !plainEmpty(path) {
			continue
		}
		if info, err := os.Lstat(path); err != nil || info.ModTime().After(cutoff) {
			continue
		}
		if err := unix.Unlink(path); err != nil && err != unix.ENOENT {
			errs = append(errs, fmt.Errorf("sweep namespaces: remove stale file %s: %w", path, err))
			continue
		}
		removed = append(removed, path)
	}
	return removed, errors.Join(errs...)
}
