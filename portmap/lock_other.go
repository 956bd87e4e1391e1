//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris)

package portmap

import (
	"fmt"
	"os"
	"runtime"
)

const oNoFollow = 0

// flock fails: the Allocator needs flock(2) to share its directory between
// processes safely.
func flock(f *os.File, exclusive bool) error {
	return fmt.Errorf("flock %s: not supported on %s", f.Name(), runtime.GOOS)
}
