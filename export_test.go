package ocinet

import (
	"os"
	"syscall"
)

// CrashEnv names the environment variable that makes a test binary kill
// itself with SIGKILL at one named step of Attach or Detach (see
// crashPoint). Only the package's test binary honours it: this file is not
// part of the library.
const CrashEnv = "OCINET_TEST_CRASH_AT"

func init() {
	if step := os.Getenv(CrashEnv); step != "" {
		crashHook = func(s string) {
			if s == step {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		}
	}
}

// SetCrashHook makes f see every named step (nil: none) and returns a
// function that restores the previous hook. Tests use it to list the steps.
func SetCrashHook(f func(step string)) (restore func()) {
	old := crashHook
	crashHook = f
	return func() { crashHook = old }
}

// CachedResult is cachedResult: whether a Detach hands the network's
// conflist to the CNI library as recorded, the library's cache holding the
// attachment's result.
func (m *Manager) CachedResult(network, id, ifName string) bool {
	return m.cachedResult(network, id, ifName)
}
