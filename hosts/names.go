package hosts

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/ocinet/ocinet/internal/ident"
)

// ValidateName reports whether s may appear as a name in a hosts file: one or
// more RFC 1123 labels separated by dots (letters, digits and inner hyphens,
// 1 to 63 bytes each), at most 253 bytes in all. A trailing dot, an empty
// label, whitespace, '#', '_' and control characters are refused. The error
// wraps ErrInvalid and quotes s.
func ValidateName(s string) error { return ident.Hostname("name", s) }

// validateID checks the container ID rule (containerd's).
func validateID(id string) error { return ident.ContainerID(id) }

// validateNetworkName checks the network name rule, the one every package
// of ocinet uses.
func validateNetworkName(name string) error { return ident.NetworkName(name) }

// HostGateway, given as the address of an extra host ("NAME:host-gateway"),
// stands for the gateway of the container's first network.
const HostGateway = "host-gateway"

// ExtraHost is one --add-host entry.
type ExtraHost struct {
	Name string     // a name accepted by ValidateName
	IP   netip.Addr // the address; zero when Gateway is set
	// Gateway means "the gateway of the container's first network" instead
	// of IP. [Store.Join] refuses it when the container has no network or
	// its first network has no gateway.
	Gateway bool
}

// String returns e in the form ParseExtraHost reads.
func (e ExtraHost) String() string {
	if e.Gateway {
		return e.Name + ":" + HostGateway
	}
	return e.Name + ":" + e.IP.String()
}

// ParseExtraHost parses an --add-host value, as docker reads it: "NAME:IP"
// or "NAME=IP" (an IPv6 address may be bare, "h:::1", or bracketed,
// "h:[::1]"), or "NAME:host-gateway" ("NAME=host-gateway"). The name ends at
// the first '=' when there is one, else at the first ':'. Errors wrap
// ErrInvalid.
func ParseExtraHost(s string) (ExtraHost, error) {
	name, value, ok := strings.Cut(s, "=")
	if !ok {
		name, value, ok = strings.Cut(s, ":")
	}
	if !ok {
		return ExtraHost{}, fmt.Errorf("extra host %q: want NAME:IP, NAME=IP or NAME:%s: %w", s, HostGateway, ErrInvalid)
	}
	if err := ValidateName(name); err != nil {
		return ExtraHost{}, fmt.Errorf("extra host %q: %w", s, err)
	}
	if value == HostGateway {
		return ExtraHost{Name: name, Gateway: true}, nil
	}
	if len(value) > 2 && value[0] == '[' && value[len(value)-1] == ']' {
		value = value[1 : len(value)-1]
	}
	ip, err := netip.ParseAddr(value)
	if err != nil {
		return ExtraHost{}, fmt.Errorf("extra host %q: %q is not an IP address or %s: %w", s, value, HostGateway, ErrInvalid)
	}
	if ip.Zone() != "" {
		return ExtraHost{}, fmt.Errorf("extra host %q: the address has a zone: %w", s, ErrInvalid)
	}
	return ExtraHost{Name: name, IP: ip}, nil
}
