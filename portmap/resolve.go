package portmap

import (
	"net/netip"
	"slices"
)

// overlaps reports whether a socket or reservation on address a and one on
// address b, for the same protocol and port, would collide:
//
//   - the zero Addr (every address) overlaps everything;
//   - within one family, addresses overlap when they are equal or either is
//     the wildcard (0.0.0.0 or ::);
//   - across families, :: overlaps every IPv4 address, because on Linux an
//     IPv6 wildcard socket also accepts IPv4 unless IPV6_V6ONLY is set (the
//     default, net.ipv6.bindv6only=0). In particular 0.0.0.0 and :: overlap.
//     0.0.0.0 does not overlap a specific IPv6 address such as ::1.
//
// IPv4-mapped IPv6 addresses must be unmapped before the call.
func overlaps(a, b netip.Addr) bool {
	if !a.IsValid() || !b.IsValid() {
		return true
	}
	if a.Is4() == b.Is4() {
		return a == b || a.IsUnspecified() || b.IsUnspecified()
	}
	return (a.Is6() && a.IsUnspecified()) || (b.Is6() && b.IsUnspecified())
}

// slot is a protocol and a host port.
type slot struct {
	proto string
	port  uint16
}

// holder is something holding a slot on an address.
type holder struct {
	addr netip.Addr
	// owner and label name another owner's reservation; owner is "" for a
	// host socket and for a port chosen earlier in the same Reserve call.
	owner, label string
	// spec is set for a port chosen earlier in the same call: the -p value
	// it came from.
	spec string
}

// takenSet indexes every held slot.
type takenSet map[slot][]holder

func (t takenSet) add(proto string, port uint16, h holder) {
	k := slot{proto, port}
	t[k] = append(t[k], h)
}

// conflict returns what holds port p, if anything. A port chosen earlier in
// the same call wins over another owner's reservation, which wins over a
// host socket, so that the message is the most useful one.
func (t takenSet) conflict(p Port) (holder, bool) {
	var found holder
	rank := 0
	for _, h := range t[slot{p.Protocol, p.HostPort}] {
		if !overlaps(h.addr, p.HostIP) {
			continue
		}
		r := 1
		switch {
		case h.spec != "":
			r = 3
		case h.owner != "":
			r = 2
		}
		if r > rank {
			found, rank = h, r
		}
	}
	return found, rank > 0
}

// conflictError turns a holder of p into the error for a port asked for by
// number.
func conflictError(spec string, p Port, h holder) error {
	if h.spec != "" {
		return invalidf("publish %q: host port %d/%s is also published by %q", spec, p.HostPort, p.Protocol, h.spec)
	}
	return &ConflictError{Port: p, Owner: h.owner, Label: h.label}
}

// resolver turns validated, normalised mappings into Ports.
type resolver struct {
	taken takenSet
	// local returns the range automatic ports come from; called at most
	// once, and only when a mapping needs it.
	local  func() (localPorts, error)
	cached *localPorts
}

// resolve chooses host ports for ms and returns them in the order of ms.
// Mappings with host ports given one to one are placed first, then pools,
// then automatic ports, so that an automatic choice never takes a port
// another mapping of the same call names. Two mappings of one call that
// overlap are an ErrInvalid error (identical mappings were merged before).
func (r *resolver) resolve(ms []Mapping) ([]Port, error) {
	out := make([][]Port, len(ms))
	for pass := range 3 {
		for i, m := range ms {
			var err error
			switch kind := mappingKind(m); {
			case kind == 0 && pass == 0:
				out[i], err = r.fixed(m)
			case kind == 1 && pass == 1:
				out[i], err = r.pool(m)
			case kind == 2 && pass == 2:
				out[i], err = r.auto(m)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	return slices.Concat(out...), nil
}

// mappingKind is 0 for host ports given one to one, 1 for a pool, 2 for
// automatic.
func mappingKind(m Mapping) int {
	switch {
	case m.HostPorts.isZero():
		return 2
	case m.HostPorts.size() != m.ContainerPorts.size():
		return 1
	default:
		return 0
	}
}

// take records ports as chosen by this call.
func (r *resolver) take(spec string, ports []Port) {
	for _, p := range ports {
		r.taken.add(p.Protocol, p.HostPort, holder{addr: p.HostIP, spec: spec})
	}
}

// free reports whether none of ports is held.
func (r *resolver) free(ports []Port) bool {
	for _, p := range ports {
		if _, busy := r.taken.conflict(p); busy {
			return false
		}
	}
	return true
}

func (r *resolver) fixed(m Mapping) ([]Port, error) {
	spec := m.String()
	ports := m.portsFrom(m.HostPorts.Start)
	for _, p := range ports {
		if h, busy := r.taken.conflict(p); busy {
			return nil, conflictError(spec, p, h)
		}
	}
	r.take(spec, ports)
	return ports, nil
}

func (r *resolver) pool(m Mapping) ([]Port, error) {
	spec := m.String()
	for hp := int(m.HostPorts.Start); hp <= int(m.HostPorts.End); hp++ {
		ports := m.portsFrom(uint16(hp))
		if r.free(ports) {
			r.take(spec, ports)
			return ports, nil
		}
	}
	return nil, exhaustedf("publish %q: every host port in %s is in use", spec, m.HostPorts.text())
}

func (r *resolver) auto(m Mapping) ([]Port, error) {
	if r.cached == nil {
		l, err := r.local()
		if err != nil {
			return nil, err
		}
		r.cached = &l
	}
	l := *r.cached
	spec := m.String()
	n := m.ContainerPorts.size()
	lo, hi := int(l.r.Start), int(l.r.End)
	for start := lo; start+n-1 <= hi; start++ {
		ok := true
		for i := range n {
			if l.isReserved(uint16(start + i)) {
				ok = false
				start += i // the next block to try starts after this port
				break
			}
		}
		if !ok {
			continue
		}
		ports := m.portsFrom(uint16(start))
		if r.free(ports) {
			r.take(spec, ports)
			return ports, nil
		}
	}
	if n == 1 {
		return nil, exhaustedf("publish %q: no free host port in %s (ip_local_port_range less ip_local_reserved_ports)",
			spec, l.r.text())
	}
	return nil, exhaustedf("publish %q: no %d contiguous free host ports in %s (ip_local_port_range less ip_local_reserved_ports)",
		spec, n, l.r.text())
}
