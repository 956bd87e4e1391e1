package ocinet

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/ocinet/ocinet/internal/fsutil"
	"github.com/ocinet/ocinet/internal/ident"
)

// nerdctlLockFile is the lock file, at the top of the conf dir, that
// nerdctl v2 holds (flock, exclusive) while it creates or removes a
// network. ocinet takes it after its own netconf lock.
const nerdctlLockFile = ".nerdctl.lock"

// validNamespace checks a containerd namespace name as containerd does
// (package ident's rule, shared by every package).
func validNamespace(ns string) error { return ident.Namespace(ns) }

// lockNetconf takes the locks of network creation and removal: ocinet's
// netconf lock, then nerdctl's lock on the conf dir. It returns the
// function that releases both.
func (m *Manager) lockNetconf() (unlock func(), err error) {
	own, err := m.lock("netconf", false)
	if err != nil {
		return nil, err
	}
	nerdctl, err := fsutil.LockFile(filepath.Join(m.confDir, nerdctlLockFile), fsutil.Exclusive)
	if err != nil {
		own.Unlock()
		return nil, err
	}
	return func() { nerdctl.Unlock(); own.Unlock() }, nil
}

// readNetworkDir reads the networks of one directory of the conf dir (the
// top level when ns is "", else namespace ns's), in file name order,
// skipping files that are not valid conflists. A missing directory has
// none.
func readNetworkDir(dir, ns string) ([]*Network, error) {
	files, err := libcni.ConfFiles(dir, confExtensions)
	if err != nil {
		return nil, fmt.Errorf("list networks in %s: %w", dir, err)
	}
	sort.Strings(files)
	var nets []*Network
	for _, f := range files {
		if n, err := readNetworkCached(f, ns); err == nil {
			nets = append(nets, n)
		}
	}
	return nets, nil
}

