package ocinet

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/ocinet/ocinet/internal/reexec"
	"github.com/ocinet/ocinet/portmap"
)

// RunHelper turns this process into one of ocinet's helper processes when
// ocinet started it as one, and returns at once otherwise. Programs that
// embed ocinet call it first thing in main: the netns holder
// (netns.Hold), the IPv6 loopback proxy (ports published on [::1]) and
// the DNS responder are this same program, started again from
// /proc/self/exe. A program that never calls it cannot use those
// features; nothing in ocinet exits a program on its own.
func RunHelper() { reexec.Run() }

// startProxies starts a proxy (see portmap.StartProxy) for every port of
// rec on IPv6 loopback, relaying to the container's address on network
// (its IPv6 address if it has one), and records them in rec.
func (m *Manager) startProxies(rec *record, network string) error {
	if !slices.ContainsFunc(rec.Ports, portmap.NeedsProxy) {
		return nil
	}
	var target netip.Addr
	for _, ifc := range rec.attachment().Interfaces {
		if ifc.Network != network {
			continue
		}
		for _, p := range ifc.IPs {
			if !target.IsValid() || (p.Addr().Is6() && !target.Is6()) {
				target = p.Addr()
			}
		}
	}
	for _, p := range rec.Ports {
		if !portmap.NeedsProxy(p) {
			continue
		}
		if p.Protocol != "tcp" {
			return fmt.Errorf("publish %s: on IPv6 loopback only tcp can be published (through a proxy): %w", p, ErrInvalid)
		}
		if !target.IsValid() {
			return fmt.Errorf("publish %s: the container has no address to relay to", p)
		}
		pr, err := portmap.StartProxy(netip.AddrPortFrom(p.HostIP, p.HostPort), netip.AddrPortFrom(target, p.ContainerPort))
		if err != nil {
			return fmt.Errorf("publish %s: %w", p, err)
		}
		rec.Proxies = append(rec.Proxies, pr)
	}
	return nil
}

// stopProxies ends rec's proxies. One that is gone already is fine.
func stopProxies(rec *record) error {
	var errs []error
	for _, p := range rec.Proxies {
		if err := p.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
