package hook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/portmap"
)

// Annotation is the key of the OCI annotation that carries a container's
// [Request]. The version is part of the key and of the value.
const Annotation = "io.ocinet.network.v1"

// RequestVersion is the version of the [Request] format.
const RequestVersion = 1

// maxRequestSize bounds the annotation the hook will read.
const maxRequestSize = 64 << 10

// Request is what a container asks of the network. Every field is optional.
type Request struct {
	// Version must be RequestVersion.
	Version int `json:"version"`
	// Networks to attach, in order (default: the default network).
	Networks []string `json:"networks,omitempty"`
	// Ports to publish, in the -p grammar of package portmap.
	Ports []portmap.Mapping `json:"ports,omitempty"`
	// Name is the container's name; peers resolve it.
	Name string `json:"name,omitempty"`
	// Hostname is the container's host name; peers resolve it too.
	Hostname string `json:"hostname,omitempty"`
	// Aliases are more names of the container on its networks
	// (--network-alias), answered by the networks' DNS responders.
	Aliases []string `json:"aliases,omitempty"`
	// ExtraHosts are "NAME:IP" or "NAME:host-gateway" entries for /etc/hosts.
	ExtraHosts []string `json:"extraHosts,omitempty"`
	// DNS servers, search domains and options; each non-empty list
	// replaces the host's.
	DNSServers []string `json:"dnsServers,omitempty"`
	DNSSearch  []string `json:"dnsSearch,omitempty"`
	DNSOptions []string `json:"dnsOptions,omitempty"`
	// Static are fixed addresses and MACs, per network.
	Static []Static `json:"static,omitempty"`
}

// Static fixes a container's addresses (at most one per family) and MAC on
// one of its networks, like docker's --ip, --ip6 and --mac-address.
type Static struct {
	Network string   `json:"network"`
	IPs     []string `json:"ips,omitempty"`
	MAC     string   `json:"mac,omitempty"`
}

// request is a validated Request.
type request struct {
	Request
	extraHosts []hosts.ExtraHost
	dns        hosts.DNS
	perNetwork []ocinet.NetworkOptions
}

// ParseRequest decodes and validates a request annotation. Unknown fields,
// trailing data, oversized values and invalid names, ports or addresses are
// refused with an error wrapping ErrInvalid.
func ParseRequest(s string) (Request, error) {
	r, err := parseRequest(s)
	return r.Request, err
}

func parseRequest(s string) (request, error) {
	var r request
	if len(s) > maxRequestSize {
		return r, fmt.Errorf("annotation %s: larger than %d bytes: %w", Annotation, maxRequestSize, ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r.Request); err != nil {
		return r, fmt.Errorf("annotation %s: %v: %w", Annotation, err, ErrInvalid)
	}
	if _, err := dec.Token(); err != io.EOF {
		return r, fmt.Errorf("annotation %s: trailing data: %w", Annotation, ErrInvalid)
	}
	if err := r.validate(); err != nil {
		return r, fmt.Errorf("annotation %s: %w", Annotation, err)
	}
	return r, nil
}

func (r *request) validate() error {
	if r.Version != RequestVersion {
		return fmt.Errorf("version %d, want %d: %w", r.Version, RequestVersion, ErrInvalid)
	}
	if len(r.Networks) > 16 || len(r.Ports) > 1024 || len(r.ExtraHosts) > 256 ||
		len(r.DNSServers) > 16 || len(r.DNSSearch) > 16 || len(r.DNSOptions) > 32 || len(r.Aliases) > hosts.MaxAliases {
		return fmt.Errorf("too many entries: %w", ErrInvalid)
	}
	for _, n := range r.Networks {
		if err := validContainerID(n); err != nil {
			return fmt.Errorf("network name: %w", err)
		}
	}
	for _, p := range r.Ports {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if slices.Contains(r.Aliases, "") {
		return fmt.Errorf("an empty alias: %w", ErrInvalid)
	}
	for _, n := range append([]string{r.Name, r.Hostname}, r.Aliases...) {
		if n != "" {
			if err := hosts.ValidateName(n); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalid, err)
			}
		}
	}
	for _, e := range r.ExtraHosts {
		h, err := hosts.ParseExtraHost(e)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		r.extraHosts = append(r.extraHosts, h)
	}
	for _, s := range r.DNSServers {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("dns server %q: not an IP address: %w", s, ErrInvalid)
		}
		r.dns.Servers = append(r.dns.Servers, a)
	}
	r.dns.Search = r.DNSSearch
	r.dns.Options = r.DNSOptions
	if len(r.Static) > 16 {
		return fmt.Errorf("too many static entries: %w", ErrInvalid)
	}
	for _, st := range r.Static {
		if err := validContainerID(st.Network); err != nil {
			return fmt.Errorf("static network name: %w", err)
		}
		o := ocinet.NetworkOptions{Network: st.Network}
		if len(st.IPs) > 2 {
			return fmt.Errorf("static addresses on %q: at most one per family: %w", st.Network, ErrInvalid)
		}
		for _, s := range st.IPs {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				return fmt.Errorf("static address %q: not an IP address: %w", s, ErrInvalid)
			}
			o.IPs = append(o.IPs, a)
		}
		if st.MAC != "" {
			mac, err := net.ParseMAC(st.MAC)
			if err != nil || len(mac) != 6 {
				return fmt.Errorf("MAC address %q: want six bytes like 02:42:ac:11:00:02: %w", st.MAC, ErrInvalid)
			}
			o.MAC = mac
		}
		r.perNetwork = append(r.perNetwork, o)
	}
	return nil
}
