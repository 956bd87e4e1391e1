package inproc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/allocator"
	"github.com/vishvananda/netlink"
)

// defaultBridge is the bridge plugin's bridge when the config names none.
const defaultBridge = "cni0"

// bridgeConf is the part of a bridge config that is implemented (Claims
// refuses the rest).
type bridgeConf struct {
	types.NetConf
	BrName      string `json:"bridge"`
	IsGW        bool   `json:"isGateway"`
	IsDefaultGW bool   `json:"isDefaultGateway"`
	IPMasq      bool   `json:"ipMasq"`
	MTU         int    `json:"mtu"`
	HairpinMode bool   `json:"hairpinMode"`
	PromiscMode bool   `json:"promiscMode"`
	Args        struct {
		Cni struct {
			Mac string `json:"mac,omitempty"`
		} `json:"cni"`
	} `json:"args"`
	RuntimeConfig struct {
		Mac string `json:"mac,omitempty"`
	} `json:"runtimeConfig"`

	mac    string           // from CNI_ARGS, args or the capability
	hwaddr net.HardwareAddr // mac, parsed by checkAdd
}

// macEnvArgs are the CNI_ARGS the bridge and tuning plugins read.
type macEnvArgs struct {
	types.CommonArgs
	MAC types.UnmarshallableString `json:"mac,omitempty"`
}

func loadBridgeConf(stdin []byte, envArgs string) (*bridgeConf, error) {
	n := &bridgeConf{BrName: defaultBridge}
	if err := json.Unmarshal(stdin, n); err != nil {
		return nil, fmt.Errorf("bridge: load config: %v: %w", err, ErrInvalid)
	}
	mac := ""
	if envArgs != "" {
		var e macEnvArgs
		if err := types.LoadArgs(envArgs, &e); err != nil {
			return nil, fmt.Errorf("bridge: CNI_ARGS: %v: %w", err, ErrInvalid)
		}
		mac = string(e.MAC)
	}
	if n.Args.Cni.Mac != "" {
		mac = n.Args.Cni.Mac
	}
	if n.RuntimeConfig.Mac != "" {
		mac = n.RuntimeConfig.Mac
	}
	n.mac = mac
	if n.IsDefaultGW {
		n.IsGW = true
	}
	return n, nil
}

// checkAdd checks what only ADD uses, so that a config ADD refused can
// still be deleted.
func (n *bridgeConf) checkAdd() error {
	if n.mac != "" {
		hw, err := net.ParseMAC(n.mac)
		if err != nil || len(hw) != 6 {
			return fmt.Errorf("bridge: MAC %q: not an Ethernet address: %w", n.mac, ErrInvalid)
		}
		n.hwaddr = hw
	}
	if err := validIfName(n.BrName); err != nil {
		return fmt.Errorf("bridge: bridge name: %w", err)
	}
	if n.MTU < 0 || n.MTU > 65535 {
		return fmt.Errorf("bridge: mtu %d out of range: %w", n.MTU, ErrInvalid)
	}
	if n.HairpinMode && n.PromiscMode {
		return fmt.Errorf("bridge: cannot set hairpin mode and promiscuous mode at the same time: %w", ErrInvalid)
	}
	return nil
}

