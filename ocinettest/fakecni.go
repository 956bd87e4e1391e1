package ocinettest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	cnitypes "github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// FakeCNI is a CNI plugin executor (the CNI library's invoke.Exec) that
// runs no program and changes nothing on the host. Give it to a Manager
// with ocinet.WithExec (an [Env] does). Every plugin is "installed" unless
// [FakeCNI.Uninstall] says otherwise, and answers the way the real ones do
// in shape:
//
//   - ADD: a plugin that gets a previous result (portmap, firewall, any
//     chained plugin) passes it on unchanged; one with an "ipam" section
//     takes an address from each of its range sets (or the static address
//     that CNI_ARGS IP= or the "ips" capability asks for, refused with a
//     CNI error when another container holds it) and returns a result with
//     the host side and the container's interface (its MAC from CNI_ARGS
//     MAC=, the "mac" capability, or made from the container ID), the
//     addresses with their gateways, and the IPAM routes; loopback returns
//     lo with 127.0.0.1/8 and ::1/128; any other plugin returns the
//     container's interface alone;
//   - DEL releases what ADD took and always succeeds, as often as it runs;
//   - CHECK fails for an IPAM plugin that holds no address for the
//     container, and succeeds otherwise;
//   - GC releases the addresses of the network's containers that the
//     runtime does not name as valid; STATUS succeeds; VERSION names every
//     CNI version.
//
// [FakeCNI.Handle] replaces the answer of one plugin to one command;
// [FakeCNI.Inject] makes chosen calls fail, crash the caller, or wait.
// [FakeCNI.Calls] is the record of every call, and [FakeCNI.Leases] what
// the fake IPAM holds. A FakeCNI is safe for concurrent use; its zero value
// is not: use [NewFakeCNI].
type FakeCNI struct {
	mu       sync.Mutex
	missing  map[string]bool
	handlers map[[2]string]Handler
	faults   []*Injection
	calls    []Call
	leases   map[leaseKey][]netip.Prefix
}

// NewFakeCNI returns a fake executor with every plugin installed, no
// faults and no addresses taken.
func NewFakeCNI() *FakeCNI {
	return &FakeCNI{
		missing:  map[string]bool{},
		handlers: map[[2]string]Handler{},
		leases:   map[leaseKey][]netip.Prefix{},
	}
}

// Call is one plugin execution, as the plugin saw it.
type Call struct {
	// Command is the CNI command: ADD, DEL, CHECK, GC, STATUS or VERSION.
	Command string
	// Plugin is the plugin's type (the binary's name).
	Plugin string
	// Network is the network's name, from the config.
	Network string
	// ContainerID, IfName and NetNS are CNI_CONTAINERID, CNI_IFNAME and
	// CNI_NETNS.
	ContainerID string
	IfName      string
	NetNS       string
	// Args are the CNI_ARGS pairs, in order.
	Args [][2]string
	// CapabilityArgs are the capability arguments the runtime gave this
	// plugin (the config's "runtimeConfig"): portMappings, ips, mac, ...
	CapabilityArgs map[string]json.RawMessage
	// Valid are the attachments a GC call names as valid.
	Valid []cnitypes.GCAttachment
	// Config is the plugin's standard input, as it got it.
	Config []byte
}

// Arg returns the value of the CNI_ARGS key, or "".
func (c Call) Arg(key string) string {
	for _, kv := range c.Args {
		if kv[0] == key {
			return kv[1]
		}
	}
	return ""
}

// Handler answers one call in place of the fake's own behaviour: for ADD
// it returns the result to print (prev is the previous plugin's result, or
// nil), for other commands only the error counts. A *types.Error is what a
// plugin that fails prints; any other error stands for a plugin that could
// not be run.
type Handler func(c Call, prev *Result) (*Result, error)

// Result is a CNI result, as the CNI library's types/100 package has it.
type Result = current.Result

// Handle makes h answer every call of command to plugin (nil: the fake's
// own behaviour again).
func (f *FakeCNI) Handle(plugin, command string, h Handler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h == nil {
		delete(f.handlers, [2]string{plugin, command})
		return
	}
	f.handlers[[2]string{plugin, command}] = h
}

// Uninstall makes the plugins missing: looking them up fails, as for a
// plugin binary that is not in any plugin directory.
func (f *FakeCNI) Uninstall(plugins ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range plugins {
		f.missing[p] = true
	}
}

// Install undoes [FakeCNI.Uninstall].
func (f *FakeCNI) Install(plugins ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range plugins {
		delete(f.missing, p)
	}
}

