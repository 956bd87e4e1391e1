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
	lo, err := cont.nl.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("loopback: find lo in namespace %s: %w", c.netns, err)
	}
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
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		addrs, err := retryDump(func() ([]netlink.Addr, error) { return cont.nl.AddrList(lo, fam) })
		if err != nil {
			return nil, fmt.Errorf("loopback: list addresses: %w", err)
		}
		for _, a := range addrs {
			if !a.IP.IsLoopback() {
				return nil, fmt.Errorf("loopback: lo in namespace %s has the non-loopback address %s: %w", c.netns, a.IP, ErrInvalid)
			}
		}
		if len(addrs) > 0 {
			res.IPs = append(res.IPs, &types100.IPConfig{Interface: types100.Int(0), Address: net.IPNet{IP: addrs[0].IP, Mask: addrs[0].Mask}})
		}
	}
	return encodeResult(res, conf.CNIVersion)
}

// loopbackDel sets lo down, as the plugin does; a namespace that is gone
// needs nothing.
func (e *Exec) loopbackDel(c call) error {
	if c.netns == "" {
		return nil
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
