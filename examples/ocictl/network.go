package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/dns"
)

const networkUsage = `usage: ocictl network COMMAND

  create [-d bridge|macvlan|ipvlan] [-o KEY=VALUE]... [--subnet CIDR]...
         [--gateway IP] [--ip-range CIDR] [--ipv6] [--label KEY=VALUE]...
         [--internal] [--dns=false] [--hosts-mode hosts|dns] NAME
  ls [-q]
  inspect NAME...
  rm NAME...
  prune [-f]`

// cmdNetwork runs `ocictl network create|ls|inspect|rm|prune`, nerdctl's
// network commands. The conflists land in --cni-netconfpath in nerdctl v2's
// format and layout (the namespace's networks in its directory), so
// nerdctl sees them too, and ocictl sees nerdctl's.
func cmdNetwork(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return errors.New(networkUsage)
	}
	mgr, err := g.hookConfig.Manager()
	if err != nil {
		return err
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "create":
		return networkCreate(ctx, mgr, rest)
	case "ls", "list":
		return networkList(mgr, rest)
	case "inspect":
		return networkInspect(mgr, rest)
	case "rm", "remove":
		return networkRemove(ctx, mgr, g.hookConfig.WithDefaults().StateDir, rest)
	case "prune":
		return networkPrune(ctx, mgr, g.hookConfig.WithDefaults().StateDir, rest)
	default:
		return fmt.Errorf("unknown network command %q\n%s", cmd, networkUsage)
	}
}

func networkCreate(ctx context.Context, mgr *ocinet.Manager, args []string) error {
	fs := flag.NewFlagSet("network create", flag.ContinueOnError)
	var subnets, labels, opts listFlag
	driver := fs.String("driver", "bridge", "driver: bridge, macvlan or ipvlan")
	fs.StringVar(driver, "d", "bridge", "short for --driver")
	fs.Var(&opts, "opt", "driver option KEY=VALUE (repeatable); macvlan and ipvlan: parent=DEVICE, mode=MODE")
	fs.Var(&opts, "o", "short for --opt")
	fs.Var(&subnets, "subnet", "subnet in CIDR form; an IPv4 one and, with --ipv6, an IPv6 one (default: a free 10.4.N.0/24)")
	gateway := fs.String("gateway", "", "IPv4 gateway (default: the first address of the subnet)")
	ipRange := fs.String("ip-range", "", "part of the IPv4 subnet containers get addresses from (default: all)")
	ipv6 := fs.Bool("ipv6", false, "dual stack: needs an IPv6 --subnet")
	internal := fs.Bool("internal", false, "no way out: no default route, no masquerade, no published ports")
	fs.Var(&labels, "label", "label KEY=VALUE (repeatable)")
	dnsOn := fs.Bool("dns", true, "a DNS responder on the gateway answers for the network's containers")
	hostsMode := fs.String("hosts-mode", ocinet.HostsModeFiles, "where peers are found: hosts (every peer in every /etc/hosts, as nerdctl) or dns (the DNS responder only; a join writes one file)")
	if err := parseInterspersed(fs, args); err != nil {
		return errSilent
	}
	if fs.NArg() != 1 {
		return errors.New("usage: ocictl network create [flags] NAME")
	}
	cfg := ocinet.NetworkConfig{Name: fs.Arg(0), Driver: *driver, Internal: *internal, Labels: map[string]string{},
		DNS: ocinet.DNSOptions{Disabled: !*dnsOn}}
	if *hostsMode != ocinet.HostsModeFiles {
		cfg.DNS.HostsMode = *hostsMode
	}
	for _, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			return fmt.Errorf("-o %q: want KEY=VALUE", o)
		}
		if cfg.Options == nil {
			cfg.Options = map[string]string{}
		}
		cfg.Options[k] = v
	}
	for _, s := range subnets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("--subnet %q: %w", s, err)
		}
		switch {
		case p.Addr().Is4() && !cfg.Subnet.IsValid():
			cfg.Subnet = p
		case p.Addr().Is6() && *ipv6 && !cfg.IPv6Subnet.IsValid():
			cfg.IPv6Subnet = p
		case p.Addr().Is6() && !*ipv6:
			return fmt.Errorf("--subnet %s: an IPv6 subnet needs --ipv6", s)
		default:
			return fmt.Errorf("--subnet %s: at most one subnet per family", s)
		}
	}
	if *ipv6 && !cfg.IPv6Subnet.IsValid() {
		return errors.New("--ipv6 needs an IPv6 --subnet")
	}
	if *gateway != "" {
		a, err := netip.ParseAddr(*gateway)
		if err != nil {
			return fmt.Errorf("--gateway %q: %w", *gateway, err)
		}
		cfg.Gateway = a
	}
	if *ipRange != "" {
		p, err := netip.ParsePrefix(*ipRange)
		if err != nil {
			return fmt.Errorf("--ip-range %q: %w", *ipRange, err)
		}
		cfg.IPRange = p
	}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		cfg.Labels[k] = v
	}
	n, err := mgr.CreateNetwork(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Println(n.ID)
	return nil
}

