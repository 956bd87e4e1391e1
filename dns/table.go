package dns

import (
	"iter"
	"net/netip"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/ocinet/ocinet/hosts"
)

// table is what the responder answers from: the names and addresses of the
// containers on its network. A table is never changed after it is built;
// the responder swaps in a new one when the store changes.
type table struct {
	// names maps a lower-case fully qualified name to the addresses of
	// every container that has it (name, hostname, alias or short ID), in
	// the order of their keys.
	names map[string][]netip.Addr
	// ptr maps a lower-case reverse name (in-addr.arpa or ip6.arpa) to the
	// names of the container that has the address.
	ptr map[string][]string
	// members is the number of ocinet's containers on the network, named
	// or not (nerdctl's, entry.foreign, are not counted).
	members int
	// others are the tables of the other networks of the network's
	// containers, by network name; askers maps an address of a container
	// on the network to its other networks, in the order of its record, so
	// that it resolves its peers on each of them too, as with docker's DNS.
	others map[string]*table
	askers map[netip.Addr][]string
}

// entry is what one record contributes, per network it is on, in the order
// of its networks.
type entry struct {
	nets  map[string]member
	order []string
	// foreign marks a container of nerdctl's: answered for, not counted
	// among the network's members (table.members).
	foreign bool
}

// entryOf returns r's entry.
func entryOf(r *hosts.Record) entry {
	e := entry{nets: map[string]member{}}
	for _, n := range r.Networks {
		if _, seen := e.nets[n.Name]; seen {
			continue
		}
		if m, ok := memberOf(r, n.Name); ok {
			e.nets[n.Name] = m
			e.order = append(e.order, n.Name)
		}
	}
	return e
}

