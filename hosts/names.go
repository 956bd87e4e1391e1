package hosts

import (
	"fmt"
	"net/netip"
	"strings"
)

const (
	maxNameLen  = 253 // RFC 1035 section 2.3.4, without the trailing dot
	maxLabelLen = 63
)

// ValidateName reports whether s may appear as a name in a hosts file: one or
// more RFC 1123 labels separated by dots (letters, digits and inner hyphens,
// 1 to 63 bytes each), at most 253 bytes in all. A trailing dot, an empty
// label, whitespace, '#', '_' and control characters are refused. The error
// wraps ErrInvalid and quotes s.
func ValidateName(s string) error {
	if s == "" {
		return fmt.Errorf("%w name %q: it is empty", ErrInvalid, s)
	}
	if len(s) > maxNameLen {
		return fmt.Errorf("%w name %q: it is %d bytes long, the limit is %d", ErrInvalid, s, len(s), maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '.' {
			return fmt.Errorf("%w name %q: it contains %q; only letters, digits, '-' and '.' are allowed", ErrInvalid, s, c)
		}
	}
	for label := range strings.SplitSeq(s, ".") {
		switch {
		case label == "":
			return fmt.Errorf("%w name %q: it has an empty label", ErrInvalid, s)
		case len(label) > maxLabelLen:
			return fmt.Errorf("%w name %q: label %q is %d bytes long, the limit is %d", ErrInvalid, s, label, len(label), maxLabelLen)
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Errorf("%w name %q: label %q starts or ends with '-'", ErrInvalid, s, label)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// fileSafe reports whether s is 1 to max of [A-Za-z0-9_.-], starting with a
// letter or digit: safe as a single path element (never empty, ".", ".."
// or containing '/'). It is a loop, not a regexp, because regexps compiled
// at package init cost the hook binary's start more than its own work.
func fileSafe(s string, max int) bool {
	if s == "" || len(s) > max || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// validateID checks the container ID rule.
func validateID(id string) error {
	if !fileSafe(id, 76) {
		return fmt.Errorf("%w container ID %q: want 1 to 76 of [A-Za-z0-9_.-], starting with a letter or digit", ErrInvalid, id)
	}
	return nil
}

// validateNetworkName checks the network name rule (that of libcni),
// capped to fit in one path element, since each network has an index
// directory.
func validateNetworkName(name string) error {
	if !fileSafe(name, 128) {
		return fmt.Errorf("%w network name %q: want 1 to 128 of [A-Za-z0-9_.-], starting with a letter or digit", ErrInvalid, name)
	}
	return nil
}

// HostGateway, given as the address of an extra host ("NAME:host-gateway"),
// stands for the gateway of the container's first network.
const HostGateway = "host-gateway"

// ExtraHost is one --add-host entry.
type ExtraHost struct {
	Name string     // a name accepted by ValidateName
	IP   netip.Addr // the address; zero when Gateway is set
	// Gateway means "the gateway of the container's first network" instead
	// of IP. When that network has no gateway, or the container has no
	// network, the entry is left out of the hosts file.
	Gateway bool
}

// String returns e in the form ParseExtraHost reads.
func (e ExtraHost) String() string {
	if e.Gateway {
		return e.Name + ":" + HostGateway
	}
	return e.Name + ":" + e.IP.String()
}

// ParseExtraHost parses an --add-host value: "NAME:IP" (an IPv6 address may
// be bare, "h:::1", or bracketed, "h:[::1]") or "NAME:host-gateway". Errors
// wrap ErrInvalid.
func ParseExtraHost(s string) (ExtraHost, error) {
	name, value, ok := strings.Cut(s, ":")
	if !ok {
		return ExtraHost{}, fmt.Errorf("%w extra host %q: want NAME:IP or NAME:%s", ErrInvalid, s, HostGateway)
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
		return ExtraHost{}, fmt.Errorf("%w extra host %q: %q is not an IP address or %s", ErrInvalid, s, value, HostGateway)
	}
	if ip.Zone() != "" {
		return ExtraHost{}, fmt.Errorf("%w extra host %q: the address has a zone", ErrInvalid, s)
	}
	return ExtraHost{Name: name, IP: ip}, nil
}
