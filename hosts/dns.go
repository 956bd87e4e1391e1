package hosts

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// MaxAliases bounds the aliases of one record.
const MaxAliases = 32

func validateAliases(aliases []string) error {
	if len(aliases) > MaxAliases {
		return fmt.Errorf("%w aliases: %d of them, the limit is %d", ErrInvalid, len(aliases), MaxAliases)
	}
	for _, a := range aliases {
		if err := ValidateName(a); err != nil {
			return fmt.Errorf("alias: %w", err)
		}
	}
	return nil
}

// filesNetworks returns those of names on which peers are written into
// hosts files: the networks that neither r nor old (either may be nil)
// marks PeersByDNS. A join or leave on the others rewrites no peer's file.
func filesNetworks(names []string, r, old *Record) []string {
	byDNS := func(rec *Record, name string) bool {
		if rec == nil {
			return false
		}
		n := rec.network(name)
		return n != nil && n.PeersByDNS
	}
	return slices.DeleteFunc(slices.Clone(names), func(name string) bool {
		return byDNS(r, name) || byDNS(old, name)
	})
}

// RecordsDir returns the directory that holds the records. A record is
// created and replaced by a rename into it and removed by an unlink, so a
// reader that follows the store (a DNS responder, with inotify) watches this
// directory for IN_MOVED_TO and IN_DELETE and reads the record named by
// the event with [Store.Get].
func (s *Store) RecordsDir() string {
	return filepath.Join(s.dir, recordsDir)
}

// RecordID returns the container ID whose record file is called name in
// RecordsDir, or "" when name is no record file (a temporary file, say).
func RecordID(name string) string {
	id, ok := strings.CutSuffix(name, recordSuffix)
	if !ok || validateID(id) != nil {
		return ""
	}
	return id
}

// Members returns the records of the containers on network, sorted by ID,
// read through the network's index under the shared lock: the cost grows
// with the network's members, not with the store.
func (s *Store) Members(network string) ([]Record, error) {
	if err := validateNetworkName(network); err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	unlock, err := s.lock(unix.LOCK_SH)
	if err != nil {
		return nil, fmt.Errorf("members of network %q: %w", network, err)
	}
	defer unlock()
	m, err := newView(s).members(network)
	if err != nil {
		return nil, fmt.Errorf("members of network %q: %w", network, err)
	}
	out := make([]Record, len(m))
	for i, r := range m {
		out[i] = r.clone()
	}
	return out, nil
}

// Upstreams returns the servers that a resolver running on the host (not in
// a container) should forward to: the servers of o.HostPath as written,
// loopback ones included, since a stub resolver on the host's loopback is
// reachable from the host side; when it names none, those of
// o.UpstreamPath; when that names none either, DefaultNameservers (and
// DefaultNameserversIPv6 with o.IPv6). IPv6 servers are kept only with
// o.IPv6. o.DNS is not used.
func Upstreams(o ResolvOptions) ([]netip.Addr, error) {
	hostPath, upstreamPath := o.HostPath, o.UpstreamPath
	if hostPath == "" {
		hostPath = DefaultHostResolvConf
	}
	if upstreamPath == "" {
		upstreamPath = DefaultUpstreamResolvConf
	}
	var out []netip.Addr
	for _, p := range []string{hostPath, upstreamPath} {
		c, _, err := readResolvConf(p)
		if err != nil {
			return nil, fmt.Errorf("upstream servers: %w", err)
		}
		for _, ip := range c.servers {
			if !ip.Is6() || ip.Is4In6() || o.IPv6 {
				out = append(out, ip.Unmap())
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	defaults := DefaultNameservers
	if o.IPv6 {
		defaults += " " + DefaultNameserversIPv6
	}
	for _, s := range strings.Fields(defaults) {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

// withFirst returns first followed by the servers of rest that first does
// not name.
func withFirst(first, rest []netip.Addr) []netip.Addr {
	if len(first) == 0 {
		return rest
	}
	out := slices.Clone(first)
	for _, ip := range rest {
		if !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	return out
}