// Calls returns every call so far, in the order they were made, those a
// fault acted on included.
func (f *FakeCNI) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// CallsOf returns the calls of command (all commands when ""), in order.
func (f *FakeCNI) CallsOf(command string) []Call {
	var out []Call
	for _, c := range f.Calls() {
		if command == "" || c.Command == command {
			out = append(out, c)
		}
	}
	return out
}

// Lease is an address the fake IPAM holds for a container's interface.
type Lease struct {
	Network     string
	ContainerID string
	IfName      string
	IPs         []netip.Prefix
}

type leaseKey struct{ network, id, ifName string }

// Leases returns what the fake IPAM holds, sorted by network, container
// and interface: after every container is detached, nothing.
func (f *FakeCNI) Leases() []Lease {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Lease
	for k, ips := range f.leases {
		out = append(out, Lease{Network: k.network, ContainerID: k.id, IfName: k.ifName, IPs: append([]netip.Prefix(nil), ips...)})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Network != b.Network {
			return a.Network < b.Network
		}
		if a.ContainerID != b.ContainerID {
			return a.ContainerID < b.ContainerID
		}
		return a.IfName < b.IfName
	})
	return out
}

// FindInPath implements invoke.Exec: it finds every plugin that is not
// uninstalled, in the first directory.
func (f *FakeCNI) FindInPath(plugin string, paths []string) (string, error) {
	f.mu.Lock()
	missing := f.missing[plugin]
	f.mu.Unlock()
	if missing || len(paths) == 0 || plugin == "" || strings.ContainsRune(plugin, '/') {
		return "", fmt.Errorf("failed to find plugin %q in path %s", plugin, paths)
	}
	return filepath.Join(paths[0], plugin), nil
}

// Decode implements invoke.Exec: it decodes a VERSION answer.
func (f *FakeCNI) Decode(b []byte) (version.PluginInfo, error) {
	var d version.PluginDecoder
	return d.Decode(b)
}

// ExecPlugin implements invoke.Exec: it answers as the plugin named by the
// path's last element would, after applying any injected fault.
func (f *FakeCNI) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	c, conf, err := parseCall(pluginPath, stdin, environ)
	if err != nil {
		return nil, cnitypes.NewError(cnitypes.ErrDecodingFailure, err.Error(), "")
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	inj := f.match(c)
	h := f.handlers[[2]string{c.Plugin, c.Command}]
	f.mu.Unlock()

	after := false
	if inj != nil {
		switch inj.fault.Action {
		case Fail:
			return nil, inj.err(c)
		case Crash:
			panic(crashSignal{c})
		case CrashAfter:
			after = true
		case Hold:
			if err := inj.hold(ctx, c); err != nil {
				return nil, err
			}
		}
	}
	out, err := f.answer(c, conf, h)
	if after {
		panic(crashSignal{c})
	}
	return out, err
}

// pluginConf is what the fake reads from a plugin's config.
type pluginConf struct {
	CNIVersion    string                     `json:"cniVersion"`
	Name          string                     `json:"name"`
	Type          string                     `json:"type"`
	Bridge        string                     `json:"bridge"`
	PrevResult    json.RawMessage            `json:"prevResult"`
	RuntimeConfig map[string]json.RawMessage `json:"runtimeConfig"`
	Valid         []cnitypes.GCAttachment    `json:"cni.dev/valid-attachments"`
	IPAM          *struct {
		Type    string            `json:"type"`
		Subnet  string            `json:"subnet"`
		Gateway string            `json:"gateway"`
		Ranges  [][]ipRange       `json:"ranges"`
		Routes  []*cnitypes.Route `json:"routes"`
	} `json:"ipam"`
}

type ipRange struct {
	Subnet     string `json:"subnet"`
	Gateway    string `json:"gateway"`
	RangeStart string `json:"rangeStart"`
	RangeEnd   string `json:"rangeEnd"`
}

func parseCall(pluginPath string, stdin []byte, environ []string) (Call, *pluginConf, error) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	c := Call{
		Command:     env["CNI_COMMAND"],
		Plugin:      filepath.Base(pluginPath),
		ContainerID: env["CNI_CONTAINERID"],
		IfName:      env["CNI_IFNAME"],
		NetNS:       env["CNI_NETNS"],
		Config:      append([]byte(nil), stdin...),
	}
	if a := env["CNI_ARGS"]; a != "" {
		for _, pair := range strings.Split(a, ";") {
			k, v, _ := strings.Cut(pair, "=")
			c.Args = append(c.Args, [2]string{k, v})
		}
	}
	var conf pluginConf
	if err := json.Unmarshal(stdin, &conf); err != nil {
		return c, nil, fmt.Errorf("%s: config: %v", c.Plugin, err)
	}
	c.Network, c.CapabilityArgs, c.Valid = conf.Name, conf.RuntimeConfig, conf.Valid
	return c, &conf, nil
}