func networkList(mgr *ocinet.Manager, args []string) error {
	fs := flag.NewFlagSet("network ls", flag.ContinueOnError)
	quiet := fs.Bool("q", false, "print the names only")
	if err := parseInterspersed(fs, args); err != nil {
		return errSilent
	}
	if fs.NArg() != 0 {
		return errors.New("usage: ocictl network ls [-q]")
	}
	nets, err := mgr.Networks()
	if err != nil {
		return err
	}
	if *quiet {
		for _, n := range nets {
			fmt.Println(n.Name)
		}
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(w, "NETWORK ID\tNAME\tSUBNETS\tFILE")
	for _, n := range nets {
		id := n.ID
		if len(id) > 12 {
			id = id[:12]
		}
		var subnets []string
		for _, s := range n.Subnets {
			subnets = append(subnets, s.String())
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", id, n.Name, strings.Join(subnets, ","), n.File)
	}
	return w.Flush()
}

// networkInfo is what `network inspect` prints for one network.
type networkInfo struct {
	Name       string            `json:"Name"`
	ID         string            `json:"ID,omitempty"`
	File       string            `json:"File"`
	CNIVersion string            `json:"CNIVersion"`
	Plugins    []string          `json:"Plugins"`
	Bridge     string            `json:"Bridge,omitempty"`
	Subnets    []netip.Prefix    `json:"Subnets,omitempty"`
	Gateways   []netip.Addr      `json:"Gateways,omitempty"`
	Labels     map[string]string `json:"Labels,omitempty"`
	// Containers are the attachments on the network: name (or ID) and
	// addresses.
	Containers []containerInfo `json:"Containers"`
}

type containerInfo struct {
	Name      string         `json:"Name"`
	Interface string         `json:"Interface"`
	IPs       []netip.Prefix `json:"IPs"`
	MAC       string         `json:"MAC,omitempty"`
}

func networkInspect(mgr *ocinet.Manager, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: ocictl network inspect NAME...")
	}
	atts, err := mgr.List()
	if err != nil {
		return err
	}
	var out []networkInfo
	var errs []error
	for _, name := range args {
		n, err := mgr.Network(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		info := networkInfo{Name: n.Name, ID: n.ID, File: n.File, CNIVersion: n.CNIVersion, Plugins: n.Plugins,
			Bridge: n.Bridge, Subnets: n.Subnets, Gateways: n.Gateways, Labels: n.Labels, Containers: []containerInfo{}}
		for _, a := range atts {
			for _, i := range a.Interfaces {
				if i.Network == n.Name {
					who := a.Name
					if who == "" {
						who = a.ID
					}
					info.Containers = append(info.Containers, containerInfo{Name: who, Interface: i.Name, IPs: i.IPs, MAC: i.MAC})
				}
			}
		}
		out = append(out, info)
	}
	if len(out) > 0 {
		b, err := json.MarshalIndent(out, "", "    ")
		if err != nil {
			return err
		}
		fmt.Println(string(b))
	}
	return errors.Join(errs...)
}

// networkRemove removes the networks, and stops the DNS responder that
// one may still have (lingering after its last container).
func networkRemove(ctx context.Context, mgr *ocinet.Manager, stateDir string, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: ocictl network rm NAME...")
	}
	var errs []error
	for _, name := range args {
		if err := mgr.RemoveNetwork(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, dns.Stop(stateDir, name))
		fmt.Println(name)
	}
	return errors.Join(errs...)
}

func networkPrune(ctx context.Context, mgr *ocinet.Manager, stateDir string, args []string) error {
	fs := flag.NewFlagSet("network prune", flag.ContinueOnError)
	force := fs.Bool("f", false, "do not ask for confirmation")
	fs.BoolVar(force, "force", false, "do not ask for confirmation")
	if err := parseInterspersed(fs, args); err != nil {
		return errSilent
	}
	if fs.NArg() != 0 {
		return errors.New("usage: ocictl network prune [-f]")
	}
	if !*force {
		fmt.Fprint(os.Stderr, "WARNING! This will remove all networks not used by at least one container.\nAre you sure you want to continue? [y/N] ")
		answer, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return nil
		}
	}
	removed, err := mgr.PruneNetworks(ctx)
	for _, name := range removed {
		err = errors.Join(err, dns.Stop(stateDir, name))
	}
	if len(removed) > 0 {
		fmt.Println("Deleted Networks:")
		for _, name := range removed {
			fmt.Println(name)
		}
	}
	return err
}
