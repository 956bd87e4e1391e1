package inproc

import (
	"fmt"
	"net"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/allocator"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// forgetConntrack deletes the conntrack entries of the addresses the
// container's interface holds: those it opened and those sent to it
// (through a published port too, whose reply source is the container).
// Without it a UDP flow to a published port keeps going to the old
// address. Called after the link is gone and before the lease is released.
// The addresses are those of the previous result (what the ADD leased),
// or, without one (an ADD cut short, a config older than CNI 0.4), those
// the lease directory names: a lookup fewer for a Detach, which then
// reads the directory once, to release.
func forgetConntrack(conf *allocator.IPAMConfig, prev []net.IP, id, ifName string) error {
	if prev != nil {
		return deleteConntrack(prev)
	}
	ips, err := leased(conf, id, ifName)
	if err != nil {
		return nil // releaseLease reports it, or leaves a refused directory alone
	}
	return deleteConntrack(ips)
}

// deleteConntrack deletes the entries sent from or answered by any of ips.
// For an IPv4 address it asks the kernel to flush them with a filter on
// the address (kernels since late 2024: about 0.2 ms a request here); where
// the kernel refuses that, and for IPv6 addresses (the kernel's filter
// matches IPv6 addresses the wrong way round: it would flush every entry
// but the container's), it walks the table, once per family (a walk costs
// about 9 ms here whatever the table holds: it visits every bucket of the
// host-wide hash).
func deleteConntrack(ips []net.IP) error {
	var walk []net.IP
	for _, ip := range ips {
		if ip.To4() == nil || flushConntrack(ip, nl.CTA_TUPLE_ORIG) != nil || flushConntrack(ip, nl.CTA_TUPLE_REPLY) != nil {
			walk = append(walk, ip)
		}
	}
	if len(walk) == 0 {
		return nil
	}
	return walkConntrack(walk)
}

// Kernel attributes of a filtered flush (linux/netfilter/nfnetlink_conntrack.h).
const (
	ctaFilter          = 25     // CTA_FILTER
	ctaFilterOrigFlags = 1      // CTA_FILTER_ORIG_FLAGS
	ctaFilterReplFlags = 2      // CTA_FILTER_REPLY_FLAGS
	ctaFilterFlagIPSrc = 1 << 0 // CTA_FILTER_FLAG_CTA_IP_SRC
)

// flushConntrack asks the kernel to delete every entry whose original
// (tuple CTA_TUPLE_ORIG) or reply (CTA_TUPLE_REPLY) source is the IPv4
// address ip: a delete with a tuple that holds only the address and a
// filter on it. A kernel without filtered flushes refuses it (EOPNOTSUPP
// from 5.10, EINVAL before: the tuple lacks its protocol), and deletes
// nothing.
func flushConntrack(ip net.IP, tuple int) error {
	addr := ip.To4()
	if addr == nil {
		return fmt.Errorf("conntrack flush of %s: IPv4 only: %w", ip, ErrNotSupported)
	}
	flags := ctaFilterOrigFlags
	if tuple == nl.CTA_TUPLE_REPLY {
		flags = ctaFilterReplFlags
	}
	req := nl.NewNetlinkRequest((unix.NFNL_SUBSYS_CTNETLINK<<8)|nl.IPCTNL_MSG_CT_DELETE, unix.NLM_F_ACK)
	req.AddData(&nl.Nfgenmsg{NfgenFamily: unix.AF_INET, Version: nl.NFNETLINK_V0})
	t := nl.NewRtAttr(tuple|unix.NLA_F_NESTED, nil)
	t.AddRtAttr(nl.CTA_TUPLE_IP|unix.NLA_F_NESTED, nil).AddRtAttr(nl.CTA_IP_V4_SRC, addr)
	req.AddData(t)
	f := nl.NewRtAttr(ctaFilter|unix.NLA_F_NESTED, nil)
	f.AddRtAttr(flags, nl.Uint32Attr(ctaFilterFlagIPSrc))
	req.AddData(f)
	_, err := req.Execute(unix.NETLINK_NETFILTER, 0)
	return err
}

// walkConntrack deletes the entries of ips by walking the table, once per
// family, on the calling thread (whose namespace is the one that counts).
func walkConntrack(ips []net.IP) error {
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
	for family, filters := range byFamily {
		if _, err := netlinksafe.ConntrackDeleteFilters(netlink.ConntrackTable, family, filters...); err != nil {
			return fmt.Errorf("delete conntrack entries of %v: %w", ips, err)
		}
	}
	return nil
}
