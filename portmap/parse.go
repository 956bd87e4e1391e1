package portmap

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
)

// maxSpecLen bounds the input of Parse. The longest sensible value,
// "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535-65535:65535-65535/sctp",
// is 70 bytes.
const maxSpecLen = 128

// Parse parses one -p value:
//
//	[hostIP:][hostPort[-hostPortEnd]:]containerPort[-containerPortEnd][/protocol]
//
// The protocol is tcp (the default), udp or sctp, in any case. An IPv6 host
// IP must be in brackets ("[::1]:8080:80", "[::]::80"); an IPv4 one must
// not. An empty host port ("127.0.0.1::80", ":80", or none at all as in "80")
// asks for automatic allocation. Parse is strict: it refuses port 0, ports
// above 65535, signs, reversed ranges, ranges of different lengths (except a
// host range for one container port, which is a pool), zoned and
// IPv4-mapped IPv6 addresses, whitespace, empty parts, extra colons or
// slashes, and input longer than 128 bytes. Errors wrap ErrInvalid and name
// the offending part:
//
//	publish "8080:80/tpc": unknown protocol "tpc" (want tcp, udp or sctp)
func Parse(spec string) (Mapping, error) {
	if len(spec) > maxSpecLen {
		return Mapping{}, invalidf("publish value of %d bytes is too long (at most %d)", len(spec), maxSpecLen)
	}
	if spec == "" {
		return Mapping{}, invalidf("publish %q: no container port given", spec)
	}
	for i, r := range spec {
		if unicode.IsSpace(r) {
			return Mapping{}, invalidf("publish %q: whitespace %q at offset %d", spec, r, i)
		}
		if !specRune(r) {
			return Mapping{}, invalidf("publish %q: unexpected %q at offset %d", spec, r, i)
		}
	}

	m := Mapping{Protocol: "tcp"}
	addr, proto, hasProto := strings.Cut(spec, "/")
	if hasProto {
		if p, extra, more := strings.Cut(proto, "/"); more {
			return Mapping{}, invalidf("publish %q: unexpected %q after protocol %q; only one \"/\" is allowed", spec, "/"+extra, p)
		}
		if proto == "" {
			return Mapping{}, invalidf("publish %q: empty protocol after \"/\"", spec)
		}
		lower := strings.ToLower(proto)
		if !knownProtocol(lower) {
			return Mapping{}, invalidf("publish %q: unknown protocol %q (want tcp, udp or sctp)", spec, proto)
		}
		m.Protocol = lower
	}

	ipPart, hostPart, contPart, hasIP, bracketed, err := splitAddr(spec, addr)
	if err != nil {
		return Mapping{}, err
	}
	if hasIP {
		if m.HostIP, err = parseHostIP(spec, ipPart, bracketed); err != nil {
			return Mapping{}, err
		}
	}
	if hostPart != "" {
		if m.HostPorts, err = parseRange(spec, "host", hostPart); err != nil {
			return Mapping{}, err
		}
	}
	if contPart == "" {
		return Mapping{}, invalidf("publish %q: no container port given", spec)
	}
	if m.ContainerPorts, err = parseRange(spec, "container", contPart); err != nil {
		return Mapping{}, err
	}
	if err := m.validate(spec); err != nil {
		return Mapping{}, err
	}
	return m, nil
}

// specRune reports whether r may appear in a -p value at all: letters (for
// protocols and IPv6 hex), digits, and ".:[]/-%". '%' is let through so that
// a zone gets its own message.
func specRune(r rune) bool {
	switch {
	case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		return true
	}
	return strings.ContainsRune(".:[]/-%", r)
}

