package ocinet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"

	"github.com/ocinet/ocinet/internal/fsutil"
	"github.com/ocinet/ocinet/internal/host"
)

// Network is a CNI network: a conflist in the conf dir.
type Network struct {
	// Name is the network's name, unique in what a namespace sees.
	Name string
	// ID is the network's ID as nerdctl records it ("nerdctlID", the hex
	// SHA-256 of the name); "" for a conflist that neither ocinet nor
	// nerdctl made.
	ID string
	// File is the conflist's path.
	File string
	// Namespace is the containerd namespace whose directory of the conf
	// dir holds the file (nerdctl v2's layout), "" for the top level,
	// which every namespace sees.
	Namespace string
	// Bytes are the conflist's exact bytes.
	Bytes []byte
	// CNIVersion is the conflist's CNI spec version.
	CNIVersion string
	// Plugins are the plugin types of the chain, in order.
	Plugins []string
	// Bridge is the host bridge device of a bridge network, "" otherwise.
	Bridge string
	// Subnets are the IPAM subnets of the network, where the config says.
	Subnets []netip.Prefix
	// Gateways are the IPAM gateways, where the config says.
	Gateways []netip.Addr
	// Labels are the network's labels (nerdctl's "nerdctlLabels").
	Labels map[string]string
	// DNS are the network's name resolution settings (package dns).
	DNS DNSOptions

	// caps are the capabilities the chain's plugins declare.
	caps map[string]bool
}

// Default reports whether n is the default network.
func (n *Network) Default() bool { return n.Labels[labelDefault] == "true" }

// NetworkConfig describes a network to create. Only Name is required.
type NetworkConfig struct {
	// Driver is the kind of network, as nerdctl's --driver: "bridge" (the
	// default, also for ""), "macvlan" or "ipvlan".
	Driver string
	// Options are the driver's options, as nerdctl's -o KEY=VALUE. The
	// bridge driver takes none; macvlan and ipvlan take "parent" (the host
	// device the containers' interfaces hang off; required, must exist)
	// and "mode" (macvlan: bridge, private, vepa, passthru; ipvlan: l2, l3,
	// l3s; default: the plugin's, bridge and l2). Any other key is refused.
	Options map[string]string
	// Name is the network's name: letters, digits, '.', '_' and '-',
	// starting with a letter or digit, at most 64 characters.
	Name string
	// Subnet is the IPv4 subnet (default: the first 10.4.N.0/24, N >= 1,
	// that overlaps no other network, host address or host route).
	Subnet netip.Prefix
	// Gateway is the bridge's IPv4 address (default: the first address of
	// Subnet).
	Gateway netip.Addr
	// IPRange is the part of Subnet that containers get addresses from
	// (default: all of it).
	IPRange netip.Prefix
	// IPv6Subnet adds an IPv6 subnet for dual stack (default: IPv4 only).
	// Its gateway is its first address. Bridge driver only.
	IPv6Subnet netip.Prefix
	// Labels are stored in the conflist as nerdctl stores them (default:
	// none).
	Labels map[string]string
	// Internal makes a network without a way out: no default route, no
	// masquerade and no published ports (default: false). Bridge driver
	// only.
	Internal bool
	// DNS are its name resolution settings (default: a DNS responder,
	// peers in /etc/hosts).
	DNS DNSOptions
}

// DNSOptions are a network's name resolution settings. They are kept in the
// conflist under the top-level key "ocinetDNS", which libcni and nerdctl
// ignore, and only when they differ from the defaults.
type DNSOptions struct {
	// Disabled turns off the network's DNS responder (package dns), which
	// is otherwise on for a bridge network with a gateway.
	Disabled bool `json:"disabled,omitempty"`
	// HostsMode says how containers find their peers: HostsModeFiles ("",
	// the default) or HostsModeDNS.
	HostsMode string `json:"hostsMode,omitempty"`
}

// Hosts modes of DNSOptions.
const (
	// HostsModeFiles writes every peer into every peer's /etc/hosts, as
	// nerdctl does; the responder answers too.
	HostsModeFiles = "hosts"
	// HostsModeDNS leaves peers out of /etc/hosts: only the responder
	// answers for them, and a join writes one file.
	HostsModeDNS = "dns"
)

