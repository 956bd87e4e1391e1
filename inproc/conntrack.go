package inproc

import (
	"errors"
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

// deleteConntrack deletes the entries sent from or answered by any of ips:
// one walk of the conntrack table per family, the two side by side (a walk
// costs about 9 ms here whatever the table holds: it visits every bucket of
// the host-wide hash).
func deleteConntrack(ips []net.IP) error {
	byFamily := map[netlink.InetFamily][]netlink.CustomConntrackFilter{}
	for _, ip := range ips {
		family := netlink.InetFamily(unix.AF_INET)
		if ip.To4() == nil {
			family = unix.AF_INET6
		}
		for _, t := range []netlink.ConntrackFilterType{netlink.ConntrackOrigSrcIP, netlink.ConntrackReplySrcIP} {
			f := &netlink.ConntrackFilter{}
			if err := f.AddIP(t, ip); err != nil {
				return fmt.Errorf("conntrack filter for %s: %w", ip, err)
			}
			byFamily[family] = append(byFamily[family], f)
		}
	}
	errs := make(chan error, len(byFamily))
	for family, filters := range byFamily {
		go func() {
			if _, err := netlinksafe.ConntrackDeleteFilters(netlink.ConntrackTable, family, filters...); err != nil {
				errs <- fmt.Errorf("delete conntrack entries of %v: %w", ips, err)
				return
			}
			errs <- nil
		}()
	}
	var all []error
	for range byFamily {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}
