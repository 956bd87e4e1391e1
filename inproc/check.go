package inproc

import (
	"fmt"
	"net"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"
)

// bridgeCheck compares the host and the namespace with the previous result,
// as the plugin's CHECK does: the lease is held; the bridge exists, is a
// bridge with the recorded MAC and the configured promiscuous mode; the
// container's interface is a veth in the recorded namespace with the
// recorded MAC, whose peer is a port of the bridge; its addresses and the
// routes are there.
func (e *Exec) bridgeCheck(c call) error {
	n, err := loadBridgeConf(c.stdin, c.args)
	if err != nil {
		return err
	}
	ipamConf, err := ipamConfig(c.stdin, c.args)
	if err != nil {
		return err
	}
	if held, err := leaseHeld(ipamConf, c.containerID, c.ifc); err != nil {
		return fmt.Errorf("bridge: %w", err)
	} else if !held {
		return fmt.Errorf("host-local: no address held for container %s interface %s: %w", c.containerID, c.ifc, ErrNotFound)
	}
	if n.RawPrevResult == nil {
		return fmt.Errorf("bridge: required prevResult missing: %w", ErrInvalid)
	}
	if err := version.ParsePrevResult(&n.NetConf); err != nil {
		return fmt.Errorf("bridge: prevResult: %v: %w", err, ErrInvalid)
	}
	res, err := types100.NewResultFromResult(n.PrevResult)
	if err != nil {
		return fmt.Errorf("bridge: prevResult: %v: %w", err, ErrInvalid)
	}
	var brIf, contIf *types100.Interface
	for _, i := range res.Interfaces {
		switch {
		case i.Name == n.BrName && i.Sandbox == "":
			brIf = i
		case i.Name == c.ifc && i.Sandbox == c.netns:
			contIf = i
		}
	}
	if brIf == nil || contIf == nil {
		return fmt.Errorf("bridge: prevResult names no bridge %s or no interface %s in %s: %w", n.BrName, c.ifc, c.netns, ErrInvalid)
	}
	l, err := netlink.LinkByName(n.BrName)
	if err != nil {
		return fmt.Errorf("bridge: bridge %s: %w", n.BrName, ErrNotFound)
	}
	br, ok := l.(*netlink.Bridge)
	if !ok {
		return fmt.Errorf("bridge: %s is a %s link, not a bridge: %w", n.BrName, l.Type(), ErrConflict)
	}
	if brIf.Mac != "" && brIf.Mac != br.Attrs().HardwareAddr.String() {
		return fmt.Errorf("bridge: MAC of bridge %s is %s, the result says %s", n.BrName, br.Attrs().HardwareAddr, brIf.Mac)
	}
	if (br.Attrs().Promisc != 0) != n.PromiscMode {
		return fmt.Errorf("bridge: promiscuous mode of bridge %s is not %v", n.BrName, n.PromiscMode)
	}
	cont, err := openContainer(c.netns)
	if err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	defer cont.Close()
	cl, err := cont.nl.LinkByName(c.ifc)
	if err != nil {
		return fmt.Errorf("bridge: interface %s in namespace %s: %w", c.ifc, c.netns, ErrNotFound)
	}
	if _, ok := cl.(*netlink.Veth); !ok {
		return fmt.Errorf("bridge: interface %s in namespace %s is a %s link, not a veth", c.ifc, c.netns, cl.Type())
	}
	if contIf.Mac != "" && contIf.Mac != cl.Attrs().HardwareAddr.String() {
		return fmt.Errorf("bridge: MAC of %s is %s, the result says %s", c.ifc, cl.Attrs().HardwareAddr, contIf.Mac)
	}
	// The host end: the peer of the container's end, a port of the bridge.
	host, err := netlink.LinkByIndex(cl.Attrs().ParentIndex)
	if err != nil || host.Attrs().MasterIndex != br.Attrs().Index {
		return fmt.Errorf("bridge: the veth peer of %s is not a port of bridge %s: %w", c.ifc, n.BrName, ErrNotFound)
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return cont.nl.AddrList(cl, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("bridge: addresses of %s: %w", c.ifc, err)
	}
	for _, ipc := range res.IPs {
		found := false
		for _, a := range addrs {
			found = found || a.IPNet.String() == ipc.Address.String()
		}
		if !found {
			return fmt.Errorf("bridge: address %s is not on %s in namespace %s: %w", ipc.Address.String(), c.ifc, c.netns, ErrNotFound)
		}
	}
	for _, r := range res.Routes {
		fam := netlink.FAMILY_V4
		if r.Dst.IP.To4() == nil {
			fam = netlink.FAMILY_V6
		}
		routes, err := retryDump(func() ([]netlink.Route, error) { return cont.nl.RouteList(nil, fam) })
		if err != nil {
			return fmt.Errorf("bridge: routes in namespace %s: %w", c.netns, err)
		}
		found := false
		for _, rt := range routes {
			dst := rt.Dst
			if dst == nil { // the default route
				bits := 32
				if fam == netlink.FAMILY_V6 {
					bits = 128
				}
				zero := net.IPv4zero.To4()
				if fam == netlink.FAMILY_V6 {
					zero = net.IPv6zero
				}
				dst = &net.IPNet{IP: zero, Mask: net.CIDRMask(0, bits)}
			}
			if dst.String() == r.Dst.String() && (r.GW == nil || r.GW.Equal(rt.Gw)) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("bridge: route to %s is not in namespace %s: %w", r.Dst.String(), c.netns, ErrNotFound)
		}
	}
	return nil
}
