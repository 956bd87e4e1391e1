package hosts

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Default paths of ResolvOptions.
const (
	DefaultHostResolvConf     = "/etc/resolv.conf"
	DefaultUpstreamResolvConf = "/run/systemd/resolve/resolv.conf"
)

// DefaultNameservers are the servers, separated by spaces, that a container
// gets when no usable server is left (the host's were all loopback and no
// upstream file helped, or the container has no IPv6 and the host's were all
// IPv6). DefaultNameserversIPv6 are added to them when the container has
// IPv6.
const (
	DefaultNameservers     = "8.8.8.8 8.8.4.4"
	DefaultNameserversIPv6 = "2001:4860:4860::8888 2001:4860:4860::8844"
)

// DNS holds the --dns, --dns-search and --dns-option settings. Each
// non-empty field replaces that category of the host's settings as a whole;
// an empty one keeps the host's.
type DNS struct {
	// Servers are used as given: loopback and IPv6 servers are not dropped,
	// since the caller asked for them.
	Servers []netip.Addr
	// Search domains; the single domain "." means "no search domains".
	Search []string
	// Options, such as "ndots:2" or "edns0".
	Options []string
}

// ResolvOptions says how to build a container's resolv.conf. The zero value
// means: the host's /etc/resolv.conf, systemd-resolved's upstream file, no
// IPv6, no overrides.
type ResolvOptions struct {
	// HostPath is the host's resolv.conf; default DefaultHostResolvConf. A
	// missing file counts as an empty one.
	HostPath string
	// UpstreamPath is read instead of HostPath when every server of HostPath
	// is a loopback address (a stub resolver such as systemd-resolved's
	// 127.0.0.53 or a local dnsmasq, unreachable from the container's
	// namespace); default DefaultUpstreamResolvConf. Ignored when missing.
	UpstreamPath string
	// IPv6 says whether the container has IPv6; when false, IPv6 servers
	// from the host are dropped.
	IPv6 bool
	// DNS overrides the host's settings.
	DNS DNS
	// First are servers named before all others, whatever DNS says: the
	// DNS responders of the container's networks.
	First []netip.Addr
}

// resolvConf is the part of a resolv.conf this package keeps.
type resolvConf struct {
	servers []netip.Addr
	search  []string
	options []string
}

// parseResolvConf reads the nameserver, search, domain and options lines of
// a resolv.conf, as the C library does: comments start with '#' or ';' at
// the start of a line, the last search or domain line wins, options lines
// add up. Servers that do not parse and link-local servers with a zone
// (meaningless in another namespace) are skipped.
func parseResolvConf(b []byte) resolvConf {
	var c resolvConf
	for line := range strings.Lines(string(b)) {
		if line[0] == '#' || line[0] == ';' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if ip, err := netip.ParseAddr(f[1]); err == nil && ip.Zone() == "" {
				c.servers = append(c.servers, ip)
			}
		case "search":
			c.search = f[1:]
		case "domain":
			c.search = f[1:2]
		case "options":
			c.options = append(c.options, f[1:]...)
		}
	}
	return c
}

func readResolvConf(path string) (resolvConf, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return resolvConf{}, false, nil
	}
	if err != nil {
		return resolvConf{}, false, err
	}
	return parseResolvConf(b), true, nil
}

func allLoopback(ips []netip.Addr) bool {
	for _, ip := range ips {
		if !ip.Unmap().IsLoopback() {
			return false
		}
	}
	return len(ips) > 0
}

// validateDNS checks the overrides. Errors wrap ErrInvalid.
func validateDNS(d *DNS) error {
	for _, ip := range d.Servers {
		if !ip.IsValid() || ip.IsUnspecified() {
			return fmt.Errorf("%w DNS server %q: want a specified address", ErrInvalid, ip.String())
		}
	}
	for _, s := range d.Search {
		if s == "." && len(d.Search) == 1 {
			continue
		}
		if err := validateWord(s); err != nil {
			return fmt.Errorf("%w DNS search domain %q: %v", ErrInvalid, s, err)
		}
	}
	for _, o := range d.Options {
		if err := validateWord(o); err != nil {
			return fmt.Errorf("%w DNS option %q: %v", ErrInvalid, o, err)
		}
	}
	return nil
}

