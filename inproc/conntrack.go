package inproc

import (
	"fmt"
	"net"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/allocator"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// forgetConntrack deletes the conntrack entries of the addresses the
// container's interface holds: those it opened and those sent to it
// (through a published port too, whose reply source is the container).
// Without it a UDP flow to a published port keeps going to the old
// address. Called after the link is gone and before the lease is released.
func forgetConntrack(conf *allocator.IPAMConfig, id, ifName string) error {
	store, err := openStore(conf)
	if err != nil {
		return nil // releaseLease reports it, or leaves a refused directory alone
	}
	ips := store.GetByID(id, ifName)
	store.Close()
	return deleteConntrack(ips)
}

func deleteConntrack(ips []net.IP) error {
	for _, ip := range ips {
		family := netlink.InetFamily(unix.AF_INET)
		if ip.To4() == nil {
			family = unix.AF_INET6
		}
		var filters []netlink.CustomConntrackFilter
		for _, t := range []netlink.ConntrackFilterType{netlink.ConntrackOrigSrcIP, netlink.ConntrackReplySrcIP} {
			f := &netlink.ConntrackFilter{}
			if err := f.AddIP(t, ip); err != nil {
				return fmt.Errorf("conntrack filter for %s: %w", ip, err)
			}
			filters = append(filters, f)
		}
		if _, err := netlinksafe.ConntrackDeleteFilters(netlink.ConntrackTable, family, filters...); err != nil {
			return fmt.Errorf("delete conntrack entries of %s: %w", ip, err)
		}
	}
	return nil
}
