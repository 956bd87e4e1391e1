package ocinet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/ocinet/ocinet/portmap"
)

// AttachRequest says what to attach. Its zero value is not valid: ID and
// NetNS are required.
type AttachRequest struct {
	// ID identifies the attachment; it is the CNI container ID. Letters,
	// digits, '.', '_' and '-', at most 128 characters.
	ID string
	// Name is a human name used in error messages and port conflicts
	// (default: ID).
	Name string
	// Hostname is given to the plugins as the CNI_ARGS key
	// NERDCTL_CNI_DHCP_HOSTNAME, which DHCP networks that nerdctl made send
	// to the DHCP server (default: none).
	Hostname string
	// NetNS is the path of the container's network namespace.
	NetNS string
	// Networks are the networks to attach, in order: the first becomes
	// eth0, the next eth1 and so on (default: the default network).
	Networks []string
	// PerNetwork holds settings for some of the networks, each naming its
	// network (default: none; every network chooses an address and a MAC).
	PerNetwork []NetworkOptions
	// Ports are the ports to publish. They are published through the first
	// network whose chain has the portmap plugin.
	Ports []portmap.Mapping
	// Labels are recorded with the attachment and returned with it: the
	// caller's own keys, such as the container and namespace the
	// attachment belongs to (default: none). At most 32, keys and values
	// at most 256 bytes each.
	Labels map[string]string
}

// NetworkOptions are the settings of one network of an attachment.
type NetworkOptions struct {
	// Network is the network's name: one of AttachRequest.Networks, or the
	// default network when Networks is empty.
	Network string
	// IPs are static addresses, at most one per family, inside the
	// network's subnets (default: the network's IPAM chooses). One address
	// goes to the plugins as CNI_ARGS IP=; when the network's config
	// declares the "ips" capability (dual-stack networks made by
	// CreateNetwork do), they go through it instead.
	IPs []netip.Addr
	// MAC is the MAC address of the container's interface, given as
	// CNI_ARGS MAC= (default: the plugin chooses). Only bridge and macvlan
	// networks honour it.
	MAC net.HardwareAddr
}

// Attachment is a container's attachment as recorded in the journal.
type Attachment struct {
	ID       string
	Name     string
	Hostname string
	NetNS    string
	// Labels are the request's labels.
	Labels map[string]string
	// Interfaces are the container's interfaces, in the order of the
	// request's networks (eth0 first).
	Interfaces []Interface
	Ports      []portmap.Port
	Created    time.Time
	// Complete is false while the attachment is being set up or torn down,
	// or was left half-done by a crash; GC finishes it.
	Complete bool
}

// Interface is one network interface of an attached container.
type Interface struct {
	Network  string
	Name     string
	MAC      string
	IPs      []netip.Prefix
	Gateways []netip.Addr
	// Datapath is who ran the network's plugins: DatapathNative or
	// DatapathPlugins.
	Datapath Datapath
	// DatapathReason says why a network that could have run in process
	// ran through the binaries (auto, on a host whose firewall would drop
	// what the native datapath accepts), "" otherwise.
	DatapathReason string
}

// cleanupTimeout bounds teardown that runs on a context detached from a
// cancelled caller.
const cleanupTimeout = 2 * time.Minute

// hostnameArg is the CNI_ARGS key that carries the hostname, as nerdctl
// passes it.
const hostnameArg = "NERDCTL_CNI_DHCP_HOSTNAME"

// loopbackNetwork names the loopback "network" every attachment starts
// with: the loopback plugin brings lo up in the container's namespace.
const loopbackNetwork = "ocinet-loopback"

// LoopbackConfList is the conflist of the loopback network every
// attachment starts with (and ends with at DEL).
const LoopbackConfList = `{"cniVersion":"1.0.0","name":"` + loopbackNetwork + `","plugins":[{"type":"loopback"}]}`

// attachPlan is an attachment decided before anything on the host changes:
// the request checked, its networks resolved once, their plugins found,
// their static settings checked, and the journal entry of each network
// prepared.
type attachPlan struct {
	name string
	nets []*Network
	// portsNet is the index in nets of the network that publishes the
	// ports (the first whose chain has the portmap plugin), -1 for none.
	portsNet int
	// records are the journal entries of nets, in order, without the
	// ports (which are reserved once the plan holds).
	records []networkRecord
	// loopback is the datapath of the loopback network.
	loopback Datapath
}

