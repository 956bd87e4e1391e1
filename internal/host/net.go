package host

import (
	"net"
	"net/netip"
)

// netipNet converts p to the *net.IPNet netlink takes, keeping the address.
func netipNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}