// labelDefault marks the default network, as nerdctl marks its own.
const labelDefault = "nerdctl/default-network"

// autoSubnetPattern gives the automatic subnets: 10.4.0.0/24 for the default
// network, 10.4.1.0/24 and up for the others, as nerdctl.
const autoSubnetPattern = "10.4.%d.0/24"

// confExtensions are the file endings read from the conf dir.
var confExtensions = []string{".conflist", ".json"}

// Networks returns the networks the Manager's namespace sees, sorted by
// name: those at the top level of the conf dir and, with [WithNamespace],
// those in the namespace's directory, as nerdctl v2 shows them. Files that
// are not valid conflists are skipped; when two files name the same
// network, the top level wins, then the first by file name, as with the CNI
// library.
func (m *Manager) Networks() ([]*Network, error) {
	nets, err := readNetworkDir(m.confDir, "")
	if err != nil {
		return nil, err
	}
	if m.namespace != "" {
		more, err := readNetworkDir(filepath.Join(m.confDir, m.namespace), m.namespace)
		if err != nil {
			return nil, err
		}
		nets = append(nets, more...)
	}
	return uniqueNetworks(nets), nil
}

// Network returns the network called name. The default network is created
// on first use, unless the conf dir has one already (nerdctl's, say).
func (m *Manager) Network(name string) (*Network, error) {
	n, err := m.lookup(name)
	if err != nil || n != nil {
		return n, err
	}
	if name != DefaultNetworkName {
		return nil, fmt.Errorf("network %q: %w in %s", name, ErrNotFound, m.confDir)
	}
	unlock, err := m.lockNetconf()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if n, err := m.lookup(name); err != nil || n != nil {
		return n, err
	}
	return m.createDefault()
}

// lookup returns the network called name, or nil when there is none.
func (m *Manager) lookup(name string) (*Network, error) {
	if err := validNetworkName(name); err != nil {
		return nil, err
	}
	nets, err := m.Networks()
	if err != nil {
		return nil, err
	}
	for _, n := range nets {
		if n.Name == name {
			return n, nil
		}
	}
	return nil, nil
}