// validateWord accepts what can stand as one word of a resolv.conf line.
func validateWord(s string) error {
	if s == "" {
		return errors.New("it is empty")
	}
	if len(s) > maxNameLen+1 {
		return fmt.Errorf("it is %d bytes long, the limit is %d", len(s), maxNameLen+1)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '#' || c == ';' {
			return fmt.Errorf("it contains %q", c)
		}
	}
	return nil
}

// BuildResolvConf returns the content of a container's resolv.conf. It
// reads the host's file, and the upstream file when the host's servers are
// all loopback; it keeps the source's search domains and options; it drops
// loopback servers, and IPv6 servers when o.IPv6 is false; it falls back on
// DefaultNameservers (and DefaultNameserversIPv6 with IPv6) when no server is
// left; then each non-empty field of o.DNS replaces its category. Bad
// overrides give ErrInvalid.
func BuildResolvConf(o ResolvOptions) ([]byte, error) {
	if err := validateDNS(&o.DNS); err != nil {
		return nil, fmt.Errorf("build resolv.conf: %w", err)
	}
	hostPath := o.HostPath
	if hostPath == "" {
		hostPath = DefaultHostResolvConf
	}
	upstreamPath := o.UpstreamPath
	if upstreamPath == "" {
		upstreamPath = DefaultUpstreamResolvConf
	}
	src, _, err := readResolvConf(hostPath)
	if err != nil {
		return nil, fmt.Errorf("build resolv.conf: %w", err)
	}
	if allLoopback(src.servers) {
		up, ok, err := readResolvConf(upstreamPath)
		if err != nil {
			return nil, fmt.Errorf("build resolv.conf: %w", err)
		}
		if ok {
			src = up
		}
	}
	var servers []netip.Addr
	for _, ip := range src.servers {
		if ip.Unmap().IsLoopback() || (ip.Is6() && !o.IPv6) {
			continue
		}
		servers = append(servers, ip)
	}
	if len(servers) == 0 {
		defaults := DefaultNameservers
		if o.IPv6 {
			defaults += " " + DefaultNameserversIPv6
		}
		for _, s := range strings.Fields(defaults) {
			servers = append(servers, netip.MustParseAddr(s))
		}
	}
	c := resolvConf{servers: servers, search: src.search, options: src.options}
	if len(o.DNS.Servers) > 0 {
		c.servers = o.DNS.Servers
	}
	if len(o.DNS.Search) > 0 {
		c.search = o.DNS.Search
		if len(c.search) == 1 && c.search[0] == "." {
			c.search = nil
		}
	}
	if len(o.DNS.Options) > 0 {
		c.options = o.DNS.Options
	}
	c.servers = withFirst(o.First, c.servers)
	var b bytes.Buffer
	b.WriteString("# Generated by ocinet.\n")
	for _, ip := range c.servers {
		fmt.Fprintf(&b, "nameserver %s\n", ip)
	}
	if len(c.search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(c.search, " "))
	}
	if len(c.options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(c.options, " "))
	}
	return b.Bytes(), nil
}

// WriteResolvConf builds the resolv.conf of container id (see
// BuildResolvConf) and writes it in place into ResolvConfPath(id), creating
// the file if needed.
func (s *Store) WriteResolvConf(id string, o ResolvOptions) error {
	if err := validateID(id); err != nil {
		return fmt.Errorf("write resolv.conf: %w", err)
	}
	content, err := BuildResolvConf(o)
	if err != nil {
		return fmt.Errorf("write resolv.conf of %q: %w", id, err)
	}
	unlock, err := s.lock(unix.LOCK_EX)
	if err != nil {
		return fmt.Errorf("write resolv.conf of %q: %w", id, err)
	}
	defer unlock()
	f, err := openInPlace(s.ResolvConfPath(id))
	if err != nil {
		return fmt.Errorf("write resolv.conf of %q: %w", id, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("write resolv.conf of %q: %w", id, err)
	}
	if err := writeInPlace(f, content, fi.Size()); err != nil {
		return fmt.Errorf("write resolv.conf of %q: %w", id, err)
	}
	return nil
}