func (e *Exec) bridgeAdd(ctx context.Context, c call) ([]byte, error) {
	if err := validIfName(c.ifc); err != nil {
		return nil, err
	}
	n, err := loadBridgeConf(c.stdin, c.args)
	if err != nil {
		return nil, err
	}
	if err := n.checkAdd(); err != nil {
		return nil, err
	}
	ipamConf, err := ipamConfig(c.stdin, c.args)
	if err != nil {
		return nil, err
	}
	cont, err := openContainer(c.netns)
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	h, err := hostHandle()
	if err != nil {
		cont.Close()
		return nil, fmt.Errorf("bridge: %w", err)
	}
	// Both handles go with the rest of the work when it finishes after
	// the result (WithUnfinished).
	handedOff := false
	defer func() {
		if !handedOff {
			h.Close()
			cont.Close()
		}
	}()
	if l, err := cont.nl.LinkByName(c.ifc); err == nil {
		return nil, fmt.Errorf("bridge: interface %s already exists in namespace %s (a %s link): %w", c.ifc, c.netns, l.Type(), ErrConflict)
	}
	// What the network shares (the bridge, its gateway address, its
	// masquerade rules) is made or checked while the caller may still be
	// writing its record; what is the container's waits for the gate.
	br, subnets, err := e.setupNetwork(h, n, ipamConf)
	if err != nil {
		return nil, err
	}
	// The masquerade check (nftables), the lease (files) and the veth pair
	// (rtnetlink) have nothing to wait for in each other: they run at the
	// same time, and whatever of them succeeded is undone if one failed.
	masqDone := make(chan error, 1)
	if n.IPMasq {
		go func() { masqDone <- e.ensureMasq(n.BrName, subnets) }()
	} else {
		masqDone <- nil
	}
	if err := Wait(ctx); err != nil {
		<-masqDone
		return nil, err
	}
	type leased struct {
		ips []*types100.IPConfig
		err error
	}
	leaseDone := make(chan leased, 1)
	go func() {
		ips, err := lease(ipamConf, c.containerID, c.ifc)
		if err == nil {
			// The chain's portmap and firewall elements (WithChain).
			e.prepare(ctx, c, n, ips)
		}
		leaseDone <- leased{ips, err}
	}()
	host, contMAC, vethErr := makeVeth(h, cont, br, c.ifc, n)
	ld, masqErr := <-leaseDone, <-masqDone
	ok := false
	if vethErr == nil {
		defer func() {
			if !ok {
				_ = h.LinkDel(host)
			}
		}()
	}
	if ld.err == nil {
		defer func() {
			if ok {
				return
			}
			// The address goes once nothing made early points to it.
			if e.abandonEarly(attachmentKey(c.containerID, c.ifc)) == nil {
				_ = releaseLease(ipamConf, c.containerID, c.ifc)
			}
		}()
	}
	switch {
	case masqErr != nil:
		return nil, masqErr
	case vethErr != nil:
		return nil, vethErr
	case ld.err != nil:
		return nil, fmt.Errorf("bridge: %w", ld.err)
	}
	ips := ld.ips
	e.stepAt(c, "network")
	e.stepAt(c, "veth")
	e.stepAt(c, "lease")

	res := &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{
			{Name: br.Attrs().Name},
			{Name: host.Attrs().Name, Mac: host.Attrs().HardwareAddr.String()},
			{Name: c.ifc, Mac: contMAC.String(), Sandbox: c.netns},
		},
		IPs:    ips,
		Routes: ipamConf.Routes,
	}
	gateways(res, n)
	// The bridge's MAC is read once the port has joined: a bridge whose
	// MAC is not pinned takes its lowest port's.
	if l, err := h.LinkByIndex(br.Attrs().Index); err == nil {
		res.Interfaces[0].Mac = l.Attrs().HardwareAddr.String()
	}
	if dnsSet(n.DNS) {
		res.DNS = n.DNS
	}
	out, err := encodeResult(res, n.CNIVersion)
	if err != nil {
		return nil, err
	}
	// The rest configures the port and the container's interface; the
	// result does not depend on it.
	finish := func() error {
		if err := finishPort(h, host, n); err != nil {
			return err
		}
		e.stepAt(c, "port")
		contLink, err := cont.nl.LinkByName(c.ifc)
		if err != nil {
			return fmt.Errorf("bridge: find %s in namespace %s: %w", c.ifc, c.netns, err)
		}
		if err := configureContainer(cont, c.ifc, contLink, res); err != nil {
			return fmt.Errorf("bridge: namespace %s: %w", c.netns, err)
		}
		e.stepAt(c, "addrs")
		if err := waitOperUp(h, host); err != nil {
			return err
		}
		waitContainerUp(cont, contLink)
		return nil
	}
	if u := unfinishedIn(ctx); u != nil {
		// The caller rolls back with a DEL if finish fails: the elements
		// of the chain's portmap and firewall, added meanwhile, go before
		// the lease.
		handedOff, ok = true, true
		u.start(func() error {
			defer h.Close()
			defer cont.Close()
			return finish()
		})
		return out, nil
	}
	if err := finish(); err != nil {
		return nil, err
	}
	ok = true
	return out, nil
}

