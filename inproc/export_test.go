package inproc

import (
	"net"
	"time"

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

// LeasedForTest is the lookup of the addresses leased to an interface.
func LeasedForTest(conf *allocator.IPAMConfig, id, ifName string) ([]net.IP, error) {
	return leased(conf, id, ifName)
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

// ExpireAndAddForTest adds to set an element (key, old) commented com,
// expires it as a DEL does and adds (key, new) at once, as the ADD of the
// container that took the port or address would; it returns how long that
// ADD waited. The returned function deletes the element.
func ExpireAndAddForTest(e *Exec, set string, key, old, new []byte, com string) (time.Duration, func() error, error) {
	if err := e.ensureStatic(); err != nil {
		return 0, nil, err
	}
	if err := addElements("test", map[string][]nftables.SetElement{set: {{Key: key, Val: old, Comment: com}}}); err != nil {
		return 0, nil, err
	}
	del := func() error { return deleteElements("test", attachmentSets, func(s string) bool { return s == com }) }
	if _, err := expireElements("test", com); err != nil {
		return 0, del, err
	}
	t0 := time.Now()
	err := addElements("test", map[string][]nftables.SetElement{set: {{Key: key, Val: new, Comment: com}}})
	return time.Since(t0), del, err
}

// SetExpiryTimeoutForTest makes DEL's elements expire after d, until
// restore.
func SetExpiryTimeoutForTest(d time.Duration) (restore func()) {
	old := expiryTimeout
	expiryTimeout = d
	return func() { expiryTimeout = old }
}

// LookupsForTest is the number of keys looked up so far.
func LookupsForTest() int64 { return lookups.Load() }

// LookupElementsForTest is lookupElements.
func LookupElementsForTest(s *nftables.Set, keys [][]byte) (map[string]nftables.SetElement, error) {
	return lookupElements(s, keys)
}
