// Command tidybridge removes what the host keeps for a bridge once nothing
// uses it: the link itself, the native datapath's state in the table inet
// ocinet (its masquerade chain and its elements of the static sets:
// package inproc) and the firewall plugin's isolation rules that name it.
// A network's state lives as long as the network, and the default network
// is never removed; the demo runs this for the default network's bridge
// when it made it.
//
//	go run ./internal/tidybridge BRIDGE
//
// It then prints how many items the table still holds for the bridge (0,
// or it fails).
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/leakcheck"
	"github.com/ocinet/ocinet/internal/nftfw"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tidybridge BRIDGE")
		os.Exit(2)
	}
	if err := tidy(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "tidybridge:", err)
		os.Exit(1)
	}
}

func tidy(bridge string) error {
	var errs []error
	if l, err := netlink.LinkByName(bridge); err == nil {
		if l.Type() != "bridge" {
			return fmt.Errorf("%s is a %s link, not a bridge", bridge, l.Type())
		}
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", bridge, err))
		}
	}
	if err := inproc.RemoveBridge(bridge); err != nil {
		errs = append(errs, err)
	}
	if _, err := nftfw.RemoveBridge(bridge); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	s, err := leakcheck.Take(leakcheck.Config{})
	if err != nil {
		return err
	}
	left := 0
	for item := range s["nftables-ocinet"] {
		for _, f := range strings.Fields(item) {
			if f == inproc.MasqChain(bridge) || f == inproc.NetworkComment(bridge) {
				left++
				break
			}
		}
	}
	fmt.Printf("items of %s left in the table inet ocinet: %d\n", bridge, left)
	if left > 0 {
		return fmt.Errorf("%d items of %s are left", left, bridge)
	}
	return nil
}