// gateways fills in what the bridge plugin derives from the IPAM result:
// every address belongs to the container's interface (index 2), a missing
// gateway is the subnet's first address when isGateway, and
// isDefaultGateway adds a default route per family unless one is there.
func gateways(res *types100.Result, n *bridgeConf) {
	found := map[bool]bool{} // by is-IPv4
	for _, ipc := range res.IPs {
		ipc.Interface = types100.Int(2)
		v4 := ipc.Address.IP.To4() != nil
		if ipc.Gateway == nil && n.IsGW {
			ipc.Gateway = nextIP(ipc.Address.IP.Mask(ipc.Address.Mask))
		}
		if !n.IsDefaultGW || found[v4] {
			continue
		}
		def := net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		if v4 {
			def = net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
		}
		for _, r := range res.Routes {
			if r.GW != nil && r.Dst.String() == def.String() {
				found[v4] = true
			}
		}
		if !found[v4] {
			res.Routes = append(res.Routes, &types.Route{Dst: def, GW: ipc.Gateway})
			found[v4] = true
		}
	}
}

func nextIP(ip net.IP) net.IP {
	out := make(net.IP, len(ip))
	copy(out, ip)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]++
		if out[i] != 0 {
			break
		}
	}
	if v4 := out.To4(); v4 != nil {
		return v4
	}
	return out
}

func dnsSet(d types.DNS) bool {
	return d.Nameservers != nil || d.Search != nil || d.Options != nil || d.Domain != ""
}

// encodeResult prints a result in the config's CNI version, as a plugin
// prints it, less the indentation (the result goes to the CNI library,
// which parses it again, not to a reader).
func encodeResult(res types.Result, cniVersion string) ([]byte, error) {
	r, err := res.GetAsVersion(cniVersion)
	if err != nil {
		return nil, fmt.Errorf("result as CNI version %q: %v: %w", cniVersion, err, ErrInvalid)
	}
	if r100, ok := r.(*types100.Result); ok {
		// types100.Result's MarshalJSON encodes the result, decodes that
		// into a map and encodes the map again, to leave out an empty
		// DNS. wireResult is the same object in one pass.
		w := wireResult{CNIVersion: r100.CNIVersion, Interfaces: r100.Interfaces, IPs: r100.IPs, Routes: r100.Routes}
		if !r100.DNS.IsEmpty() {
			w.DNS = &r100.DNS
		}
		return json.Marshal(w)
	}
	return json.Marshal(r)
}

// wireResult is the JSON of a types100.Result, its DNS left out when
// empty.
type wireResult struct {
	CNIVersion string                `json:"cniVersion,omitempty"`
	Interfaces []*types100.Interface `json:"interfaces,omitempty"`
	IPs        []*types100.IPConfig  `json:"ips,omitempty"`
	Routes     []*types.Route        `json:"routes,omitempty"`
	DNS        *types.DNS            `json:"dns,omitempty"`
}

// setupNetwork makes the per-network state, once, under the network's
// lock: the bridge (created if missing, MTU, promiscuous mode, router
// advertisements ignored, up), its gateway addresses and IP forwarding when
// isGateway. It returns the bridge and the subnets, for the masquerade
// chain (ensureMasq, which the caller runs when ipMasq).
func (e *Exec) setupNetwork(h *netlink.Handle, n *bridgeConf, ipamConf *allocator.IPAMConfig) (*netlink.Bridge, []*net.IPNet, error) {
	l, err := e.lock("bridge-" + n.BrName)
	if err != nil {
		return nil, nil, fmt.Errorf("bridge %s: %w", n.BrName, err)
	}
	defer l.Unlock()
	br, created, err := ensureBridge(h, n)
	if err != nil {
		return nil, nil, err
	}
	pin := created
	var subnets []*net.IPNet
	for _, set := range ipamConf.Ranges {
		r := set[0]
		subnet := net.IPNet{IP: r.Subnet.IP, Mask: r.Subnet.Mask}
		subnets = append(subnets, &subnet)
		if !n.IsGW {
			continue
		}
		gw := net.IPNet{IP: r.Gateway, Mask: r.Subnet.Mask}
		added, err := ensureAddr(h, br, &gw)
		if err != nil {
			return nil, nil, err
		}
		pin = pin || added
		forward := "net/ipv4/ip_forward"
		if gw.IP.To4() == nil {
			forward = "net/ipv6/conf/all/forwarding"
		}
		if err := writeSysctls([]sysctl{{path: forward, value: "1", onlyIfNot: "1", mustSucceed: true}}); err != nil {
			return nil, nil, fmt.Errorf("bridge %s: enable forwarding: %w", n.BrName, err)
		}
	}
	if pin {
		// Set the bridge's MAC to itself, so that it stays put as ports come
		// and go instead of following the lowest port's.
		if err := h.LinkSetHardwareAddr(br, br.Attrs().HardwareAddr); err != nil {
			return nil, nil, fmt.Errorf("bridge %s: pin MAC: %w", n.BrName, err)
		}
	}
	return br, subnets, nil
}