// readNetwork reads the conflist file, which is in the directory of the
// namespace ns ("" for the top level).
func readNetwork(file, ns string) (*Network, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	list, err := libcni.ConfListFromBytes(b)
	if err != nil {
		return nil, err
	}
	n := &Network{Name: list.Name, File: file, Namespace: ns, Bytes: b, CNIVersion: list.CNIVersion, caps: map[string]bool{}}
	for _, p := range list.Plugins {
		n.Plugins = append(n.Plugins, p.Network.Type)
		for c, on := range p.Network.Capabilities {
			n.caps[c] = n.caps[c] || on
		}
	}
	var extra struct {
		ID      string            `json:"nerdctlID"`
		Labels  map[string]string `json:"nerdctlLabels"`
		DNS     DNSOptions        `json:"ocinetDNS"`
		Plugins []struct {
			Type   string `json:"type"`
			Bridge string `json:"bridge"`
			IPAM   struct {
				Subnet  string `json:"subnet"`
				Gateway string `json:"gateway"`
				Ranges  [][]struct {
					Subnet  string `json:"subnet"`
					Gateway string `json:"gateway"`
				} `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if json.Unmarshal(b, &extra) != nil {
		return n, nil
	}
	n.ID, n.Labels, n.DNS = extra.ID, extra.Labels, extra.DNS
	for i, p := range extra.Plugins {
		if i == 0 && p.Type == "bridge" {
			n.Bridge = p.Bridge
			if n.Bridge == "" {
				n.Bridge = "cni0" // the bridge plugin's default
			}
		}
		subnets := []string{p.IPAM.Subnet}
		gateways := []string{p.IPAM.Gateway}
		for _, set := range p.IPAM.Ranges {
			for _, r := range set {
				subnets = append(subnets, r.Subnet)
				gateways = append(gateways, r.Gateway)
			}
		}
		for _, s := range subnets {
			if pfx, err := netip.ParsePrefix(s); err == nil && !containsPrefix(n.Subnets, pfx.Masked()) {
				n.Subnets = append(n.Subnets, pfx.Masked())
			}
		}
		for _, g := range gateways {
			if a, err := netip.ParseAddr(g); err == nil {
				n.Gateways = append(n.Gateways, a)
			}
		}
	}
	return n, nil
}

func containsPrefix(list []netip.Prefix, p netip.Prefix) bool {
	for _, q := range list {
		if q == p {
			return true
		}
	}
	return false
}

// networkID is the ID nerdctl gives a network: the hex SHA-256 of its name.
func networkID(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:])
}

type ipRange struct {
	subnet     netip.Prefix
	gateway    netip.Addr
	start, end netip.Addr   // zero: the whole subnet
	within     netip.Prefix // the IP range given, if any
}

// hostPrefixes returns the prefixes in use on the host, except on the
// device skip (the network's own bridge, left from an earlier network of
// the same name, whose subnet can be taken again).
func (m *Manager) hostPrefixes(skip string) ([]host.Prefix, error) {
	p, err := m.host.Prefixes(skip)
	if err != nil {
		return nil, fmt.Errorf("prefixes in use on the host: %w", err)
	}
	return p, nil
}

// createDefault writes the default network's conflist at the top level of
// the conf dir, as nerdctl-bridge.conflist, the file nerdctl writes; a
// default network already there (labelled nerdctl/default-network=true,
// whoever wrote it) is returned instead. The caller holds the netconf locks.
func (m *Manager) createDefault() (*Network, error) {
	fail := func(err error) (*Network, error) { return nil, fmt.Errorf("create default network: %w", err) }
	top, err := readNetworkDir(m.confDir, "")
	if err != nil {
		return fail(err)
	}
	for _, n := range top {
		if n.Default() {
			return n, nil
		}
	}
	all, err := m.allNetworks()
	if err != nil {
		return fail(err)
	}
	var subnet netip.Prefix
	if m.subnet != "" {
		subnet = netip.MustParsePrefix(m.subnet)
	} else {
		inUse, herr := m.hostPrefixes(m.bridge)
		if herr != nil {
			return fail(herr)
		}
		if subnet, err = freeSubnet(0, all, inUse); err != nil {
			return fail(err)
		}
	}
	b, err := confList(netSpec{
		name:      DefaultNetworkName,
		bridge:    m.bridge,
		labels:    map[string]string{labelDefault: "true"},
		v4:        ipRange{subnet: subnet, gateway: subnet.Addr().Next()},
		isolation: m.firewallIsolation(context.Background()),
	})
	if err != nil {
		return fail(err)
	}
	file := filepath.Join(m.confDir, "nerdctl-"+DefaultNetworkName+".conflist")
	if _, err := os.Lstat(file); err == nil {
		return fail(fmt.Errorf("%s exists but is not a network config the CNI library reads; fix or remove it: %w", file, ErrConflict))
	}
	if err := fsutil.WriteFileAtomic(file, b, 0o644); err != nil {
		return fail(err)
	}
	m.log.Info("created default network", "file", file, "subnet", subnet, "bridge", m.bridge)
	return readNetwork(file, "")
}

// CreateNetwork writes the conflist of a new network in the format nerdctl
// v2.3.5 writes and returns the network. With [WithNamespace] the file is
// <conf dir>/<namespace>/nerdctl-<name>.conflist, where nerdctl keeps the
// namespace's networks; without, ocinet-<name>.conflist at the top level,
// which every namespace sees. The name must be free in what the namespace
// sees (at the top level: in every namespace), and an automatic subnet
// overlaps no network of any namespace; neither do explicit ones
// (ErrConflict). A bridge network's device is br-<first 12 characters of
// the ID>, as nerdctl names them; it appears with the first attachment.
// Nothing is written when the config is invalid (ErrInvalid, or
// ErrNotSupported for a combination the driver does not have), the name or
// a subnet is taken (ErrConflict), or a plugin of the chain is missing
// (ErrPluginNotFound).
func (m *Manager) CreateNetwork(ctx context.Context, cfg NetworkConfig) (*Network, error) {
	fail := func(err error) (*Network, error) {
		return nil, fmt.Errorf("create network %q: %w", cfg.Name, err)
	}
	spec, err := checkNetworkConfig(cfg)
	if err != nil {
		return fail(err)
	}
	if spec.parent != "" {
		ok, err := m.host.LinkExists(spec.parent)
		if err != nil {
			return fail(err)
		}
		if !ok {
			return fail(fmt.Errorf("parent %q: no such device on the host: %w", spec.parent, ErrInvalid))
		}
	}
	for _, p := range spec.plugins() {
		if _, err := m.exec.FindInPath(p, m.pluginDirs); err != nil {
			return fail(&PluginNotFoundError{Network: cfg.Name, Plugin: p, Dirs: m.pluginDirs})
		}
	}
	if spec.driver == "bridge" {
		spec.isolation = m.firewallIsolation(ctx)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	unlock, err := m.lockNetconf()
	if err != nil {
		return fail(err)
	}
	defer unlock()
	all, err := m.allNetworks()
	if err != nil {
		return fail(err)
	}
	seen := all // at the top level, the name must be free everywhere
	if m.namespace != "" {
		if seen, err = m.Networks(); err != nil {
			return fail(err)
		}
	}
	for _, n := range seen {
		if n.Name == cfg.Name {
			return fail(fmt.Errorf("a network of that name exists (%s): %w", n.File, ErrConflict))
		}
	}
	skip := spec.bridge // a leftover bridge of the same name can be reused
	if spec.parent != "" {
		skip = spec.parent // the parent's own subnet is the usual choice
	}
	inUse, err := m.hostPrefixes(skip)
	if err != nil {
		return fail(err)
	}
	if !spec.v4.subnet.IsValid() {
		subnet, err := freeSubnet(1, all, inUse)
		if err != nil {
			return fail(err)
		}
		spec.v4 = ipRange{subnet: subnet, gateway: subnet.Addr().Next()}
	}
	for _, p := range []netip.Prefix{spec.v4.subnet, spec.v6.subnet} {
		if !p.IsValid() {
			continue
		}
		if err := checkOverlap(p, all, inUse); err != nil {
			return fail(err)
		}
	}
	b, err := confList(spec)
	if err != nil {
		return fail(err)
	}
	file := filepath.Join(m.confDir, "ocinet-"+cfg.Name+".conflist")
	if m.namespace != "" {
		dir := filepath.Join(m.confDir, m.namespace)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fail(err)
		}
		file = filepath.Join(dir, "nerdctl-"+cfg.Name+".conflist")
	}
	if err := fsutil.WriteFileAtomic(file, b, 0o644); err != nil {
		return fail(err)
	}
	m.log.Info("created network", "name", cfg.Name, "driver", spec.driver, "file", file, "subnet", spec.v4.subnet, "bridge", spec.bridge, "parent", spec.parent)
	return readNetwork(file, m.namespace)
}

// checkNetworkConfig validates cfg and turns it into a spec; the IPv4
// subnet is left zero when it is to be chosen.
func checkNetworkConfig(cfg NetworkConfig) (netSpec, error) {
	s := netSpec{name: cfg.Name, driver: cfg.Driver, internal: cfg.Internal, dns: cfg.DNS}
	if err := validNetworkName(cfg.Name); err != nil {
		return s, err
	}
	switch m := cfg.DNS.HostsMode; {
	case m != "" && m != HostsModeFiles && m != HostsModeDNS:
		return s, fmt.Errorf("hosts mode %q: want %q or %q: %w", m, HostsModeFiles, HostsModeDNS, ErrInvalid)
	case m == HostsModeDNS && cfg.DNS.Disabled:
		return s, fmt.Errorf("hosts mode %q without DNS: containers could not find their peers: %w", m, ErrInvalid)
	}
	switch cfg.Name {
	case DefaultNetworkName:
		return s, fmt.Errorf("%q is the default network, made on first use: %w", cfg.Name, ErrInvalid)
	case "host", "none", "container":
		return s, fmt.Errorf("%q is a network mode, not a network name: %w", cfg.Name, ErrInvalid)
	}
	if err := checkDriver(&s, cfg); err != nil {
		return s, err
	}
	s.labels = map[string]string{}
	for k, v := range cfg.Labels {
		if k == "" || k == labelDefault {
			return s, fmt.Errorf("label %q: reserved or empty key: %w", k, ErrInvalid)
		}
		s.labels[k] = v
	}
	if cfg.Subnet.IsValid() {
		r, err := checkRange(cfg.Subnet, cfg.Gateway, cfg.IPRange, false)
		if err != nil {
			return s, err
		}
		s.v4 = r
	} else if cfg.Gateway.IsValid() || cfg.IPRange.IsValid() {
		return s, fmt.Errorf("a gateway or IP range needs a subnet: %w", ErrInvalid)
	}
	if cfg.IPv6Subnet.IsValid() {
		r, err := checkRange(cfg.IPv6Subnet, netip.Addr{}, netip.Prefix{}, true)
		if err != nil {
			return s, err
		}
		s.v6 = r
	}
	return s, nil
}

// checkRange checks a subnet, its gateway and its IP range, and fills the
// defaults.
func checkRange(subnet netip.Prefix, gw netip.Addr, within netip.Prefix, v6 bool) (ipRange, error) {
	r := ipRange{subnet: subnet}
	family := "IPv4"
	if v6 {
		family = "IPv6"
	}
	maxBits := 30
	if v6 {
		maxBits = 126
	}
	switch {
	case subnet.Addr().Is6() != v6 || subnet.Addr().Is4In6():
		return r, fmt.Errorf("subnet %s: not an %s subnet: %w", subnet, family, ErrInvalid)
	case subnet != subnet.Masked():
		return r, fmt.Errorf("subnet %s: host bits set (did you mean %s?): %w", subnet, subnet.Masked(), ErrInvalid)
	case subnet.Bits() < 8 || subnet.Bits() > maxBits:
		return r, fmt.Errorf("subnet %s: prefix length must be 8 to %d: %w", subnet, maxBits, ErrInvalid)
	}
	last := lastAddr(subnet)
	usable := func(a netip.Addr) bool {
		return subnet.Contains(a) && a != subnet.Addr() && (v6 || a != last)
	}
	if gw.IsValid() {
		if !usable(gw) {
			return r, fmt.Errorf("gateway %s: not a host address of subnet %s: %w", gw, subnet, ErrInvalid)
		}
		r.gateway = gw
	} else {
		r.gateway = subnet.Addr().Next()
	}
	if within.IsValid() {
		if within != within.Masked() || within.Addr().Is6() != v6 || within.Bits() < subnet.Bits() || !subnet.Contains(within.Addr()) {
			return r, fmt.Errorf("ip range %s: not a subnet of %s: %w", within, subnet, ErrInvalid)
		}
		// As nerdctl: from the range's second address to its last.
		r.within, r.start, r.end = within, within.Addr().Next(), lastAddr(within)
		if !r.start.IsValid() || !within.Contains(r.start) || r.end.Less(r.start) {
			return r, fmt.Errorf("ip range %s: no host address in it: %w", within, ErrInvalid)
		}
	}
	return r, nil
}

// lastAddr returns the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// checkOverlap refuses a subnet that overlaps another network's or a host
// address or route: containers there could not reach the host's peers.
func checkOverlap(p netip.Prefix, nets []*Network, inUse []host.Prefix) error {
	for _, n := range nets {
		for _, s := range n.Subnets {
			if s.Overlaps(p) {
				return fmt.Errorf("subnet %s overlaps %s of network %q: %w", p, s, n.Name, ErrConflict)
			}
		}
	}
	for _, h := range inUse {
		if h.Prefix.Overlaps(p) {
			return fmt.Errorf("subnet %s overlaps %s on host device %s: %w", p, h.Prefix, h.Dev, ErrConflict)
		}
	}
	return nil
}

// freeSubnet returns the first 10.4.N.0/24, N >= first, that overlaps no
// network in nets and nothing on the host.
func freeSubnet(first int, nets []*Network, inUse []host.Prefix) (netip.Prefix, error) {
	for i := first; i < 256; i++ {
		cand := netip.MustParsePrefix(fmt.Sprintf(autoSubnetPattern, i))
		if checkOverlap(cand, nets, inUse) == nil {
			return cand, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free subnet left in 10.4.0.0/16; give one: %w", ErrConflict)
}

// RemoveNetwork removes a network as nerdctl's `network rm` does: its
// conflist (wherever in the conf dir the namespace sees it, nerdctl's
// files included), its bridge device, and host-local's empty lease
// directory; and, what nerdctl leaves, the firewall plugin's isolation
// rules that name the bridge (see package internal/nftfw; on a host with
// legacy iptables they stay, and the logger says so). A bridge another
// network names too is left, with its rules. It waits for attachments in
// progress and refuses, with an *InUseError naming them, while containers
// are attached. The default network and networks that neither ocinet nor
// nerdctl made (no ID) are refused with ErrInvalid.
func (m *Manager) RemoveNetwork(ctx context.Context, name string) error {
	fail := func(err error) error { return fmt.Errorf("remove network %q: %w", name, err) }
	if err := validNetworkName(name); err != nil {
		return fail(err)
	}
	// Exclusive with every attach and detach: no attachment can start on
	// the network between the check below and the removal.
	gc, err := m.lock("gc", false)
	if err != nil {
		return fail(err)
	}
	defer gc.Unlock()
	unlock, err := m.lockNetconf()
	if err != nil {
		return fail(err)
	}
	defer unlock()
	n, err := m.lookup(name)
	if err != nil {
		return fail(err)
	}
	switch {
	case n == nil:
		return fail(fmt.Errorf("in %s: %w", m.confDir, ErrNotFound))
	case n.Default():
		return fail(fmt.Errorf("the default network cannot be removed: %w", ErrInvalid))
	case n.ID == "":
		return fail(fmt.Errorf("%s was not made by ocinet or nerdctl; remove the file yourself: %w", n.File, ErrInvalid))
	}
	users, err := m.networkUsers(name)
	if err != nil {
		return fail(err)
	}
	if len(users) > 0 {
		return fail(&InUseError{Network: name, Containers: users})
	}
	if err := fsutil.RemoveDurable(n.File); err != nil {
		return fail(err)
	}
	_ = os.Remove(m.warmMarker(compactJSON(n.Bytes)))
	var errs []error
	if n.Bridge != "" {
		nets, err := m.allNetworks()
		if err != nil {
			return fail(err)
		}
		shared := false
		for _, o := range nets {
			shared = shared || o.Bridge == n.Bridge
		}
		if !shared {
			if err := m.host.DeleteBridge(n.Bridge); err != nil {
				errs = append(errs, err)
			}
			if err := m.removeIsolation(n.Bridge); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := m.removeLeaseDir(n); err != nil {
		errs = append(errs, err)
	}
	if err := m.dp.removeNetwork(ctx, n.Bytes); err != nil {
		errs = append(errs, err)
	}
	m.log.Info("removed network", "name", name, "file", n.File)
	if len(errs) > 0 {
		return fail(errors.Join(errs...))
	}
	return nil
}

// networkUsers returns the names (or IDs) of the recorded attachments that
// use the network called name, complete or not.
func (m *Manager) networkUsers(name string) ([]string, error) {
	ids, err := m.journalIDs()
	if err != nil {
		return nil, err
	}
	var users []string
	for _, id := range ids {
		rec, err := m.readRecord(id)
		if err != nil {
			return nil, err
		}
		if rec == nil {
			continue
		}
		for _, nr := range rec.Networks {
			if nr.Name == name {
				u := rec.Name
				if u == "" {
					u = rec.ID
				}
				users = append(users, u)
				break
			}
		}
	}
	return users, nil
}

// removeLeaseDir removes host-local's directory of the network when it
// holds no lease (only its lock and last-reserved files).
func (m *Manager) removeLeaseDir(n *Network) error {
	var conf struct {
		Plugins []struct {
			IPAM struct {
				Type    string `json:"type"`
				DataDir string `json:"dataDir"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if json.Unmarshal(n.Bytes, &conf) != nil {
		return nil
	}
	for _, p := range conf.Plugins {
		if p.IPAM.Type != "host-local" {
			continue
		}
		base := p.IPAM.DataDir
		if base == "" {
			base = "/var/lib/cni/networks"
		}
		if err := m.host.RemoveLeaseDir(filepath.Join(base, n.Name)); err != nil {
			return err
		}
	}
	return nil
}