// answer runs the handler, or the fake's own behaviour, and renders ADD's
// result in the config's CNI version.
func (f *FakeCNI) answer(c Call, conf *pluginConf, h Handler) ([]byte, error) {
	if c.Command == "VERSION" {
		var b bytes.Buffer
		if err := version.All.Encode(&b); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	var prev *current.Result
	if len(conf.PrevResult) > 0 {
		r, err := current.NewResult(conf.PrevResult)
		if err == nil {
			prev, err = current.GetResult(r)
		}
		if err != nil {
			return nil, cnitypes.NewError(cnitypes.ErrDecodingFailure, "prevResult: "+err.Error(), "")
		}
	}
	var res *current.Result
	var err error
	if h != nil {
		res, err = h(c, prev)
	} else {
		res, err = f.behave(c, conf, prev)
	}
	if err != nil || c.Command != "ADD" {
		return nil, err
	}
	if res == nil {
		res = &current.Result{}
	}
	res.CNIVersion = current.ImplementedSpecVersion
	ver := conf.CNIVersion
	if ver == "" {
		ver = "0.1.0"
	}
	conv, err := res.GetAsVersion(ver)
	if err != nil {
		return nil, cnitypes.NewError(cnitypes.ErrIncompatibleCNIVersion, err.Error(), "")
	}
	return json.Marshal(conv)
}

// behave is the fake's own behaviour (see FakeCNI).
func (f *FakeCNI) behave(c Call, conf *pluginConf, prev *current.Result) (*current.Result, error) {
	ipam := conf.IPAM != nil && conf.IPAM.Type != ""
	key := leaseKey{c.Network, c.ContainerID, c.IfName}
	switch c.Command {
	case "ADD":
		switch {
		case prev != nil:
			return prev, nil
		case c.Plugin == "loopback":
			return &current.Result{
				Interfaces: []*current.Interface{{Name: "lo", Mac: "00:00:00:00:00:00", Sandbox: c.NetNS}},
				IPs: []*current.IPConfig{
					{Interface: current.Int(0), Address: mustCIDR("127.0.0.1/8")},
					{Interface: current.Int(0), Address: mustCIDR("::1/128")},
				},
			}, nil
		case ipam:
			return f.add(c, conf, key)
		default:
			return &current.Result{Interfaces: []*current.Interface{{Name: c.IfName, Mac: macFor(c), Sandbox: c.NetNS}}}, nil
		}
	case "DEL":
		f.mu.Lock()
		delete(f.leases, key)
		f.mu.Unlock()
	case "CHECK":
		if ipam {
			f.mu.Lock()
			_, ok := f.leases[key]
			f.mu.Unlock()
			if !ok {
				return nil, cnitypes.NewError(cnitypes.ErrInternal, fmt.Sprintf("%s: no address for %s/%s", c.Plugin, c.ContainerID, c.IfName), "")
			}
		}
	case "GC":
		if ipam {
			valid := map[cnitypes.GCAttachment]bool{}
			for _, a := range c.Valid {
				valid[a] = true
			}
			f.mu.Lock()
			for k := range f.leases {
				if k.network == c.Network && !valid[cnitypes.GCAttachment{ContainerID: k.id, IfName: k.ifName}] {
					delete(f.leases, k)
				}
			}
			f.mu.Unlock()
		}
	}
	return nil, nil
}

// add takes the container's addresses and makes its result.
func (f *FakeCNI) add(c Call, conf *pluginConf, key leaseKey) (*current.Result, error) {
	sets := conf.IPAM.Ranges
	if conf.IPAM.Subnet != "" {
		sets = append([][]ipRange{{{Subnet: conf.IPAM.Subnet, Gateway: conf.IPAM.Gateway}}}, sets...)
	}
	want, err := staticIPs(c)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	taken := map[netip.Addr]bool{}
	for k, ips := range f.leases {
		if k.network == c.Network && k != key {
			for _, p := range ips {
				taken[p.Addr()] = true
			}
		}
	}
	mac := macFor(c)
	host := "veth" + fmt.Sprintf("%x", sha256.Sum256([]byte(c.ContainerID+"/"+c.IfName)))[:8]
	res := &current.Result{}
	if c.Plugin == "bridge" {
		br := conf.Bridge
		if br == "" {
			br = "cni0"
		}
		res.Interfaces = append(res.Interfaces, &current.Interface{Name: br, Mac: "02:00:00:00:00:01"})
	}
	res.Interfaces = append(res.Interfaces, &current.Interface{Name: host, Mac: "02:00:00:00:00:02"}, &current.Interface{Name: c.IfName, Mac: mac, Sandbox: c.NetNS})
	idx := len(res.Interfaces) - 1
	var leased []netip.Prefix
	for _, set := range sets {
		p, gw, err := pick(set, want, taken)
		if err != nil {
			return nil, cnitypes.NewError(cnitypes.ErrInternal, fmt.Sprintf("%s: %s: %v", conf.IPAM.Type, c.Network, err), "")
		}
		if !p.IsValid() {
			continue
		}
		leased = append(leased, p)
		ipc := &current.IPConfig{Interface: current.Int(idx), Address: net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if gw.IsValid() {
			ipc.Gateway = gw.AsSlice()
		}
		res.IPs = append(res.IPs, ipc)
	}
	res.Routes = append(res.Routes, conf.IPAM.Routes...)
	if len(leased) > 0 {
		f.leases[key] = leased
	}
	return res, nil
}

// staticIPs returns the addresses the call asks for: CNI_ARGS IP= and the
// "ips" capability.
func staticIPs(c Call) ([]netip.Addr, error) {
	var raw []string
	if ip := c.Arg("IP"); ip != "" {
		raw = append(raw, strings.Split(ip, ",")...)
	}
	if b, ok := c.CapabilityArgs["ips"]; ok {
		var ips []string
		if err := json.Unmarshal(b, &ips); err != nil {
			return nil, cnitypes.NewError(cnitypes.ErrInvalidNetworkConfig, "ips: "+err.Error(), "")
		}
		raw = append(raw, ips...)
	}
	var out []netip.Addr
	for _, s := range raw {
		s, _, _ = strings.Cut(s, "/")
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, cnitypes.NewError(cnitypes.ErrInvalidNetworkConfig, "static address: "+err.Error(), "")
		}
		out = append(out, a)
	}
	return out, nil
}

// pick takes an address from a range set: the static one that falls in
// it, or the first free one. It returns the zero prefix when a static
// address was asked for but none is in this set's family.
func pick(set []ipRange, want []netip.Addr, taken map[netip.Addr]bool) (netip.Prefix, netip.Addr, error) {
	for _, r := range set {
		subnet, err := netip.ParsePrefix(r.Subnet)
		if err != nil {
			return netip.Prefix{}, netip.Addr{}, fmt.Errorf("subnet %q: %v", r.Subnet, err)
		}
		subnet = subnet.Masked()
		gw, _ := netip.ParseAddr(r.Gateway)
		if !gw.IsValid() {
			gw = subnet.Addr().Next()
		}
		first, last := subnet.Addr().Next(), lastAddr(subnet)
		if a, err := netip.ParseAddr(r.RangeStart); err == nil {
			first = a
		}
		if a, err := netip.ParseAddr(r.RangeEnd); err == nil {
			last = a
		}
		for _, a := range want {
			if !subnet.Contains(a) {
				continue
			}
			if taken[a] {
				return netip.Prefix{}, netip.Addr{}, fmt.Errorf("requested address %s is already allocated", a)
			}
			return netip.PrefixFrom(a, subnet.Bits()), gw, nil
		}
		if len(want) > 0 {
			continue
		}
		for a, n := first, 0; a.IsValid() && a.Compare(last) <= 0 && n < 1<<16; a, n = a.Next(), n+1 {
			if a != gw && !taken[a] {
				return netip.PrefixFrom(a, subnet.Bits()), gw, nil
			}
		}
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("no free address in %s", subnet)
	}
	if len(want) > 0 {
		return netip.Prefix{}, netip.Addr{}, nil
	}
	return netip.Prefix{}, netip.Addr{}, fmt.Errorf("no range")
}

// lastAddr is the last host address of p: the one before the broadcast
// address for IPv4, the last address for IPv6.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	if a.Is4() {
		a = a.Prev()
	}
	return a
}

// macFor is the MAC a call asks for, or one made from the container ID
// and interface name (locally administered, unicast).
func macFor(c Call) string {
	if m := c.Arg("MAC"); m != "" {
		return m
	}
	if b, ok := c.CapabilityArgs["mac"]; ok {
		var m string
		if json.Unmarshal(b, &m) == nil && m != "" {
			return m
		}
	}
	h := sha256.Sum256([]byte(c.ContainerID + "/" + c.IfName))
	h[0] = h[0]&0xfc | 0x02
	return net.HardwareAddr(h[:6]).String()
}

func mustCIDR(s string) net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return *n
}