// ensureBridge finds or makes the bridge and reports whether it made it.
func ensureBridge(h *netlink.Handle, n *bridgeConf) (*netlink.Bridge, bool, error) {
	created := false
	l, err := h.LinkByName(n.BrName)
	if linkNotFound(err) {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = n.BrName
		attrs.MTU = n.MTU
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil && !errors.Is(err, syscall.EEXIST) {
			return nil, false, fmt.Errorf("bridge %s: create: %w", n.BrName, err)
		}
		created = true
		l, err = h.LinkByName(n.BrName)
	}
	if err != nil {
		return nil, false, fmt.Errorf("bridge %s: %w", n.BrName, err)
	}
	br, ok := l.(*netlink.Bridge)
	if !ok {
		return nil, false, fmt.Errorf("bridge %s: the name is taken by a %s link that is not a bridge: %w", n.BrName, l.Type(), ErrConflict)
	}
	if n.PromiscMode && br.Attrs().Promisc == 0 {
		if err := h.SetPromiscOn(br); err != nil {
			return nil, false, fmt.Errorf("bridge %s: promiscuous mode: %w", n.BrName, err)
		}
	}
	// The routes of the bridge are the plugin's, not router advertisements'.
	_ = writeSysctls([]sysctl{{path: "net/ipv6/conf/" + n.BrName + "/accept_ra", value: "0", onlyIfNot: "0"}})
	if br.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(br); err != nil {
			return nil, false, fmt.Errorf("bridge %s: set up: %w", n.BrName, err)
		}
	}
	return br, created, nil
}

// ensureAddr puts the gateway address on the bridge unless it is there. As
// the plugin, it refuses a bridge with another IPv4 address, or another
// IPv6 address in the same subnet.
func ensureAddr(h *netlink.Handle, br *netlink.Bridge, gw *net.IPNet) (bool, error) {
	family := netlink.FAMILY_V4
	if gw.IP.To4() == nil {
		family = netlink.FAMILY_V6
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.AddrList(br, family) })
	if err != nil {
		return false, fmt.Errorf("bridge %s: list addresses: %w", br.Name, err)
	}
	for _, a := range addrs {
		if a.IPNet.String() == gw.String() {
			return false, nil
		}
		if family == netlink.FAMILY_V4 || a.IPNet.Contains(gw.IP) || gw.Contains(a.IP) {
			return false, fmt.Errorf("bridge %s already has address %s, not %s: %w", br.Name, a.IPNet, gw, ErrConflict)
		}
	}
	if err := h.AddrAdd(br, &netlink.Addr{IPNet: gw}); err != nil && !errors.Is(err, syscall.EEXIST) {
		return false, fmt.Errorf("bridge %s: add address %s: %w", br.Name, gw, err)
	}
	return true, nil
}

