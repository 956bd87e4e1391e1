package portmap

import (
	"net/netip"
	"strconv"
	"strings"
)

// PortRange is an inclusive range of port numbers; Start == End is a single
// port. The zero value means "not given".
type PortRange struct {
	Start, End uint16
}

func (r PortRange) isZero() bool { return r == PortRange{} }

// size is the number of ports in r (meaningful only when Start <= End).
func (r PortRange) size() int { return int(r.End) - int(r.Start) + 1 }

// text is r as written in a -p value: "80" or "80-82".
func (r PortRange) text() string {
	if r.Start == r.End {
		return strconv.Itoa(int(r.Start))
	}
	return strconv.Itoa(int(r.Start)) + "-" + strconv.Itoa(int(r.End))
}

// Mapping is one parsed -p value:
//
//	[hostIP:][hostPort[-hostPortEnd]:]containerPort[-containerPortEnd][/protocol]
//
// How the host ports are chosen depends on which parts are given:
//
//   - HostPorts and ContainerPorts of equal length: one to one
//     (8000-8002:80-82 maps 8000 to 80, 8001 to 81, 8002 to 82).
//   - A HostPorts range with a single container port (8000-8010:80): a pool;
//     an Allocator takes the lowest free port of the range.
//   - No HostPorts (80, 127.0.0.1::80, 80-82): an Allocator chooses one
//     contiguous block of free ports, one per container port, from the
//     kernel's local port range (see Allocator).
//
// A Mapping is encoded as text (and so in JSON) as its String form.
type Mapping struct {
	// HostIP is the host address to publish on. The zero Addr (not given)
	// means every address of both families. 0.0.0.0 and :: are kept as
	// written: every IPv4, respectively every IPv6 address. Never zoned and
	// never an IPv4-mapped IPv6 address.
	HostIP netip.Addr
	// HostPorts are the host ports; zero means "allocate automatically".
	HostPorts PortRange
	// ContainerPorts are the ports inside the container; required.
	ContainerPorts PortRange
	// Protocol is "tcp", "udp" or "sctp", in lower case. Parse always sets
	// it; in a Mapping built in code "" means "tcp".
	Protocol string
}

// String returns m in canonical -p form: an IPv6 host IP in brackets, ranges
// written out only when they are ranges, and the protocol always present, as
// in "127.0.0.1:8080:80/tcp", "[::1]::80/udp", "8000-8001:80-81/tcp" or
// "80/tcp". For a valid m, Parse(m.String()) returns m (with Protocol "tcp"
// when m's was "").
func (m Mapping) String() string {
	var b strings.Builder
	switch {
	case m.HostIP.IsValid():
		if m.HostIP.Is4() {
			b.WriteString(m.HostIP.String())
		} else {
			b.WriteByte('[')
			b.WriteString(m.HostIP.String())
			b.WriteByte(']')
		}
		b.WriteByte(':')
		if !m.HostPorts.isZero() {
			b.WriteString(m.HostPorts.text())
		}
		b.WriteByte(':')
	case !m.HostPorts.isZero():
		b.WriteString(m.HostPorts.text())
		b.WriteByte(':')
	}
	b.WriteString(m.ContainerPorts.text())
	b.WriteByte('/')
	b.WriteString(m.protocol())
	return b.String()
}

// protocol is m.Protocol with the default filled in.
func (m Mapping) protocol() string {
	if m.Protocol == "" {
		return "tcp"
	}
	return m.Protocol
}

// MarshalText returns m.String(). It fails with ErrInvalid when m is not
// valid, so that nothing is written that UnmarshalText would refuse.
func (m Mapping) MarshalText() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return []byte(m.String()), nil
}

// UnmarshalText parses b with Parse.
func (m *Mapping) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Validate checks a Mapping built in code against the rules Parse enforces:
// ports in 1-65535, ranges not reversed, host and container ranges of equal
// length unless the host range is a pool for one container port, a host IP
// without a zone and not IPv4-mapped, and a known lower-case protocol (or "").
// Errors wrap ErrInvalid.
func (m Mapping) Validate() error {
	return m.validate(m.String())
}

// validate is Validate with spec naming m in messages.
func (m Mapping) validate(spec string) error {
	if m.HostIP.IsValid() {
		if err := checkHostIP(spec, m.HostIP); err != nil {
			return err
		}
	}
	if !m.HostPorts.isZero() {
		if err := checkRange(spec, "host", m.HostPorts); err != nil {
			return err
		}
	}
	if m.ContainerPorts.isZero() {
		return invalidf("publish %q: no container port given", spec)
	}
	if err := checkRange(spec, "container", m.ContainerPorts); err != nil {
		return err
	}
	if !m.HostPorts.isZero() {
		h, c := m.HostPorts.size(), m.ContainerPorts.size()
		if h != c && c != 1 {
			if h == 1 {
				return invalidf("publish %q: host port %s is one port but container ports %s are %d; give a host range of the same length or leave the host port out",
					spec, m.HostPorts.text(), m.ContainerPorts.text(), c)
			}
			return invalidf("publish %q: host port range %s and container port range %s differ in length",
				spec, m.HostPorts.text(), m.ContainerPorts.text())
		}
	}
	if m.Protocol != "" && !knownProtocol(m.Protocol) {
		return invalidf("publish %q: unknown protocol %q (want tcp, udp or sctp)", spec, m.Protocol)
	}
	return nil
}

// checkHostIP enforces the rules on a valid host address.
func checkHostIP(spec string, ip netip.Addr) error {
	if ip.Zone() != "" {
		return invalidf("publish %q: host IP %q has a zone; zoned addresses are not supported", spec, ip.String())
	}
	if ip.Is4In6() {
		return invalidf("publish %q: host IP %q is IPv4-mapped; write it as %s", spec, ip.String(), ip.Unmap().String())
	}
	return nil
}

// checkRange enforces 1-65535 and Start <= End; side is "host" or
// "container".
func checkRange(spec, side string, r PortRange) error {
	if r.Start == 0 || r.End == 0 {
		return invalidf("publish %q: %s port 0 is out of range 1-65535", spec, side)
	}
	if r.Start > r.End {
		return invalidf("publish %q: %s port range %d-%d is reversed", spec, side, r.Start, r.End)
	}
	return nil
}

func knownProtocol(p string) bool {
	return p == "tcp" || p == "udp" || p == "sctp"
}

// Expand returns the concrete Ports of a Mapping whose host ports are all
// given one to one: no allocation is needed. It fails with ErrInvalid when m
// is not valid, when it has no host port, or when its host range is a pool
// for a single container port; use Allocator.Reserve for those.
func (m Mapping) Expand() ([]Port, error) {
	spec := m.String()
	if err := m.validate(spec); err != nil {
		return nil, err
	}
	if m.HostPorts.isZero() {
		return nil, invalidf("publish %q: no host port given; an Allocator must choose one", spec)
	}
	if m.HostPorts.size() != m.ContainerPorts.size() {
		return nil, invalidf("publish %q: host port range %s is a pool for one container port; an Allocator must choose from it",
			spec, m.HostPorts.text())
	}
	return m.portsFrom(m.HostPorts.Start), nil
}

// portsFrom maps m's container ports one to one onto host ports starting at
// host.
func (m Mapping) portsFrom(host uint16) []Port {
	n := m.ContainerPorts.size()
	ports := make([]Port, n)
	for i := range n {
		ports[i] = Port{
			HostIP:        m.HostIP,
			HostPort:      host + uint16(i),
			ContainerPort: m.ContainerPorts.Start + uint16(i),
			Protocol:      m.protocol(),
		}
	}
	return ports
}
