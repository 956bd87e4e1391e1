package dns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hosts"
)

// NetworkConfig returns the responder configuration of network n under
// stateDir, or false when n has no responder: it is not a bridge network
// whose bridge holds the gateway address (isGateway; nerdctl's internal
// networks have none), or its DNS is disabled. A network without a way out
// (no masquerade: ocinet's internal networks) gets no upstream servers, so
// that its containers cannot reach beyond it by DNS either.
func NetworkConfig(stateDir string, n *ocinet.Network) (Config, bool, error) {
	gateway, masq := bridgeFlags(n.Bytes)
	if n.Bridge == "" || !gateway || n.DNS.Disabled || len(n.Gateways) == 0 || len(n.Subnets) == 0 {
		return Config{}, false, nil
	}
	c := Config{Network: n.Name, StateDir: stateDir, Port: DefaultPort, Subnets: slices.Clone(n.Subnets), Nerdctl: DefaultNerdctlRoot}
	ipv6 := false
	for _, g := range n.Gateways {
		g = g.Unmap()
		if !slices.Contains(c.Listen, g) {
			c.Listen = append(c.Listen, g)
		}
		ipv6 = ipv6 || g.Is6()
	}
	if !masq {
		return c, true, nil
	}
	up, err := upstreams(stateDir, ipv6)
	if err != nil {
		return Config{}, false, fmt.Errorf("dns responder for %q: %w", n.Name, err)
	}
	c.Upstreams = up
	return c, true, nil
}

// bridgeFlags reads the isGateway and ipMasq settings of a conflist's
// first plugin when it is the bridge plugin.
func bridgeFlags(conflist []byte) (isGateway, ipMasq bool) {
	var c struct {
		Plugins []struct {
			Type      string `json:"type"`
			IsGateway bool   `json:"isGateway"`
			IPMasq    bool   `json:"ipMasq"`
		} `json:"plugins"`
	}
	if json.Unmarshal(conflist, &c) != nil || len(c.Plugins) == 0 || c.Plugins[0].Type != "bridge" {
		return false, false
	}
	return c.Plugins[0].IsGateway, c.Plugins[0].IPMasq
}

// Mark sets PeersByDNS on each of rec's networks whose hosts mode is
// ocinet.HostsModeDNS, so that the hosts store leaves their peers out of
// hosts files. Call it before the store's Join.
func Mark(mgr *ocinet.Manager, rec *hosts.Record) error {
	for i := range rec.Networks {
		n, err := mgr.Network(rec.Networks[i].Name)
		if err != nil {
			return err
		}
		rec.Networks[i].PeersByDNS = n.DNS.HostsMode == ocinet.HostsModeDNS
	}
	return nil
}

// Prestart starts the responders that the networks (by name) need and that
// do not run yet, so that a container's Attach, which may run side by side
// with the container's network attach, finds them running. It only looks
// at networks that exist (it never makes the default one) and reports
// nothing: Attach starts what is still missing and says why it could not;
// a caller whose attach fails calls Release. The responders it starts
// linger for linger (Config.Linger).
func Prestart(ctx context.Context, stateDir string, mgr *ocinet.Manager, networks []string, linger time.Duration) {
	nets, err := mgr.Networks()
	if err != nil {
		return
	}
	for _, n := range nets {
		if !slices.Contains(networks, n.Name) {
			continue
		}
		if c, ok, err := NetworkConfig(stateDir, n); err == nil && ok {
			c.Linger = linger
			_, _ = Start(ctx, c)
		}
	}
}

// Attach starts the responders of rec's networks that do not run yet (see
// Start) once rec is in its hosts store, waits until the container's name
// resolves, and returns the addresses to name first in its resolv.conf:
// the gateways of its networks, in the families it has addresses in.
//
// When a responder cannot start (its port is taken, say) on a network whose
// hosts mode is ocinet.HostsModeFiles, peers still resolve through
// /etc/hosts: Attach logs a warning and leaves that network's gateway out.
// On a network in ocinet.HostsModeDNS nothing else would resolve them, and
// Attach fails with the reason. The responders it starts linger for
// linger (Config.Linger).
func Attach(ctx context.Context, stateDir string, mgr *ocinet.Manager, rec hosts.Record, linger time.Duration, log *slog.Logger) ([]netip.Addr, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var first []netip.Addr
	for _, rn := range rec.Networks {
		n, err := mgr.Network(rn.Name)
		if err != nil {
			return nil, err
		}
		c, ok, err := NetworkConfig(stateDir, n)
		if err == nil && ok {
			c.Linger = linger
			_, err = Start(ctx, c)
		}
		if err != nil {
			if n.DNS.HostsMode == ocinet.HostsModeDNS {
				return nil, fmt.Errorf("network %q resolves peers by DNS only: %w", n.Name, err)
			}
			log.Warn("no DNS responder; peers resolve through /etc/hosts only", "network", n.Name, "err", err)
			continue
		}
		if !ok {
			if n.DNS.HostsMode == ocinet.HostsModeDNS {
				return nil, fmt.Errorf("network %q resolves peers by DNS only, but it can have no DNS responder (no gateway on its bridge): %w", n.Name, ErrInvalid)
			}
			continue
		}
		waited := false
		for _, g := range c.Listen {
			if slices.ContainsFunc(rn.IPs, func(a netip.Addr) bool { return a.Is4() == g.Is4() }) {
				first = append(first, g)
				if !waited {
					// One family tells: both answer from the same table.
					waitName(ctx, g, rec, rn, log)
					waited = true
				}
			}
		}
	}
	return first, nil
}

