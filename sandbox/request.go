package sandbox

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/internal/ident"
	"github.com/ocinet/ocinet/portmap"
)

// Mode says how a container is networked: through networks of its own
// (the zero value), loopback only, or the host's network.
type Mode string

// The modes, as docker's and nerdctl's --network names them.
const (
	// ModeNetworks (the zero value): the container has a network namespace
	// of its own, attached to [Request.Networks].
	ModeNetworks Mode = ""
	// ModeNone: a network namespace of its own with only its loopback
	// interface, up (--network none). Nothing is attached; /etc/hosts has
	// the local entries and the extra hosts, resolv.conf the host's
	// servers that are not loopback ones.
	ModeNone Mode = "none"
	// ModeHost: the host's own network namespace (--network host): the
	// spec asks for no network namespace (spec.WithNetworkMode), nothing
	// is attached, /etc/hosts starts from the host's and resolv.conf is the
	// host's, loopback servers included.
	ModeHost Mode = "host"
)

// ParseMode returns the mode --network names: "none" or "host"; ok is false
// for any other value, which names a network.
func ParseMode(network string) (m Mode, ok bool) {
	switch Mode(network) {
	case ModeNone, ModeHost:
		return Mode(network), true
	}
	return ModeNetworks, false
}

// Request is what a container asks of the network. Every field is optional.
type Request struct {
	// Mode is the container's network mode (default: networks of its own).
	// With ModeNone and ModeHost, the fields that need a network of the
	// container's own (Networks, Ports, Aliases, Static, host-gateway in
	// ExtraHosts) must be empty.
	Mode Mode
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
	if err := r.checkMode(); err != nil {
		return err
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

// checkMode refuses an unknown mode, and, in modes without a network of the
// container's own, what only such a network could give: nothing would
// publish the ports or answer the aliases, and host-gateway would stand for
// no address.
func (r Request) checkMode() error {
	switch r.Mode {
	case ModeNetworks:
		return nil
	case ModeNone, ModeHost:
	default:
		return fmt.Errorf("network mode %q: want %q, %q or none at all (networks of the container's own): %w", string(r.Mode), ModeNone, ModeHost, ErrInvalid)
	}
	var conflict string
	switch {
	case len(r.Networks) > 0:
		conflict = fmt.Sprintf("networks (%s)", strings.Join(r.Networks, ", "))
	case len(r.Ports) > 0:
		conflict = "published ports"
	case len(r.Aliases) > 0:
		conflict = "network aliases"
	case len(r.Static) > 0:
		conflict = "static addresses or MAC"
	default:
		for _, e := range r.ExtraHosts {
			if e.Gateway {
				conflict = "an extra host at " + hosts.HostGateway
			}
		}
	}
	if conflict != "" {
		return fmt.Errorf("network mode %s with %s: the container has no network of its own for them: %w", r.Mode, conflict, ErrInvalid)
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