// plan resolves and checks req's networks (names and opts come from
// checkRequest). The caller holds the container's locks, and so the GC
// lock shared, which RemoveNetwork takes exclusively: no network of the
// plan can disappear before the journal names it.
func (m *Manager) plan(req AttachRequest, names []string, opts []NetworkOptions) (*attachPlan, error) {
	p := &attachPlan{name: req.Name, portsNet: -1}
	if p.name == "" {
		p.name = req.ID
	}
	nets, err := m.resolveNetworks(names)
	if err != nil {
		return nil, err
	}
	p.nets = nets
	if len(req.Ports) > 0 {
		for i, n := range nets {
			if slices.Contains(n.Plugins, "portmap") {
				p.portsNet = i
				break
			}
		}
		if p.portsNet < 0 {
			return nil, fmt.Errorf("publishing ports needs a network with the portmap plugin: %w", ErrInvalid)
		}
	}
	for i, n := range nets {
		if err := checkStatic(n, opts[i]); err != nil {
			return nil, err
		}
	}
	if err := m.checkStaticFree(req.ID, nets, opts); err != nil {
		return nil, err
	}
	// Who runs each network's plugins is decided here, once, and recorded;
	// every plugin the chosen datapath runs as a binary must be there
	// before anything is changed.
	if p.loopback, _, err = m.findPlugins(&Network{Name: loopbackNetwork, Bytes: []byte(LoopbackConfList), Plugins: []string{"loopback"}}); err != nil {
		return nil, err
	}
	for i, n := range nets {
		nr, err := newNetworkRecord(n, fmt.Sprintf("eth%d", i), req.Hostname, opts[i])
		if err != nil {
			return nil, err
		}
		if nr.Datapath, nr.DatapathReason, err = m.findPlugins(n); err != nil {
			return nil, err
		}
		if nr.DatapathReason != "" {
			m.log.Warn("attach: the network runs through the plugin binaries", "network", n.Name, "reason", nr.DatapathReason)
		}
		p.records = append(p.records, nr)
	}
	return p, nil
}

// findPlugins chooses the datapath of network n and checks that its
// executor finds every plugin of the chain (the native one finds those it
// runs in process without a binary).
func (m *Manager) findPlugins(n *Network) (Datapath, string, error) {
	dp, reason, err := m.dp.choose(n.Name, n.Bytes)
	if err != nil {
		return "", "", err
	}
	x, err := m.dp.exec(dp)
	if err != nil {
		return "", "", err
	}
	for _, pl := range n.Plugins {
		if _, err := x.FindInPath(pl, m.pluginDirs); err != nil {
			return "", "", &PluginNotFoundError{Network: n.Name, Plugin: pl, Dirs: m.pluginDirs}
		}
	}
	return dp, reason, nil
}