// makeVeth makes the veth pair from the host, its container end created
// directly in the container's namespace under ifName, its host end
// ("veth" + 8 random hex digits) up and a port of the bridge. It returns
// the host end and the container end's MAC. Both MACs are chosen here, as
// the kernel would choose them (random, locally administered), so that
// the result needs no lookup and nothing on the host (udev's MAC policy)
// changes them afterwards; the container's is the config's when it names
// one.
func makeVeth(h *netlink.Handle, cont *container, br *netlink.Bridge, ifName string, n *bridgeConf) (netlink.Link, net.HardwareAddr, error) {
	contMAC := n.hwaddr
	var host netlink.Link
	for range 10 {
		b := make([]byte, 4+6+6)
		if _, err := rand.Read(b); err != nil {
			return nil, nil, err
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name = "veth" + hex.EncodeToString(b[:4])
		attrs.MTU = n.MTU
		attrs.Flags = net.FlagUp
		attrs.HardwareAddr = localMAC(b[4:10])
		if n.hwaddr == nil {
			contMAC = localMAC(b[10:])
		}
		veth := &netlink.Veth{LinkAttrs: attrs, PeerName: ifName, PeerNamespace: netlink.NsFd(int(cont.ns.Fd())), PeerHardwareAddr: contMAC}
		err := h.LinkAdd(veth)
		if err == nil {
			host = veth
			break
		}
		if !errors.Is(err, syscall.EEXIST) {
			return nil, nil, fmt.Errorf("bridge: make veth pair for %s: %w", ifName, err)
		}
		if _, err := cont.nl.LinkByName(ifName); err == nil {
			return nil, nil, fmt.Errorf("bridge: interface %s already exists in namespace %s: %w", ifName, cont.ns.Path(), ErrConflict)
		}
		// The random host name was taken: try another.
	}
	if host == nil {
		return nil, nil, fmt.Errorf("bridge: no free veth name after 10 tries: %w", ErrConflict)
	}
	if err := h.LinkSetMasterByIndex(host, br.Attrs().Index); err != nil {
		_ = h.LinkDel(host)
		return nil, nil, fmt.Errorf("bridge: connect %s to bridge %s: %w", host.Attrs().Name, br.Name, err)
	}
	return host, contMAC, nil
}

// localMAC turns 6 random bytes into a unicast, locally administered MAC.
func localMAC(b []byte) net.HardwareAddr {
	mac := net.HardwareAddr(b[:6:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

// finishPort sets the host end's hairpin mode when the config asks for it
// and its accept_ra to 0.
func finishPort(h *netlink.Handle, host netlink.Link, n *bridgeConf) error {
	if n.HairpinMode {
		if err := h.LinkSetHairpin(host, true); err != nil {
			return fmt.Errorf("bridge: hairpin mode on %s: %w", host.Attrs().Name, err)
		}
	}
	// A new link has the host's default: write 0 without reading it first.
	_ = writeSysctls([]sysctl{{path: "net/ipv6/conf/" + host.Attrs().Name + "/accept_ra", value: "0"}})
	return nil
}

// configureContainer sets the container's interface up as the plugin and
// its IPAM helper do: DAD off and ARP notification on, IPv6 enabled where
// an IPv6 address goes, the addresses, the link up, tentative addresses
// waited for, then the routes.
func configureContainer(cont *container, ifName string, link netlink.Link, res *types100.Result) error {
	sysctls := []sysctl{
		{path: "net/ipv6/conf/" + ifName + "/accept_dad", value: "0"},
		{path: "net/ipv4/conf/" + ifName + "/arp_notify", value: "1"},
	}
	var v4gw, v6gw net.IP
	v6 := false
	for _, ipc := range res.IPs {
		if ipc.Address.IP.To4() == nil {
			v6 = true
			if v6gw == nil {
				v6gw = ipc.Gateway
			}
		} else if v4gw == nil {
			v4gw = ipc.Gateway
		}
	}
	if v6 {
		sysctls = append(sysctls,
			sysctl{path: "net/ipv6/conf/lo/disable_ipv6", value: "0", onlyIfNot: "0", mustSucceed: true},
			sysctl{path: "net/ipv6/conf/" + ifName + "/disable_ipv6", value: "0", onlyIfNot: "0", mustSucceed: true},
			sysctl{path: "net/ipv6/conf/" + ifName + "/keep_addr_on_down", value: "1", mustSucceed: true})
	}
	if err := cont.ns.Do(func() error { return writeSysctls(sysctls) }); err != nil {
		return err
	}
	for _, ipc := range res.IPs {
		if err := cont.nl.AddrAdd(link, &netlink.Addr{IPNet: &ipc.Address}); err != nil {
			return fmt.Errorf("add address %s to %s: %w", ipc.Address.String(), ifName, err)
		}
	}
	if err := cont.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", ifName, err)
	}
	if v6gw != nil {
		if err := settle(cont, link, ifName); err != nil {
			return err
		}
	}
	for _, r := range res.Routes {
		gw := r.GW
		if gw == nil {
			if r.Dst.IP.To4() != nil {
				gw = v4gw
			} else {
				gw = v6gw
			}
		}
		dst := r.Dst
		route := &netlink.Route{Dst: &dst, LinkIndex: link.Attrs().Index, Gw: gw, Priority: r.Priority}
		if r.Table != nil {
			route.Table = *r.Table
		}
		if r.Scope != nil {
			route.Scope = netlink.Scope(*r.Scope)
		}
		if err := cont.nl.RouteAddEcmp(route); err != nil {
			return fmt.Errorf("add route %s via %s dev %s: %w", r.Dst.String(), gw, ifName, err)
		}
	}
	return nil
}

// settle waits (at most 5 s, polling from every millisecond to every 50)
// until no IPv6 address of the link is tentative; an address whose DAD
// failed is an error.
func settle(cont *container, link netlink.Link, ifName string) error {
	deadline := time.Now().Add(5 * time.Second)
	wait := time.Millisecond
	for {
		addrs, err := retryDump(func() ([]netlink.Addr, error) { return cont.nl.AddrList(link, netlink.FAMILY_V6) })
		if err != nil {
			return fmt.Errorf("list addresses of %s: %w", ifName, err)
		}
		tentative := false
		for _, a := range addrs {
			if a.Flags&syscall.IFA_F_DADFAILED != 0 {
				return fmt.Errorf("%s: address %s failed duplicate address detection: %w", ifName, a.IP, ErrConflict)
			}
			tentative = tentative || a.Flags&syscall.IFA_F_TENTATIVE != 0
		}
		if !tentative || time.Now().After(deadline) {
			return nil
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// waitOperUp waits, as the plugin does (about 2.5 s at most), for the host
// end of the veth to be operationally up.
func waitOperUp(h *netlink.Handle, host netlink.Link) error {
	for _, ms := range []int{0, 10, 50, 500, 1000, 1000} {
		time.Sleep(time.Duration(ms) * time.Millisecond)
		l, err := h.LinkByIndex(host.Attrs().Index)
		if err != nil {
			return fmt.Errorf("bridge: port %s: %w", host.Attrs().Name, err)
		}
		if l.Attrs().OperState == netlink.OperUp {
			return nil
		}
	}
	return fmt.Errorf("bridge: port %s did not come up", host.Attrs().Name)
}

// waitContainerUp waits, up to about 100 ms, for the container's end of
// the veth to be operationally up too. The kernel turns a link up (its
// operstate, its queueing discipline, its IPv6 link-local address) in a
// work item of its own, just after the carrier comes: a packet the
// container sends before that is dropped. The plugin returns before it;
// its ADD takes long enough that nobody sees the difference. A link still
// down after the wait is not an error, as it is not for the plugin.
func waitContainerUp(cont *container, link netlink.Link) {
	wait := 100 * time.Microsecond
	for deadline := time.Now().Add(100 * time.Millisecond); ; {
		l, err := cont.nl.LinkByIndex(link.Attrs().Index)
		if err != nil || l.Attrs().OperState == netlink.OperUp || time.Now().After(deadline) {
			return
		}
		time.Sleep(wait)
		wait = min(2*wait, 10*time.Millisecond)
	}
}

func (e *Exec) bridgeDel(c call) error {
	e.dropEarly(attachmentKey(c.containerID, c.ifc))
	n, err := loadBridgeConf(c.stdin, c.args)
	if err != nil {
		return err
	}
	ipamConf, err := ipamConfig(c.stdin, c.args)
	if err != nil {
		return err
	}
	// The pair goes first: by its container end, which deletes the host's
	// too, or by its host ends. When the caller removes the namespace right
	// after (EnvNamespaceEnds), the host ends only go down, which cuts the
	// container off at once, and the namespace's end removes the pair. The
	// old address can no longer answer: its flows are forgotten, its
	// elements settled, and then its lease is released. (Walking the
	// conntrack table while a veth is deleted makes both slower: the walk
	// holds up the grace periods the delete waits for.)
	h, err := hostHandle()
	if err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	defer h.Close()
	ends := hostEnds(h, n)
	if c.nsEnds && len(ends) > 0 {
		for _, l := range ends {
			if err := h.LinkSetDown(l); err != nil && !linkNotFound(err) {
				return fmt.Errorf("bridge: set %s down: %w", l.Attrs().Name, err)
			}
		}
	} else if err := removePair(h, c, ends); err != nil {
		return err
	}
	e.stepAt(c, "link")
	if err := forgetConntrack(ipamConf, prevAddrs(n), c.containerID, c.ifc); err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	e.stepAt(c, "conntrack")
	if err := e.settle(c.plugin, c.containerID, c.ifc); err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	if err := releaseLease(ipamConf, c.containerID, c.ifc); err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	return nil
}

// removePair deletes the container's veth pair: by its container end in
// the namespace (which deletes the host end too), or by its host ends when
// the namespace is gone or does not hold it.
func removePair(h *netlink.Handle, c call, ends []netlink.Link) error {
	if c.netns != "" {
		cont, err := openContainer(c.netns)
		if err != nil && !gone(err) {
			return fmt.Errorf("bridge: %w", err)
		}
		if err == nil {
			defer cont.Close()
			l, err := cont.nl.LinkByName(c.ifc)
			if err == nil {
				err = cont.nl.LinkDel(l)
			}
			if err == nil {
				return nil
			}
			if !linkNotFound(err) {
				return fmt.Errorf("bridge: delete %s in namespace %s: %w", c.ifc, c.netns, err)
			}
		}
	}
	for _, l := range ends {
		if err := h.LinkDel(l); err != nil && !linkNotFound(err) {
			return fmt.Errorf("bridge: delete %s, whose container end is gone: %w", l.Attrs().Name, err)
		}
	}
	return nil
}

// prevAddrs returns the addresses of the previous result, or nil when
// there is none (or it names none).
func prevAddrs(n *bridgeConf) []net.IP {
	// hostEnds may have parsed it already (ParsePrevResult empties
	// RawPrevResult); a second call then does nothing.
	if err := version.ParsePrevResult(&n.NetConf); err != nil || n.PrevResult == nil {
		return nil
	}
	res, err := types100.NewResultFromResult(n.PrevResult)
	if err != nil {
		return nil
	}
	var ips []net.IP
	for _, ip := range res.IPs {
		ips = append(ips, ip.Address.IP)
	}
	return ips
}

// hostEnds returns the host ends of the container's veth that the previous
// result names and that are still ports of the bridge. Nothing named, or
// nothing there, is none.
func hostEnds(h *netlink.Handle, n *bridgeConf) []netlink.Link {
	if err := version.ParsePrevResult(&n.NetConf); err != nil || n.PrevResult == nil {
		return nil // DEL goes on without it, as the plugin does
	}
	res, err := types100.NewResultFromResult(n.PrevResult)
	if err != nil {
		return nil
	}
	br, err := h.LinkByName(n.BrName)
	if err != nil {
		return nil
	}
	var out []netlink.Link
	for _, i := range res.Interfaces {
		if i.Sandbox != "" || i.Name == n.BrName || validIfName(i.Name) != nil {
			continue
		}
		l, err := h.LinkByName(i.Name)
		if err != nil {
			continue
		}
		if _, ok := l.(*netlink.Veth); !ok || l.Attrs().MasterIndex != br.Attrs().Index {
			continue
		}
		out = append(out, l)
	}
	return out
}

// RemoveNetwork removes what the in-process bridge keeps per network
// beyond the bridge device itself: the masquerade rules of the network's
// subnets, and its bridge's masquerade chain and the jump to it once no
// other network's rule is left in it. Call it when the network's config is
// removed (the bridge is removed by the caller, as for the plugin binary).
// conflist is the network's config; a chain without a bridge plugin does
// nothing.
func (e *Exec) RemoveNetwork(_ context.Context, conflist []byte) error {
	var list struct {
		Name    string            `json:"name"`
		Plugins []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(conflist, &list); err != nil {
		return fmt.Errorf("remove network state: conflist: %v: %w", err, ErrInvalid)
	}
	for _, p := range list.Plugins {
		var head struct {
			Type   string `json:"type"`
			Bridge string `json:"bridge"`
			IPAM   struct {
				Ranges []allocator.RangeSet `json:"ranges"`
			} `json:"ipam"`
		}
		if err := json.Unmarshal(p, &head); err != nil {
			return fmt.Errorf("remove network state: plugin config: %v: %w", err, ErrInvalid)
		}
		if head.Type != "bridge" {
			continue
		}
		name := head.Bridge
		if name == "" {
			name = defaultBridge
		}
		if err := validIfName(name); err != nil {
			return fmt.Errorf("remove network state: %w", err)
		}
		var subnets []*net.IPNet
		for _, set := range head.IPAM.Ranges {
			for _, r := range set {
				subnets = append(subnets, &net.IPNet{IP: r.Subnet.IP, Mask: r.Subnet.Mask})
			}
		}
		l, err := e.lock("bridge-" + name)
		if err != nil {
			return err
		}
		err = e.removeMasq(name, subnets)
		l.Unlock()
		if err != nil {
			return err
		}
		if err := e.removeNetworkElements(list.Name, name); err != nil {
			return err
		}
	}
	return nil
}
