package sandbox

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/internal/ident"
	"github.com/ocinet/ocinet/portmap"
)

// Request is what a container asks of the network. Every field is optional.
type Request struct {
	// Networks to attach, in order: the first becomes eth0 (default: the
	// default network).
	Networks []string
	// Ports to publish.
	Ports []portmap.Mapping
	// Name is the container's name; peers resolve it.
	Name string
	// Hostname is the container's host name; peers resolve it too.
	Hostname string
	// Aliases are more names of the container on its networks
	// (--network-alias), answered by the networks' DNS responders; an
	// alias several containers share resolves to all of them.
	Aliases []string
	// ExtraHosts are the --add-host entries for /etc/hosts.
	ExtraHosts []hosts.ExtraHost
	// DNS replaces parts of the host's resolv.conf; each non-empty list
	// replaces the host's.
	DNS hosts.DNS
	// Static fixes addresses and MACs, per network.
	Static []Static
}

// Static fixes a container's addresses (at most one per family) and MAC on
// one of its networks, like docker's --ip, --ip6 and --mac-address.
type Static struct {
	Network string
	IPs     []netip.Addr
	MAC     net.HardwareAddr // nil: the plugin chooses
}

// Bounds on a request.
const (
	maxNetworks   = 16
	maxPorts      = 1024
	maxExtraHosts = 256
	maxDNSServers = 16
	maxDNSSearch  = 16
	maxDNSOptions = 32
)

// Validate checks every field of r. Errors wrap ErrInvalid and name the
// field.
func (r Request) Validate() error {
	if len(r.Networks) > maxNetworks || len(r.Ports) > maxPorts || len(r.ExtraHosts) > maxExtraHosts ||
		len(r.DNS.Servers) > maxDNSServers || len(r.DNS.Search) > maxDNSSearch || len(r.DNS.Options) > maxDNSOptions ||
		len(r.Static) > maxNetworks {
		return fmt.Errorf("request: too many entries: %w", ErrInvalid)
	}
	for _, n := range r.Networks {
		if err := ident.NetworkName(n); err != nil {
			return err
		}
	}
	for _, p := range r.Ports {
		if err := p.Validate(); err != nil {
			return err
		}
	}
	if r.Name != "" {
		if err := hosts.ValidateName(r.Name); err != nil {
			return fmt.Errorf("container name: %w", err)
		}
	}
	if r.Hostname != "" {
		if err := hosts.ValidateName(r.Hostname); err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
	}
	if len(r.Aliases) > hosts.MaxAliases {
		return fmt.Errorf("request: too many aliases (%d, at most %d): %w", len(r.Aliases), hosts.MaxAliases, ErrInvalid)
	}
	for _, a := range r.Aliases {
		if err := hosts.ValidateName(a); err != nil {
			return fmt.Errorf("alias: %w", err)
		}
	}
	for _, e := range r.ExtraHosts {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	if err := r.DNS.Validate(); err != nil {
		return err
	}
	for _, st := range r.Static {
		if err := ident.NetworkName(st.Network); err != nil {
			return fmt.Errorf("static settings: %w", err)
		}
		if len(st.IPs) > 2 {
			return fmt.Errorf("static addresses on %q: at most one per family: %w", st.Network, ErrInvalid)
		}
		for _, a := range st.IPs {
			if !a.IsValid() || a.Zone() != "" {
				return fmt.Errorf("static address %q on %q: not an IP address without a zone: %w", a, st.Network, ErrInvalid)
			}
		}
		if st.MAC != nil && (len(st.MAC) != 6 || st.MAC[0]&1 != 0 || bytes.Equal(st.MAC, make([]byte, 6))) {
			return fmt.Errorf("MAC address %s on %q: want a unicast Ethernet address like 02:42:ac:11:00:02: %w", st.MAC, st.Network, ErrInvalid)
		}
	}
	return nil
}

// perNetwork returns the Manager's per-network options of r.
func (r Request) perNetwork() []ocinet.NetworkOptions {
	var out []ocinet.NetworkOptions
	for _, st := range r.Static {
		out = append(out, ocinet.NetworkOptions{Network: st.Network, IPs: st.IPs, MAC: st.MAC})
	}
	return out
}