// resolveNetworks returns the networks called names, in order, reading the
// conf dir once; the default network is made on first use.
func (m *Manager) resolveNetworks(names []string) ([]*Network, error) {
	all, err := m.Networks()
	if err != nil {
		return nil, err
	}
	out := make([]*Network, 0, len(names))
	for _, name := range names {
		i := slices.IndexFunc(all, func(n *Network) bool { return n.Name == name })
		if i >= 0 {
			out = append(out, all[i])
			continue
		}
		n, err := m.Network(name) // the default network, or a clear error
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// checkRequest validates what can be checked without looking at the host's
// networks (checkNS checks the namespace path): it returns the network names
// and each one's options.
func checkRequest(req AttachRequest, checkNS func(string) error) ([]string, []NetworkOptions, error) {
	if err := validLabels(req.Labels); err != nil {
		return nil, nil, err
	}
	if req.Hostname != "" {
		if err := validHostname(req.Hostname); err != nil {
			return nil, nil, err
		}
	}
	if err := checkNS(req.NetNS); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", err, ErrInvalid)
	}
	for _, p := range req.Ports {
		if err := p.Validate(); err != nil {
			return nil, nil, err
		}
		// On IPv6 loopback a proxy relays (see proxy.go): tcp only.
		if p.HostIP.Is6() && p.HostIP.IsLoopback() && p.Protocol != "" && p.Protocol != "tcp" {
			return nil, nil, fmt.Errorf("publish %s: on IPv6 loopback only tcp can be published: %w", p, ErrInvalid)
		}
	}
	names := req.Networks
	if len(names) == 0 {
		names = []string{DefaultNetworkName}
	}
	opts := make([]NetworkOptions, len(names))
	for i, n := range names {
		if err := validNetworkName(n); err != nil {
			return nil, nil, err
		}
		if slices.Index(names, n) != i {
			return nil, nil, fmt.Errorf("network %q given twice: %w", n, ErrInvalid)
		}
	}
	given := map[string]bool{}
	for _, o := range req.PerNetwork {
		i := slices.Index(names, o.Network)
		if i < 0 {
			return nil, nil, fmt.Errorf("settings for network %q, which is not among the networks to attach: %w", o.Network, ErrInvalid)
		}
		if given[o.Network] {
			return nil, nil, fmt.Errorf("settings for network %q given twice: %w", o.Network, ErrInvalid)
		}
		given[o.Network] = true
		if err := checkOptions(o); err != nil {
			return nil, nil, err
		}
		opts[i] = o
	}
	return names, opts, nil
}

func checkOptions(o NetworkOptions) error {
	v4, v6 := 0, 0
	for _, a := range o.IPs {
		switch {
		case !a.IsValid() || a.Zone() != "":
			return fmt.Errorf("network %q: static address %q: %w", o.Network, a, ErrInvalid)
		case a.Is4() || a.Is4In6():
			v4++
		default:
			v6++
		}
		if a.Is4In6() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.IsLinkLocalUnicast() {
			return fmt.Errorf("network %q: static address %s: not a unicast host address: %w", o.Network, a, ErrInvalid)
		}
	}
	if v4 > 1 || v6 > 1 {
		return fmt.Errorf("network %q: at most one static address per family: %w", o.Network, ErrInvalid)
	}
	if o.MAC != nil {
		if len(o.MAC) != 6 || o.MAC[0]&1 != 0 || bytes.Equal(o.MAC, make([]byte, 6)) {
			return fmt.Errorf("network %q: MAC %s: not a unicast Ethernet address: %w", o.Network, o.MAC, ErrInvalid)
		}
	}
	return nil
}

// checkStatic checks a network's static settings against its config.
func checkStatic(n *Network, o NetworkOptions) error {
	if len(o.IPs) > 1 && !n.caps["ips"] {
		return fmt.Errorf("network %q: two static addresses need the \"ips\" capability, which its config does not declare: %w", n.Name, ErrInvalid)
	}
	for _, a := range o.IPs {
		if len(n.Subnets) == 0 {
			continue // an IPAM we cannot read: the plugin decides
		}
		in := false
		for _, s := range n.Subnets {
			in = in || s.Contains(a)
		}
		if !in {
			return fmt.Errorf("network %q: static address %s is outside its subnets %v: %w", n.Name, a, n.Subnets, ErrInvalid)
		}
		if slices.Contains(n.Gateways, a) {
			return fmt.Errorf("network %q: static address %s is the gateway: %w", n.Name, a, ErrInvalid)
		}
	}
	if o.MAC != nil && (len(n.Plugins) == 0 || (n.Plugins[0] != "bridge" && n.Plugins[0] != "macvlan")) {
		return fmt.Errorf("network %q: a static MAC needs a bridge or macvlan network: %w", n.Name, ErrInvalid)
	}
	return nil
}

// checkStaticFree refuses static addresses that another recorded
// attachment holds on the same network.
func (m *Manager) checkStaticFree(id string, nets []*Network, opts []NetworkOptions) error {
	want := map[string][]netip.Addr{}
	for i, n := range nets {
		if len(opts[i].IPs) > 0 {
			want[n.Name] = opts[i].IPs
		}
	}
	if len(want) == 0 {
		return nil
	}
	others, err := m.List()
	if err != nil {
		return err
	}
	for _, a := range others {
		if a.ID == id {
			continue
		}
		for _, iface := range a.Interfaces {
			for _, p := range iface.IPs {
				if slices.Contains(want[iface.Network], p.Addr()) {
					owner := a.Name
					if owner == "" {
						owner = a.ID
					}
					return fmt.Errorf("network %q: static address %s is in use by %s: %w", iface.Network, p.Addr(), owner, ErrConflict)
				}
			}
		}
	}
	return nil
}

// newNetworkRecord prepares the journal entry of one network: its exact
// config and the CNI_ARGS and capability arguments its ADD and DEL get.
func newNetworkRecord(n *Network, ifName, hostname string, o NetworkOptions) (networkRecord, error) {
	nr := networkRecord{Name: n.Name, IfName: ifName, ConfList: compactJSON(n.Bytes)}
	nr.Args = [][2]string{{"IgnoreUnknown", "1"}}
	if len(o.IPs) > 0 {
		if n.caps["ips"] {
			var ips []string
			for _, a := range o.IPs {
				ips = append(ips, a.String())
			}
			var err error
			if nr.CapArgs, err = mergeCapArgs(nr.CapArgs, "ips", ips); err != nil {
				return nr, err
			}
		} else {
			nr.Args = append(nr.Args, [2]string{"IP", o.IPs[0].String()})
		}
	}
	if o.MAC != nil {
		nr.Args = append(nr.Args, [2]string{"MAC", o.MAC.String()})
	}
	if hostname != "" {
		nr.Args = append(nr.Args, [2]string{hostnameArg, hostname})
	}
	return nr, nil
}

// mergeCapArgs adds key=value to the capability arguments caps (JSON).
func mergeCapArgs(caps json.RawMessage, key string, value any) (json.RawMessage, error) {
	m := map[string]any{}
	if len(caps) > 0 {
		if err := json.Unmarshal(caps, &m); err != nil {
			return nil, err
		}
	}
	m[key] = value
	return json.Marshal(m)
}

// compactJSON returns b without insignificant white space (b itself if it is
// not valid JSON, which ConfListFromBytes would already have refused).
func compactJSON(b []byte) json.RawMessage {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return json.RawMessage(b)
	}
	return json.RawMessage(out.Bytes())
}
