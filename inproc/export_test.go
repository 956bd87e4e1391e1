package inproc

import (
	"net"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/allocator"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink/nl"

	"github.com/ocinet/ocinet/netns"
)

// IPAMConfigForTest and LeaseForTest give the package's external tests the
// in-process host-local (the lease test runs it in child processes).
func IPAMConfigForTest(stdin []byte) (*allocator.IPAMConfig, error) { return ipamConfig(stdin, "") }

func LeaseForTest(conf *allocator.IPAMConfig, id, ifName string) ([]*types100.IPConfig, error) {
	return lease(conf, id, ifName)
}

// PreflightAt runs Preflight's checks of the tables of the network
// namespace at path.
func PreflightAt(path string) error {
	ns, err := netns.Open(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	if err != nil {
		return err
	}
	return preflight(c)
}

// SetFirewalldPidFile makes Preflight read firewalld's pid file at path
// until the returned function is called.
func SetFirewalldPidFile(path string) func() {
	old := firewalldPidFile
	firewalldPidFile = path
	return func() { firewalldPidFile = old }
}

// UseSetsWithoutTimeoutsForTest makes the table's per-attachment sets as
// the first release made them, without timeout support, until the returned
// function is called.
func UseSetsWithoutTimeoutsForTest() func() {
	old := sets
	legacy := map[string]*nftables.Set{}
	for name, s := range old {
		c := *s
		c.HasTimeout = false
		legacy[name] = &c
	}
	sets = legacy
	return func() { sets = old }
}

// FlushConntrackForTest asks the kernel to flush the entries whose original
// source is ip; DeleteConntrackForTest is what DEL runs for a container's
// addresses.
func FlushConntrackForTest(ip net.IP) error { return flushConntrack(ip, nl.CTA_TUPLE_ORIG) }

func DeleteConntrackForTest(ips []net.IP) error { return deleteConntrack(ips) }
