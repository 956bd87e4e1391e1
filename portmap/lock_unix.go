//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris

package portmap

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// oNoFollow makes an open fail when the last path element is a symbolic
// link.
const oNoFollow = unix.O_NOFOLLOW

// flock takes (exclusive) or a shared flock on f, waiting for it.
func flock(f *os.File, exclusive bool) error {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			if err != nil {
				return fmt.Errorf("flock %s: %w", f.Name(), err)
			}
			return nil
		}
	}
}