// splitAddr splits the part of spec before the protocol into host IP, host
// ports and container ports.
func splitAddr(spec, addr string) (ipPart, hostPart, contPart string, hasIP, bracketed bool, err error) {
	if rest, ok := strings.CutPrefix(addr, "["); ok {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", "", "", false, false, invalidf("publish %q: missing \"]\" after host IP %q", spec, rest)
		}
		ipPart, rest = rest[:end], rest[end+1:]
		bracket := "[" + ipPart + "]"
		after, ok := strings.CutPrefix(rest, ":")
		if !ok {
			return "", "", "", false, false, invalidf("publish %q: want \":\" after host IP %s", spec, bracket)
		}
		hostPart, contPart, ok = strings.Cut(after, ":")
		if !ok {
			return "", "", "", false, false, invalidf("publish %q: want hostPort:containerPort after host IP %s (an empty host port allocates one, as in %q)",
				spec, bracket, bracket+"::"+after)
		}
		if strings.Contains(contPart, ":") {
			return "", "", "", false, false, invalidf("publish %q: too many \":\" after host IP %s (want [hostIP]:[hostPort]:containerPort)", spec, bracket)
		}
		return ipPart, hostPart, contPart, true, true, nil
	}
	parts := strings.Split(addr, ":")
	switch n := len(parts); n {
	case 1:
		return "", "", parts[0], false, false, nil
	case 2:
		return "", parts[0], parts[1], false, false, nil
	case 3:
		return parts[0], parts[1], parts[2], true, false, nil
	default:
		ip := strings.Join(parts[:n-2], ":")
		if a, perr := netip.ParseAddr(ip); perr == nil && a.Is6() {
			return "", "", "", false, false, invalidf("publish %q: IPv6 host IP %q must be in brackets, as in %q",
				spec, ip, "["+ip+"]:"+parts[n-2]+":"+parts[n-1])
		}
		return "", "", "", false, false, invalidf("publish %q: too many \":\" in %q (want [hostIP:][hostPort:]containerPort)", spec, addr)
	}
}

// parseHostIP parses the host IP part; bracketed says whether it was written
// in brackets.
func parseHostIP(spec, s string, bracketed bool) (netip.Addr, error) {
	if s == "" {
		if bracketed {
			return netip.Addr{}, invalidf("publish %q: empty host IP \"[]\"", spec)
		}
		return netip.Addr{}, invalidf("publish %q: empty host IP before the host port (leave both out, or write an IPv6 address in brackets)", spec)
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		if zone := strings.IndexByte(s, '%'); zone >= 0 {
			return netip.Addr{}, invalidf("publish %q: host IP %q has a zone; zoned addresses are not supported", spec, s)
		}
		return netip.Addr{}, invalidf("publish %q: invalid host IP %q", spec, s)
	}
	if bracketed && ip.Is4() {
		return netip.Addr{}, invalidf("publish %q: IPv4 host IP %q must not be in brackets", spec, s)
	}
	if err := checkHostIP(spec, ip); err != nil {
		return netip.Addr{}, err
	}
	return ip, nil
}

// parseRange parses "N" or "N-M" for side "host" or "container". Port 0 is
// refused here, as PortRange{} would read as "not given"; order is checked
// later by validate.
func parseRange(spec, side, s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if isRange && (lo == "" || hi == "" || strings.Contains(hi, "-")) {
		return PortRange{}, invalidf("publish %q: invalid %s port range %q", spec, side, s)
	}
	start, err := parsePort(spec, side, lo)
	if err != nil {
		return PortRange{}, err
	}
	end := start
	if isRange {
		if end, err = parsePort(spec, side, hi); err != nil {
			return PortRange{}, err
		}
	}
	return PortRange{Start: start, End: end}, nil
}

// parsePort parses a decimal port number in 1-65535 without sign.
func parsePort(spec, side, s string) (uint16, error) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, invalidf("publish %q: invalid %s port %q", spec, side, s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if errors.Is(err, strconv.ErrRange) || (err == nil && n == 0) {
		return 0, invalidf("publish %q: %s port %s is out of range 1-65535", spec, side, s)
	}
	if err != nil {
		return 0, invalidf("publish %q: invalid %s port %q", spec, side, s)
	}
	return uint16(n), nil
}
