package leakcheck

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// LeaseDirs names the network directories in host-local's data
// directory (Config.CNIDataDir).
func LeaseDirs(c Config) map[string]bool {
	c = c.withDefaults()
	dirs := map[string]bool{}
	ents, _ := os.ReadDir(c.CNIDataDir)
	for _, e := range ents {
		if e.IsDir() {
			dirs[e.Name()] = true
		}
	}
	return dirs
}

// RemoveNewLeaseDirs removes what host-local leaves of a network once its
// last lease is gone, for each network directory that is not in before:
// its lock file and its last_reserved_ip.N files, which neither the
// plugin nor the in-process datapath removes, then the directory. A
// directory that holds anything else (a lease, which the oracle reports)
// stays, with all of it. It returns the errors of the removals.
func RemoveNewLeaseDirs(before map[string]bool, c Config) error {
	c = c.withDefaults()
	var errs []error
	for name := range LeaseDirs(c) {
		if before[name] {
			continue
		}
		dir := filepath.Join(c.CNIDataDir, name)
		ents, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		own := true
		for _, e := range ents {
			own = own && !e.IsDir() && (e.Name() == "lock" || strings.HasPrefix(e.Name(), "last_reserved_ip."))
		}
		if !own {
			continue
		}
		for _, e := range ents {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		// A lease made meanwhile keeps the directory.
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
