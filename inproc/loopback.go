package inproc

import (
	"encoding/json"
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"
)

// loopbackAdd sets lo up in the namespace and returns the previous result,
// or lo and its addresses when there is none, as the plugin does.
func (e *Exec) loopbackAdd(c call) ([]byte, error) {
	conf := &types.NetConf{}
	if err := json.Unmarshal(c.stdin, conf); err != nil {
		return nil, fmt.Errorf("loopback: load config: %v: %w", err, ErrInvalid)
	}
	if conf.RawPrevResult != nil {
		if err := version.ParsePrevResult(conf); err != nil {
			return nil, fmt.Errorf("loopback: prevResult: %v: %w", err, ErrInvalid)
		}
	}
	cont, err := openContainer(c.netns)
	if err != nil {
		return nil, fmt.Errorf("loopback: %w", err)
	}
	defer cont.Close()
	// lo is the first link of every network namespace: its index is 1
	// (LOOPBACK_IFINDEX), no lookup needed.
	lo := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: loopbackIndex, Name: "lo"}}
	if err := cont.nl.LinkSetUp(lo); err != nil {
		return nil, fmt.Errorf("loopback: set lo up in namespace %s: %w", c.netns, err)
	}
	if conf.PrevResult != nil {
		return encodeResult(conf.PrevResult, conf.CNIVersion)
	}
	res := &types100.Result{
		CNIVersion: conf.CNIVersion,
		Interfaces: []*types100.Interface{{Name: "lo", Mac: "00:00:00:00:00:00", Sandbox: c.netns}},
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return cont.nl.AddrList(lo, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("loopback: list addresses: %w", err)
	}
	// The first address of each family, IPv4 first, as the plugin reports.
	var v4, v6 *netlink.Addr
	for i, a := range addrs {
		if !a.IP.IsLoopback() {
			return nil, fmt.Errorf("loopback: lo in namespace %s has the non-loopback address %s: %w", c.netns, a.IP, ErrInvalid)
		}
		switch {
		case a.IP.To4() != nil && v4 == nil:
			v4 = &addrs[i]
		case a.IP.To4() == nil && v6 == nil:
			v6 = &addrs[i]
		}
	}
	for _, a := range []*netlink.Addr{v4, v6} {
		if a != nil {
			res.IPs = append(res.IPs, &types100.IPConfig{Interface: types100.Int(0), Address: net.IPNet{IP: a.IP, Mask: a.Mask}})
		}
	}
	return encodeResult(res, conf.CNIVersion)
}

// loopbackIndex is the interface index of lo in every network namespace.
const loopbackIndex = 1

// loopbackDel sets lo down, as the plugin does; a namespace that is gone,
// or that the caller ends right after (EnvNamespaceEnds), needs nothing.
func (e *Exec) loopbackDel(c call) error {
	if c.netns == "" || c.nsEnds {
		return nil // no namespace, or one about to end with its lo
	}
	cont, err := openContainer(c.netns)
	if gone(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer cont.Close()
	lo, err := cont.nl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: find lo in namespace %s: %w", c.netns, err)
	}
	if err := cont.nl.LinkSetDown(lo); err != nil {
		return fmt.Errorf("loopback: set lo down in namespace %s: %w", c.netns, err)
	}
	return nil
}

func (e *Exec) loopbackCheck(c call) error {
	cont, err := openContainer(c.netns)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer cont.Close()
	lo, err := cont.nl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: find lo in namespace %s: %w", c.netns, err)
	}
	if lo.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("loopback: lo is down in namespace %s", c.netns)
	}
	return nil
}
