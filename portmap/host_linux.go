package portmap

import "os"

// readKernelFile reads a /proc file of the calling process's network
// namespace.
func readKernelFile(name string) ([]byte, error) {
	return os.ReadFile(name)
}
