//go:build !linux

package portmap

import (
	"fmt"
	"runtime"
)

// readKernelFile fails: the host's sockets and local port range are read
// from Linux's /proc.
func readKernelFile(name string) ([]byte, error) {
	return nil, fmt.Errorf("read %s: host port state is only available on Linux, not %s", name, runtime.GOOS)
}

// listeningTCP fails: see readKernelFile.
func listeningTCP() ([]socket, error) {
	return nil, fmt.Errorf("list listening TCP sockets: only available on Linux, not %s", runtime.GOOS)
}
