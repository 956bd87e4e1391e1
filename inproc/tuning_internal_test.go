package inproc

import (
	"errors"
	"strings"
	"testing"
)

// FuzzSysctlFile: a sysctl key and an interface name map to a file under
// /proc/sys/net, or to an error wrapping ErrInvalid; never anywhere else.
func FuzzSysctlFile(f *testing.F) {
	f.Add("net.ipv4.conf.IFNAME.rp_filter", "eth0")
	f.Add("net.IFNAME.kernel.hostname", "..")
	f.Add("net/ipv4/ip_forward", "eth0")
	f.Add("kernel.hostname", "eth0")
	f.Fuzz(func(t *testing.T, key, ifName string) {
		file, err := sysctlFile(key, ifName)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if !strings.HasPrefix(file, "/proc/sys/net/") || strings.Contains(file, "/../") {
			t.Fatalf("sysctlFile(%q, %q) = %q, outside /proc/sys/net", key, ifName, file)
		}
	})
}
