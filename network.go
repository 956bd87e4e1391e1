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
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"

	"github.com/ocinet/ocinet/internal/fsutil"
)

// Network is a CNI network: a conflist in the conf dir.
type Network struct {
	// Name is the network's name, unique in the conf dir.
	Name string
	// ID is the network's ID as nerdctl records it ("nerdctlID", the hex
	// SHA-256 of the name); "" for a conflist that neither ocinet nor
	// nerdctl made.
	ID string
	// File is the conflist's path.
	File string
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

// NetworkConfig describes a bridge network to create. Only Name is required.
type NetworkConfig struct {
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
	// Its gateway is its first address.
	IPv6Subnet netip.Prefix
	// Labels are stored in the conflist as nerdctl stores them (default:
	// none).
	Labels map[string]string
	// Internal makes a network without a way out: no default route, no
	// masquerade and no published ports (default: false).
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

// Networks returns every network in the conf dir, sorted by name. Files that
// are not valid conflists are skipped; when two files name the same network,
// the first by file name wins, as with the CNI library.
func (m *Manager) Networks() ([]*Network, error) {
	files, err := libcni.ConfFiles(m.confDir, confExtensions)
	if err != nil {
		return nil, fmt.Errorf("list networks in %s: %w", m.confDir, err)
	}
	var nets []*Network
	seen := map[string]bool{}
	sort.Strings(files)
	for _, f := range files {
		n, err := readNetwork(f)
		if err != nil || seen[n.Name] {
			continue
		}
		seen[n.Name] = true
		nets = append(nets, n)
	}
	sort.Slice(nets, func(i, j int) bool { return nets[i].Name < nets[j].Name })
	return nets, nil
}

// Network returns the network called name. The default network is created
// on first use.
func (m *Manager) Network(name string) (*Network, error) {
	n, err := m.lookup(name)
	if err != nil || n != nil {
		return n, err
	}
	if name != DefaultNetworkName {
		return nil, fmt.Errorf("network %q: %w in %s", name, ErrNotFound, m.confDir)
	}
	l, err := m.lock("netconf", false)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
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

func readNetwork(file string) (*Network, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	list, err := libcni.ConfListFromBytes(b)
	if err != nil {
		return nil, err
	}
	n := &Network{Name: list.Name, File: file, Bytes: b, CNIVersion: list.CNIVersion, caps: map[string]bool{}}
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

// bridgeSpec is what a bridge conflist is made from.
type bridgeSpec struct {
	name, bridge string
	labels       map[string]string
	v4           ipRange
	v6           ipRange // zero: IPv4 only
	internal     bool
	dns          DNSOptions
}

type ipRange struct {
	subnet     netip.Prefix
	gateway    netip.Addr
	start, end netip.Addr // zero: the whole subnet
}

// bridgeConfList renders a bridge network in the conflist format nerdctl
// writes (its ID and labels included), so that either tool can use a
// network the other made.
func bridgeConfList(s bridgeSpec) ([]byte, error) {
	type obj = map[string]any
	labels := s.labels
	if labels == nil {
		labels = map[string]string{}
	}
	rng := func(r ipRange) []obj {
		o := obj{"subnet": r.subnet.String(), "gateway": r.gateway.String()}
		if r.start.IsValid() {
			o["rangeStart"] = r.start.String()
			o["rangeEnd"] = r.end.String()
		}
		return []obj{o}
	}
	ranges := [][]obj{rng(s.v4)}
	routes := []obj{{"dst": "0.0.0.0/0"}}
	if s.v6.subnet.IsValid() {
		ranges = append(ranges, rng(s.v6))
		routes = append(routes, obj{"dst": "::/0"})
	}
	ipam := obj{"type": "host-local", "ranges": ranges}
	if !s.internal {
		ipam["routes"] = routes
	}
	bridge := obj{
		"type":        "bridge",
		"bridge":      s.bridge,
		"isGateway":   true,
		"ipMasq":      !s.internal,
		"hairpinMode": true,
		"ipam":        ipam,
	}
	if s.v6.subnet.IsValid() {
		// Dual stack: a static address per family goes through the "ips"
		// capability, since CNI_ARGS IP= carries one address only.
		bridge["capabilities"] = obj{"ips": true}
	}
	plugins := []obj{bridge}
	if !s.internal {
		plugins = append(plugins, obj{"type": "portmap", "capabilities": obj{"portMappings": true}})
	}
	plugins = append(plugins, obj{"type": "firewall", "ingressPolicy": "same-bridge"})
	conf := obj{
		"cniVersion":    "1.0.0",
		"name":          s.name,
		"nerdctlID":     networkID(s.name),
		"nerdctlLabels": labels,
		"plugins":       plugins,
	}
	if s.dns != (DNSOptions{}) {
		conf["ocinetDNS"] = s.dns
	}
	return json.MarshalIndent(conf, "", "  ")
}

// hostPrefixes returns the host's prefixes (see hostPrefixes), or none
// when the Manager's networks are not real (WithNamespaceCheck).
func (m *Manager) hostPrefixes(skip string) []hostPrefix {
	if !m.realNS {
		return nil
	}
	return hostPrefixes(skip)
}

// createDefault writes the default network's conflist. The caller holds the
// netconf lock.
func (m *Manager) createDefault() (*Network, error) {
	var subnet netip.Prefix
	if m.subnet != "" {
		subnet = netip.MustParsePrefix(m.subnet)
	} else {
		nets, err := m.Networks()
		if err != nil {
			return nil, fmt.Errorf("create default network: %w", err)
		}
		if subnet, err = freeSubnet(0, nets, m.hostPrefixes(m.bridge)); err != nil {
			return nil, fmt.Errorf("create default network: %w", err)
		}
	}
	b, err := bridgeConfList(bridgeSpec{
		name:   DefaultNetworkName,
		bridge: m.bridge,
		labels: map[string]string{labelDefault: "true"},
		v4:     ipRange{subnet: subnet, gateway: subnet.Addr().Next()},
	})
	if err != nil {
		return nil, err
	}
	file := filepath.Join(m.confDir, "ocinet-"+DefaultNetworkName+".conflist")
	if err := fsutil.WriteFileAtomic(file, b, 0o644); err != nil {
		return nil, fmt.Errorf("create default network: %w", err)
	}
	m.log.Info("created default network", "file", file, "subnet", subnet, "bridge", m.bridge)
	return readNetwork(file)
}

// CreateNetwork writes the conflist of a new bridge network to the conf dir
// as ocinet-<name>.conflist and returns the network. Its bridge device is
// br-<first 12 characters of the ID>, as nerdctl names them; it appears
// with the first attachment. Nothing is written when the config is invalid
// (ErrInvalid), the name or a subnet is taken (ErrConflict), or a plugin of
// the chain is missing (ErrPluginNotFound).
func (m *Manager) CreateNetwork(ctx context.Context, cfg NetworkConfig) (*Network, error) {
	fail := func(err error) (*Network, error) {
		return nil, fmt.Errorf("create network %q: %w", cfg.Name, err)
	}
	spec, err := checkNetworkConfig(cfg)
	if err != nil {
		return fail(err)
	}
	b, err := bridgeConfList(spec) // the chain, for the plugin check
	if err != nil {
		return fail(err)
	}
	list, err := libcni.ConfListFromBytes(b)
	if err != nil {
		return fail(err)
	}
	for _, p := range list.Plugins {
		if _, err := m.exec.FindInPath(p.Network.Type, m.pluginDirs); err != nil {
			return fail(&PluginNotFoundError{Network: cfg.Name, Plugin: p.Network.Type, Dirs: m.pluginDirs})
		}
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	l, err := m.lock("netconf", false)
	if err != nil {
		return fail(err)
	}
	defer l.Unlock()
	nets, err := m.Networks()
	if err != nil {
		return fail(err)
	}
	for _, n := range nets {
		if n.Name == cfg.Name {
			return fail(fmt.Errorf("a network of that name exists (%s): %w", n.File, ErrConflict))
		}
	}
	host := m.hostPrefixes(spec.bridge)
	if !spec.v4.subnet.IsValid() {
		subnet, err := freeSubnet(1, nets, host)
		if err != nil {
			return fail(err)
		}
		spec.v4 = ipRange{subnet: subnet, gateway: subnet.Addr().Next()}
	}
	for _, p := range []netip.Prefix{spec.v4.subnet, spec.v6.subnet} {
		if !p.IsValid() {
			continue
		}
		if err := checkOverlap(p, nets, host); err != nil {
			return fail(err)
		}
	}
	if b, err = bridgeConfList(spec); err != nil {
		return fail(err)
	}
	file := filepath.Join(m.confDir, "ocinet-"+cfg.Name+".conflist")
	if err := fsutil.WriteFileAtomic(file, b, 0o644); err != nil {
		return fail(err)
	}
	m.log.Info("created network", "name", cfg.Name, "file", file, "subnet", spec.v4.subnet, "bridge", spec.bridge)
	return readNetwork(file)
}

// checkNetworkConfig validates cfg and turns it into a bridge spec; the
// IPv4 subnet is left zero when it is to be chosen.
func checkNetworkConfig(cfg NetworkConfig) (bridgeSpec, error) {
	s := bridgeSpec{name: cfg.Name, internal: cfg.Internal, dns: cfg.DNS}
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
	s.bridge = "br-" + networkID(cfg.Name)[:12]
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
		r.start, r.end = within.Addr(), lastAddr(within)
		if r.start == subnet.Addr() {
			r.start = r.start.Next()
		}
		if !v6 && r.end == last {
			r.end = r.end.Prev()
		}
		if !r.start.IsValid() || !r.end.IsValid() || r.end.Less(r.start) {
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
func checkOverlap(p netip.Prefix, nets []*Network, host []hostPrefix) error {
	for _, n := range nets {
		for _, s := range n.Subnets {
			if s.Overlaps(p) {
				return fmt.Errorf("subnet %s overlaps %s of network %q: %w", p, s, n.Name, ErrConflict)
			}
		}
	}
	for _, h := range host {
		if h.prefix.Overlaps(p) {
			return fmt.Errorf("subnet %s overlaps %s on host device %s: %w", p, h.prefix, h.dev, ErrConflict)
		}
	}
	return nil
}

// freeSubnet returns the first 10.4.N.0/24, N >= first, that overlaps no
// network in nets and nothing on the host.
func freeSubnet(first int, nets []*Network, host []hostPrefix) (netip.Prefix, error) {
	for i := first; i < 256; i++ {
		cand := netip.MustParsePrefix(fmt.Sprintf(autoSubnetPattern, i))
		if checkOverlap(cand, nets, host) == nil {
			return cand, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free subnet left in 10.4.0.0/16; give one: %w", ErrConflict)
}

// RemoveNetwork deletes a network's conflist, its bridge device (as nerdctl
// does) and host-local's empty lease directory. It waits for attachments in
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
	l, err := m.lock("netconf", false)
	if err != nil {
		return fail(err)
	}
	defer l.Unlock()
	n, err := m.lookup(name)
	if err != nil {
		return fail(err)
	}
	switch {
	case n == nil:
		return fail(fmt.Errorf("%w in %s", ErrNotFound, m.confDir))
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
	if n.Bridge != "" && m.realNS {
		nets, err := m.Networks()
		if err != nil {
			return fail(err)
		}
		shared := false
		for _, o := range nets {
			shared = shared || o.Bridge == n.Bridge
		}
		if !shared {
			if err := deleteBridge(ctx, n.Bridge); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if m.realNS {
		if err := removeLeaseDir(n); err != nil {
			errs = append(errs, err)
		}
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
			if nr.Name == name && nr.IfName != "lo" {
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
func removeLeaseDir(n *Network) error {
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
		dir := filepath.Join(base, n.Name)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if e.Name() != "lock" && !strings.HasPrefix(e.Name(), "last_reserved_ip.") {
				return nil // a lease: not ours to drop
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove lease directory: %w", err)
		}
	}
	return nil
}