// uniqueNetworks keeps the first network of each name and sorts by name.
func uniqueNetworks(nets []*Network) []*Network {
	seen := map[string]bool{}
	var out []*Network
	for _, n := range nets {
		if !seen[n.Name] {
			seen[n.Name] = true
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// allNetworks returns the networks of the top level and of every namespace
// directory, duplicates of a name included: what a new subnet or bridge must
// not collide with.
func (m *Manager) allNetworks() ([]*Network, error) {
	nets, err := readNetworkDir(m.confDir, "")
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(m.confDir)
	if err != nil {
		return nil, fmt.Errorf("list networks in %s: %w", m.confDir, err)
	}
	for _, e := range ents {
		if !e.IsDir() || validNamespace(e.Name()) != nil {
			continue
		}
		more, err := readNetworkDir(filepath.Join(m.confDir, e.Name()), e.Name())
		if err != nil {
			return nil, err
		}
		nets = append(nets, more...)
	}
	return nets, nil
}

// The drivers and, for macvlan and ipvlan, the modes their plugins accept.
var driverModes = map[string][]string{
	"bridge":  nil,
	"macvlan": {"bridge", "private", "vepa", "passthru"},
	"ipvlan":  {"l2", "l3", "l3s"},
}

// netSpec is what a conflist is made from.
type netSpec struct {
	name, driver string
	bridge       string // bridge driver: the device
	parent, mode string // macvlan, ipvlan: the host device and the mode ("" = the plugin's)
	labels       map[string]string
	v4           ipRange
	v6           ipRange // zero: IPv4 only
	internal     bool
	isolation    bool // the firewall plugin gets ingressPolicy same-bridge
	dns          DNSOptions
}

// checkDriver checks cfg's driver and options and fills s's.
func checkDriver(s *netSpec, cfg NetworkConfig) error {
	if s.driver == "" {
		s.driver = "bridge"
	}
	modes, ok := driverModes[s.driver]
	if !ok {
		return fmt.Errorf("driver %q: not one of bridge, macvlan, ipvlan: %w", cfg.Driver, ErrInvalid)
	}
	if s.driver == "bridge" {
		for k := range cfg.Options {
			return fmt.Errorf("option %q: the bridge driver takes no options: %w", k, ErrInvalid)
		}
		s.bridge = "br-" + networkID(cfg.Name)[:12]
		return nil
	}
	for k, v := range cfg.Options {
		switch k {
		case "parent":
			if err := validIfaceName(v); err != nil {
				return fmt.Errorf("option parent: %w", err)
			}
			s.parent = v
		case "mode":
			if !containsString(modes, v) {
				return fmt.Errorf("option mode=%q: the %s driver's modes are %s: %w", v, s.driver, strings.Join(modes, ", "), ErrInvalid)
			}
			s.mode = v
		default:
			return fmt.Errorf("option %q: the %s driver takes parent and mode: %w", k, s.driver, ErrInvalid)
		}
	}
	switch {
	case s.parent == "":
		return fmt.Errorf("the %s driver needs -o parent=DEVICE: %w", s.driver, ErrInvalid)
	case cfg.Internal:
		return fmt.Errorf("internal %s networks: %w", s.driver, ErrNotSupported)
	case cfg.IPv6Subnet.IsValid():
		return fmt.Errorf("IPv6 on %s networks: %w", s.driver, ErrNotSupported)
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// plugins returns the plugin types of the spec's chain, IPAM included.
func (s netSpec) plugins() []string {
	switch {
	case s.driver != "bridge":
		return []string{s.driver, "host-local"}
	case s.internal:
		return []string{"bridge", "host-local", "firewall", "tuning"}
	}
	return []string{"bridge", "host-local", "portmap", "firewall", "tuning"}
}

// The conflist, field by field in nerdctl's order.
type (
	confJSON struct {
		CNIVersion string            `json:"cniVersion"`
		Name       string            `json:"name"`
		ID         string            `json:"nerdctlID"`
		Labels     map[string]string `json:"nerdctlLabels,omitempty"`
		// DNS is ocinet's own (nerdctl and libcni ignore the key),
		// written only when it differs from the defaults.
		DNS     *DNSOptions `json:"ocinetDNS,omitempty"`
		Plugins []any       `json:"plugins"`
	}
	ipamJSON struct {
		Ranges [][]map[string]string `json:"ranges"`
		Routes []map[string]string   `json:"routes,omitempty"`
		Type   string                `json:"type"`
	}
	bridgeJSON struct {
		Type         string          `json:"type"`
		Bridge       string          `json:"bridge"`
		IsGateway    bool            `json:"isGateway,omitempty"`
		IPMasq       bool            `json:"ipMasq,omitempty"`
		HairpinMode  bool            `json:"hairpinMode"`
		IPAM         ipamJSON        `json:"ipam"`
		Capabilities map[string]bool `json:"capabilities,omitempty"`
	}
	vlanJSON struct {
		Type   string   `json:"type"`
		Master string   `json:"master"`
		Mode   string   `json:"mode,omitempty"`
		IPAM   ipamJSON `json:"ipam"`
	}
	pluginJSON struct {
		Type          string          `json:"type"`
		Capabilities  map[string]bool `json:"capabilities,omitempty"`
		IngressPolicy string          `json:"ingressPolicy,omitempty"`
	}
)

// confList renders a network in the conflist format nerdctl v2.3.5 writes
// for the same options (its ID and labels included), so that either tool
// can use and remove a network the other made. nerdctl's shapes: a bridge
// network is bridge, portmap, firewall, tuning; an internal one has no
// portmap, no isGateway, no ipMasq and no routes; dual stack adds a second
// range set and the "ips" capability but no IPv6 route; labels are left
// out when there are none; the firewall gets ingressPolicy same-bridge only
// when the installed plugin has it; macvlan and ipvlan are one plugin on
// the parent device.
func confList(s netSpec) ([]byte, error) {
	rng := func(r ipRange) []map[string]string {
		o := map[string]string{"subnet": r.subnet.String(), "gateway": r.gateway.String()}
		if r.within.IsValid() {
			o["ipRange"] = r.within.String()
			o["rangeStart"] = r.start.String()
			o["rangeEnd"] = r.end.String()
		}
		return []map[string]string{o}
	}
	ipam := ipamJSON{Type: "host-local", Ranges: [][]map[string]string{rng(s.v4)}}
	if s.v6.subnet.IsValid() {
		ipam.Ranges = append(ipam.Ranges, rng(s.v6))
	}
	if !s.internal {
		ipam.Routes = []map[string]string{{"dst": "0.0.0.0/0"}}
	}
	var plugins []any
	if s.driver == "macvlan" || s.driver == "ipvlan" {
		plugins = append(plugins, vlanJSON{Type: s.driver, Master: s.parent, Mode: s.mode, IPAM: ipam})
	} else {
		br := bridgeJSON{Type: "bridge", Bridge: s.bridge, IsGateway: !s.internal, IPMasq: !s.internal, HairpinMode: true, IPAM: ipam}
		if s.v6.subnet.IsValid() {
			// Dual stack: a static address per family goes through the
			// "ips" capability, since CNI_ARGS IP= carries one address only.
			br.Capabilities = map[string]bool{"ips": true}
		}
		plugins = append(plugins, br)
		if !s.internal {
			plugins = append(plugins, pluginJSON{Type: "portmap", Capabilities: map[string]bool{"portMappings": true}})
		}
		fw := pluginJSON{Type: "firewall"}
		if s.isolation {
			fw.IngressPolicy = "same-bridge"
		}
		plugins = append(plugins, fw, pluginJSON{Type: "tuning"})
	}
	conf := confJSON{CNIVersion: "1.0.0", Name: s.name, ID: networkID(s.name), Plugins: plugins}
	if s.dns != (DNSOptions{}) {
		dns := s.dns
		conf.DNS = &dns
	}
	if len(s.labels) > 0 {
		conf.Labels = s.labels
	}
	return json.MarshalIndent(conf, "", "  ")
}

// pluginsModule is the module of the standard CNI plugins.
const pluginsModule = "github.com/containernetworking/plugins"

// firewallIsolation reports whether the firewall plugin in the plugin
// directories has ingressPolicy (plugins v1.1.0 and later), the test nerdctl
// makes before it writes one. A plugin whose release cannot be told gets
// none, as with nerdctl, and the logger says so.
func (m *Manager) firewallIsolation(ctx context.Context) bool {
	path, err := m.exec.FindInPath("firewall", m.pluginDirs)
	if err != nil {
		return false
	}
	v, ok := pluginRelease(ctx, path)
	if !ok {
		m.log.Warn("firewall plugin release unknown: networks get no isolation between bridges (ingressPolicy)", "plugin", path)
		return false
	}
	return !versionLess(v, [3]int{1, 1, 0})
}

// pluginRelease returns the release of the CNI plugins that the binary at
// path was built from: the module version in its Go build information, or,
// when that has none (a build from a checkout), the version the plugin
// prints for --version ("CNI firewall plugin v1.9.1"), which is what nerdctl
// reads. The CNI VERSION command cannot tell: it names the spec versions
// the plugin speaks, not its release.
func pluginRelease(ctx context.Context, path string) ([3]int, bool) {
	if bi, err := buildinfo.ReadFile(path); err == nil && strings.HasPrefix(bi.Path, pluginsModule+"/") {
		mod := &bi.Main
		if mod.Path != pluginsModule {
			mod = nil
			for _, d := range bi.Deps {
				if d.Path == pluginsModule {
					mod = d
				}
			}
		}
		if mod != nil && mod.Replace != nil {
			mod = mod.Replace
		}
		if mod != nil {
			if v, ok := parseVersion(mod.Version); ok {
				return v, true
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "--version")
	cmd.Env = []string{}
	out, err := cmd.Output()
	if err != nil {
		return [3]int{}, false
	}
	first, _, _ := strings.Cut(string(out), "\n")
	for _, f := range strings.Fields(first) {
		if v, ok := parseVersion(f); ok {
			return v, true
		}
	}
	return [3]int{}, false
}

// parseVersion parses "vMAJOR.MINOR.PATCH" with an optional pre-release
// or build suffix.
func parseVersion(s string) ([3]int, bool) {
	var v [3]int
	rest, ok := strings.CutPrefix(s, "v")
	if !ok {
		return v, false
	}
	if i := strings.IndexAny(rest, "-+"); i >= 0 {
		rest = rest[:i]
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, false
		}
		v[i] = n
	}
	return v, true
}

func versionLess(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// removeIsolation removes the firewall plugin's isolation rules that name
// bridge.
func (m *Manager) removeIsolation(bridge string) error {
	removed, legacy, err := m.host.RemoveIsolation(bridge)
	if err != nil {
		return err
	}
	if removed > 0 {
		m.log.Info("removed isolation rules", "bridge", bridge, "rules", removed)
	}
	if len(legacy) > 0 {
		m.log.Warn("legacy iptables: the firewall plugin's isolation rules of the bridge are left in place", "bridge", bridge, "families", legacy)
	}
	return nil
}

// PruneNetworks removes, as [Manager.RemoveNetwork] does, every network
// the namespace sees that no container is attached to, except the default
// network and networks that neither ocinet nor nerdctl made, and returns
// the names of those removed, sorted. Networks in use are skipped. Only
// attachments recorded in this Manager's state root count as use.
func (m *Manager) PruneNetworks(ctx context.Context) ([]string, error) {
	nets, err := m.Networks()
	if err != nil {
		return nil, fmt.Errorf("prune networks: %w", err)
	}
	var removed []string
	var errs []error
	for _, n := range nets {
		if n.Default() || n.ID == "" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return removed, fmt.Errorf("prune networks: %w", err)
		}
		err := m.RemoveNetwork(ctx, n.Name)
		var inUse *InUseError
		switch {
		case errors.As(err, &inUse), errors.Is(err, ErrNotFound):
			continue // used, or removed by someone else meanwhile
		case err != nil:
			errs = append(errs, err)
		default:
			removed = append(removed, n.Name)
		}
	}
	return removed, errors.Join(errs...)
}