// waitName asks the responder at gw, from gw itself (an address inside the
// network), for the container's first name until the answer holds one of
// its addresses on the network, for at most a second: the responder
// follows the store with inotify, and the container should find its own
// name from its first instruction on.
func waitName(ctx context.Context, gw netip.Addr, rec hosts.Record, rn hosts.Network, log *slog.Logger) {
	name := ""
	for _, n := range append([]string{rec.Name, rec.Hostname}, rec.Aliases...) {
		if n != "" {
			name = n
			break
		}
	}
	if name == "" || len(rn.IPs) == 0 {
		return
	}
	qtype := mdns.TypeA
	if gw.Is6() {
		qtype = mdns.TypeAAAA
	}
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	c := &mdns.Client{Net: "udp", Timeout: 100 * time.Millisecond,
		Dialer: &net.Dialer{LocalAddr: net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, 0))}}
	server := netip.AddrPortFrom(gw, DefaultPort).String()
	// The responder usually has the record within a millisecond of the
	// store's write: ask again soon, then less often.
	wait := 500 * time.Microsecond
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if resp, _, err := c.ExchangeContext(ctx, m, server); err == nil && answers(resp, rn.IPs) {
			return
		}
		time.Sleep(wait)
		wait = min(2*wait, 20*time.Millisecond)
	}
	log.Warn("the DNS responder does not answer for the container yet", "network", rn.Name, "name", name)
}

func answers(resp *mdns.Msg, ips []netip.Addr) bool {
	for _, rr := range resp.Answer {
		var a netip.Addr
		switch rr := rr.(type) {
		case *mdns.A:
			a, _ = netip.AddrFromSlice(rr.A.To4())
		case *mdns.AAAA:
			a, _ = netip.AddrFromSlice(rr.AAAA)
		}
		if slices.Contains(ips, a) {
			return true
		}
	}
	return false
}

// Release lets go of the responders under stateDir whose network has no
// container left in any hosts store (StateDir/hosts/*). One that lingers
// (Config.Linger) is left to stop on its own once its linger is over, so
// that a container that comes soon after (a script's next `run`) finds it
// running; any other is told to stop at once. It does not wait for them
// to exit (each removes its dns/<network>.stopping file as it goes; the
// next start of its network waits for it). Call it after a container left
// its store (detach).
func Release(stateDir string) error { return release(stateDir, false) }

// StopUnused tells every responder under stateDir whose network has no
// container left to stop at once, lingering or not, as Release does with
// those that do not linger. GC calls it.
func StopUnused(stateDir string) error { return release(stateDir, true) }

// release stops the responders of networks without containers; those
// that linger too when evenLingering is set.
func release(stateDir string, evenLingering bool) error {
	l, err := lock(stateDir)
	if err != nil {
		return fmt.Errorf("release dns responders: %w", err)
	}
	defer l.Unlock()
	sweepStoppingLocked(stateDir)
	procs, err := Processes(stateDir)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range procs {
		used, err := inUse(stateDir, p.Network)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !used && (evenLingering || p.Linger <= 0 || !p.Alive()) {
			errs = append(errs, releaseLocked(stateDir, p.Network))
		}
	}
	return errors.Join(errs...)
}

// inUse reports whether any hosts store under stateDir has a container on
// network.
func inUse(stateDir, network string) (bool, error) {
	root := filepath.Join(stateDir, "hosts")
	ents, err := os.ReadDir(root)
	if err != nil && !os.IsNotExist(err) {
		return false, err
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		st, err := hosts.Open(filepath.Join(root, e.Name()))
		if err != nil {
			return false, err
		}
		m, err := st.Members(network)
		if err != nil {
			return false, err
		}
		if len(m) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// Repair starts the responder of every network of mgr that has containers
// in the hosts stores under stateDir and has none running (one killed, or
// lost with a reboot of the host's processes), with linger as their
// Config.Linger, and lets go of those of networks without containers
// (Release). It is what a periodic check or a program's start calls.
func Repair(ctx context.Context, stateDir string, mgr *ocinet.Manager, linger time.Duration, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	nets, err := mgr.Networks()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nets {
		c, ok, err := NetworkConfig(stateDir, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		used, err := inUse(stateDir, n.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if used {
			c.Linger = linger
			if _, err := Start(ctx, c); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(append(errs, Release(stateDir))...)
}