// neighbours lists the other networks of the containers on network, sorted.
func neighbours(entries map[string]entry, network string) []string {
	var out []string
	for _, e := range entries {
		if _, on := e.nets[network]; !on {
			continue
		}
		for _, n := range e.order {
			if n != network && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// member is one container on the network, as the table needs it.
type member struct {
	names []string // fully qualified, lower case, no repeats
	// also are names answered for the addresses but not given by PTR (the
	// short ID, and every name followed by the network's, as docker's
	// DNS answers them), fully qualified, lower case, not among names.
	also []string
	ips  []netip.Addr
}

// shortID is the name docker and podman give a container whose ID is 64
// hexadecimal characters (theirs and nerdctl's are), besides its name and
// aliases: the ID's first 12 characters, in lower case. Any other ID (a
// containerd ID the caller chose, as ocictl's names) gives none.
func shortID(id string) string {
	if len(id) != 64 || strings.Trim(strings.ToLower(id), "0123456789abcdef") != "" {
		return ""
	}
	return strings.ToLower(id[:12])
}

// memberOf returns what r contributes on network, or false when r is not on
// it.
func memberOf(r *hosts.Record, network string) (member, bool) {
	var m member
	var on bool
	for _, n := range r.Networks {
		if n.Name == network {
			m.ips, on = slices.Clone(n.IPs), true
		}
	}
	if !on {
		return m, false
	}
	for _, n := range append([]string{r.Name, r.Hostname}, r.Aliases...) {
		if n == "" {
			continue
		}
		fq := strings.ToLower(mdns.Fqdn(n))
		if !slices.Contains(m.names, fq) {
			m.names = append(m.names, fq)
		}
	}
	add := func(fq string) {
		if !slices.Contains(m.names, fq) && !slices.Contains(m.also, fq) {
			m.also = append(m.also, fq)
		}
	}
	own := slices.Clone(m.names)
	if id := shortID(r.ID); id != "" {
		add(id + ".")
		own = append(own, id+".")
	}
	for _, n := range own {
		add(n + strings.ToLower(mdns.Fqdn(network)))
	}
	return m, true
}

// buildTables makes the table of network from entries, with the tables of
// its containers' other networks and the addresses that ask in them.
func buildTables(entries map[string]entry, network string) *table {
	on := func(n string) map[string]member {
		members := map[string]member{}
		for k, e := range entries {
			if m, ok := e.nets[n]; ok {
				members[k] = m
			}
		}
		return members
	}
	t := buildTable(on(network))
	t.members = 0
	for _, e := range entries {
		if _, ok := e.nets[network]; ok && !e.foreign {
			t.members++
		}
	}
	for _, n := range neighbours(entries, network) {
		if t.others == nil {
			t.others, t.askers = map[string]*table{}, map[netip.Addr][]string{}
		}
		t.others[n] = buildTable(on(n))
	}
	for _, e := range entries {
		m, ok := e.nets[network]
		if !ok || len(e.order) < 2 {
			continue
		}
		other := slices.DeleteFunc(slices.Clone(e.order), func(n string) bool { return n == network })
		for _, ip := range m.ips {
			t.askers[ip] = other
		}
	}
	return t
}

// forAsker yields the tables a query from src is answered from, in turn:
// the network's own, then those of src's other networks.
func (t *table) forAsker(src netip.Addr) iter.Seq[*table] {
	return func(yield func(*table) bool) {
		if !yield(t) {
			return
		}
		for _, n := range t.askers[src] {
			if !yield(t.others[n]) {
				return
			}
		}
	}
}

// lookup returns the addresses of name for a query from src (forAsker).
func (t *table) lookup(name string, src netip.Addr) ([]netip.Addr, bool) {
	for x := range t.forAsker(src) {
		if addrs, ok := x.names[name]; ok {
			return addrs, true
		}
	}
	return nil, false
}

// reverse returns the names of a reverse name for a query from src.
func (t *table) reverse(name string, src netip.Addr) ([]string, bool) {
	for x := range t.forAsker(src) {
		if names, ok := x.ptr[name]; ok {
			return names, true
		}
	}
	return nil, false
}

// buildTable makes the table of members, visited in the order of keys.
func buildTable(members map[string]member) *table {
	t := &table{names: map[string][]netip.Addr{}, ptr: map[string][]string{}, members: len(members)}
	keys := make([]string, 0, len(members))
	for k := range members {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		m := members[k]
		for _, n := range slices.Concat(m.names, m.also) {
			for _, ip := range m.ips {
				if !slices.Contains(t.names[n], ip) {
					t.names[n] = append(t.names[n], ip)
				}
			}
		}
		if len(m.names) == 0 {
			continue
		}
		for _, ip := range m.ips {
			rev, err := mdns.ReverseAddr(ip.String())
			if err != nil {
				continue
			}
			for _, n := range m.names {
				if !slices.Contains(t.ptr[rev], n) {
					t.ptr[rev] = append(t.ptr[rev], n)
				}
			}
		}
	}
	return t
}

// reverseAddr parses a reverse name ("4.3.2.1.in-addr.arpa.", or 32 nibbles
// then "ip6.arpa.") into the address it stands for. Anything else, a
// partial name among them, gives false.
func reverseAddr(name string) (netip.Addr, bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		labels := strings.Split(rest, ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, l := range labels {
			v, ok := decimalOctet(l)
			if !ok {
				return netip.Addr{}, false
			}
			b[3-i] = v
		}
		return netip.AddrFrom4(b), true
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		labels := strings.Split(rest, ".")
		if len(labels) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, l := range labels {
			if len(l) != 1 {
				return netip.Addr{}, false
			}
			v := strings.IndexByte("0123456789abcdef", l[0])
			if v < 0 {
				return netip.Addr{}, false
			}
			j := 31 - i // nibble index from the most significant
			b[j/2] |= byte(v) << (4 * (1 - j%2))
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// decimalOctet parses 0 to 255 without leading zeros.
func decimalOctet(s string) (byte, bool) {
	if s == "" || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	v := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		v = v*10 + int(s[i]-'0')
	}
	if v > 255 {
		return 0, false
	}
	return byte(v), true
}
