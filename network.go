package ocinet

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/libcni"

	"github.com/ocinet/ocinet/internal/fsutil"
)

// Network is a CNI network: a conflist in the conf dir.
type Network struct {
	// Name is the network's name, unique in the conf dir.
	Name string
	// File is the conflist's path.
	File string
	// Bytes are the conflist's exact bytes.
	Bytes []byte
	// Plugins are the plugin types of the chain, in order.
	Plugins []string
	// Subnets are the IPAM subnets of the network, where the config says.
	Subnets []netip.Prefix
	// Labels are the network's labels (nerdctl's "nerdctlLabels").
	Labels map[string]string
}

// labelDefault marks the default network, as nerdctl marks its own.
const labelDefault = "nerdctl/default-network"

// confExtensions are the file endings read from the conf dir.
var confExtensions = []string{".conflist", ".json"}

// Networks returns every network in the conf dir, sorted by name. Files that
// are not valid conflists are skipped.
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
	if err := validNetworkName(name); err != nil {
		return nil, err
	}
	find := func() (*Network, error) {
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
	n, err := find()
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
	if n, err := find(); err != nil || n != nil {
		return n, err
	}
	return m.createDefault()
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
	n := &Network{Name: list.Name, File: file, Bytes: b}
	for _, p := range list.Plugins {
		n.Plugins = append(n.Plugins, p.Network.Type)
	}
	var extra struct {
		Labels  map[string]string `json:"nerdctlLabels"`
		Plugins []struct {
			IPAM struct {
				Subnet string `json:"subnet"`
				Ranges [][]struct {
					Subnet string `json:"subnet"`
				} `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if json.Unmarshal(b, &extra) == nil {
		n.Labels = extra.Labels
		for _, p := range extra.Plugins {
			subnets := []string{p.IPAM.Subnet}
			for _, set := range p.IPAM.Ranges {
				for _, r := range set {
					subnets = append(subnets, r.Subnet)
				}
			}
			for _, s := range subnets {
				if pfx, err := netip.ParsePrefix(s); err == nil {
					n.Subnets = append(n.Subnets, pfx.Masked())
				}
			}
		}
	}
	return n, nil
}

// bridgeConfList renders a bridge network in the conflist format nerdctl
// writes (its ID and labels included), so that either tool can use a
// network the other made.
func bridgeConfList(name, bridge string, subnet netip.Prefix, labels map[string]string) ([]byte, error) {
	gw := subnet.Addr().Next()
	id := sha256.Sum256([]byte(name))
	type obj = map[string]any
	conf := obj{
		"cniVersion":    "1.0.0",
		"name":          name,
		"nerdctlID":     hex.EncodeToString(id[:]),
		"nerdctlLabels": labels,
		"plugins": []obj{
			{
				"type":        "bridge",
				"bridge":      bridge,
				"isGateway":   true,
				"ipMasq":      true,
				"hairpinMode": true,
				"ipam": obj{
					"type":   "host-local",
					"ranges": [][]obj{{{"subnet": subnet.String(), "gateway": gw.String()}}},
					"routes": []obj{{"dst": "0.0.0.0/0"}},
				},
			},
			{"type": "portmap", "capabilities": obj{"portMappings": true}},
			{"type": "firewall", "ingressPolicy": "same-bridge"},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

// createDefault writes the default network's conflist. The caller holds the
// netconf lock.
func (m *Manager) createDefault() (*Network, error) {
	var subnet netip.Prefix
	if m.subnet != "" {
		subnet = netip.MustParsePrefix(m.subnet)
	} else {
		var err error
		if subnet, err = m.freeSubnet(); err != nil {
			return nil, fmt.Errorf("create default network: %w", err)
		}
	}
	b, err := bridgeConfList(DefaultNetworkName, m.bridge, subnet, map[string]string{labelDefault: "true"})
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

// freeSubnet returns the first 10.4.N.0/24 that overlaps no network in the
// conf dir, no address on a host interface and no host route.
func (m *Manager) freeSubnet() (netip.Prefix, error) {
	var used []netip.Prefix
	nets, err := m.Networks()
	if err != nil {
		return netip.Prefix{}, err
	}
	for _, n := range nets {
		used = append(used, n.Subnets...)
	}
	used = append(used, hostPrefixes(m.bridge)...)
	for i := 0; i < 256; i++ {
		cand := netip.MustParsePrefix(fmt.Sprintf(defaultSubnetPattern, i))
		if !overlapsAny(cand, used) {
			return cand, nil
		}
	}
	return netip.Prefix{}, errors.New("no free subnet in 10.4.0.0/16")
}

func overlapsAny(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if u.Bits() > 0 && p.Overlaps(u) {
			return true
		}
	}
	return false
}

// hostPrefixes returns the IPv4 prefixes of the host's interface addresses
// and of its routes, except default routes and those of the default
// network's own bridge (left from an earlier default network, whose subnet
// can be taken again).
func hostPrefixes(bridge string) []netip.Prefix {
	var out []netip.Prefix
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if ifc.Name == bridge {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if p, err := netip.ParsePrefix(ipn.String()); err == nil && p.Addr().Is4() {
					out = append(out, p.Masked())
				}
			}
		}
	}
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || fields[0] == bridge {
			continue
		}
		dst, err1 := strconv.ParseUint(fields[1], 16, 32)
		mask, err2 := strconv.ParseUint(fields[7], 16, 32)
		if err1 != nil || err2 != nil || mask == 0 {
			continue
		}
		// /proc/net/route prints addresses in host (little-endian) order.
		d := uint32(dst)
		addr := netip.AddrFrom4([4]byte{byte(d), byte(d >> 8), byte(d >> 16), byte(d >> 24)})
		ones := 0
		for mk := uint32(mask); mk != 0; mk >>= 1 {
			ones += int(mk & 1)
		}
		out = append(out, netip.PrefixFrom(addr, ones).Masked())
	}
	return out
}
