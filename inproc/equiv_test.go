package inproc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
)

// view is what a user sees of one attachment: inside the namespace, on the
// bridge and its port, and in the result. Addresses the IPAM chose, MACs
// and the host veth's name are replaced by placeholders, since they differ
// between any two attachments.
type view struct {
	Links, Addrs, Routes, Sysctls []string
	Bridge, Port, HostSysctls     []string
	Result                        types100.Result
}

// settleAddrs waits (up to 2 s) until no address in the namespace of h is
// tentative. The kernel finishes a link's IPv6 set-up (its link-local
// address, made when the link comes up, leaves the tentative state) in a
// work item of its own, after ADD returns: both datapaths' views are
// taken once it has, as the binaries are slow enough to have always seen
// it done.
func settleAddrs(t *testing.T, h *netlink.Handle) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; {
		addrs, err := h.AddrList(nil, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		tentative := false
		for _, a := range addrs {
			tentative = tentative || a.Flags&unix.IFA_F_TENTATIVE != 0
		}
		if !tentative || time.Now().After(deadline) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// snapshot takes the view of the attachment on network n in the namespace
// at path, with the result JSON.
func snapshot(t *testing.T, path string, n *ocinet.Network, result json.RawMessage) view {
	t.Helper()
	var v view
	if err := json.Unmarshal(result, &v.Result); err != nil {
		t.Fatalf("result: %v", err)
	}
	repl := map[string]string{}
	for i, ip := range v.Result.IPs {
		repl[ip.Address.IP.String()] = fmt.Sprintf("IP%d", i)
	}
	norm := func(s string) string {
		return addrToken.ReplaceAllStringFunc(s, func(tok string) string {
			if to, ok := repl[tok]; ok {
				return to
			}
			return tok
		})
	}
	ns, err := netns.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h := handleIn(t, path)
	defer h.Close()
	settleAddrs(t, h)
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var peer int
	for _, l := range links {
		a := l.Attrs()
		v.Links = append(v.Links, fmt.Sprintf("%s type=%s mtu=%d up=%v oper=%s promisc=%d", a.Name, l.Type(), a.MTU, a.Flags&net.FlagUp != 0, a.OperState, a.Promisc))
		if l.Type() == "veth" {
			peer = a.ParentIndex
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		for _, ad := range addrs {
			ip := ad.IP.String()
			if ad.IP.IsLinkLocalUnicast() {
				ip = "LINKLOCAL"
			}
			ones, _ := ad.Mask.Size()
			v.Addrs = append(v.Addrs, norm(fmt.Sprintf("%s %s/%d scope=%d flags=%#x", a.Name, ip, ones, ad.Scope, ad.Flags)))
		}
		for _, key := range []string{
			"net/ipv6/conf/%s/accept_dad", "net/ipv4/conf/%s/arp_notify", "net/ipv6/conf/%s/disable_ipv6",
			"net/ipv6/conf/%s/keep_addr_on_down", "net/ipv6/conf/%s/accept_ra", "net/ipv4/conf/%s/rp_filter",
		} {
			k := fmt.Sprintf(key, a.Name)
			var b []byte
			if err := ns.Do(func() (err error) { b, err = os.ReadFile(filepath.Join("/proc/sys", k)); return err }); err == nil {
				v.Sysctls = append(v.Sysctls, k+"="+strings.TrimSpace(string(b)))
			}
		}
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := h.RouteList(nil, fam)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			dst := "default"
			if r.Dst != nil {
				dst = r.Dst.String()
			}
			if strings.HasPrefix(dst, "fe80:") {
				dst = "LINKLOCAL"
			}
			v.Routes = append(v.Routes, norm(fmt.Sprintf("%s via %v proto %d scope %d metric %d table %d", dst, r.Gw, r.Protocol, r.Scope, r.Priority, r.Table)))
		}
	}

	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		t.Fatalf("bridge %s: %v", n.Bridge, err)
	}
	a := br.Attrs()
	v.Bridge = append(v.Bridge, fmt.Sprintf("%s type=%s mtu=%d up=%v promisc=%d", a.Name, br.Type(), a.MTU, a.Flags&net.FlagUp != 0, a.Promisc))
	addrs, err := netlink.AddrList(br, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, ad := range addrs {
		if ad.IP.IsLinkLocalUnicast() {
			continue // made by the kernel from the bridge's random MAC
		}
		v.Bridge = append(v.Bridge, "addr "+ad.IPNet.String())
	}
	port, err := netlink.LinkByIndex(peer)
	if err != nil {
		t.Fatalf("host end of the veth: %v", err)
	}
	pa := port.Attrs()
	prot, err := netlink.LinkGetProtinfo(port)
	if err != nil {
		t.Fatal(err)
	}
	v.Port = append(v.Port, fmt.Sprintf("VETH type=%s mtu=%d up=%v oper=%s master=%v hairpin=%v isolated=%v learning=%v flood=%v",
		port.Type(), pa.MTU, pa.Flags&net.FlagUp != 0, pa.OperState, pa.MasterIndex == a.Index, prot.Hairpin, prot.Isolated, prot.Learning, prot.Flood))
	for _, k := range []string{
		"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding",
		"net/ipv6/conf/" + n.Bridge + "/accept_ra", "net/ipv6/conf/" + pa.Name + "/accept_ra",
	} {
		b, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err == nil {
			v.HostSysctls = append(v.HostSysctls, strings.Replace(k, pa.Name, "VETH", 1)+"="+strings.TrimSpace(string(b)))
		}
	}

	// The result: the host veth's name and every MAC differ by nature.
	for _, i := range v.Result.Interfaces {
		if i.Mac != "" {
			i.Mac = "MAC"
		}
		if i.Name == pa.Name {
			i.Name = "VETH"
		}
	}
	for _, ip := range v.Result.IPs {
		ip.Address.IP = net.ParseIP(repl[ip.Address.IP.String()] + "") // placeholder: nil IP, kept by mask
	}
	return v
}

// addrToken matches an address in a line of a view.
var addrToken = regexp.MustCompile(`[0-9a-fA-F:.]*[0-9a-fA-F]`)

type equivCase struct {
	name string
	// make returns the network, after creating or writing it.
	make func(e *env) *ocinet.Network
	// mac, when set, is the MAC eth0 must get (from the config or the
	// request's static MAC).
	mac string
	// static, when set, are the request's static settings.
	static func(n *ocinet.Network) []ocinet.NetworkOptions
}

// tuningConf is a network whose tuning plugin sets a MAC and sysctls.
const tuningConf = `{"cniVersion":"1.0.0","name":"inp-tuning","plugins":[
	{"type":"bridge","bridge":"inptune0","isGateway":true,"ipMasq":true,"hairpinMode":true,
	 "ipam":{"type":"host-local","ranges":[[{"subnet":"10.215.9.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}},
	{"type":"tuning","mac":"02:42:0a:d7:09:63","sysctl":{"net.ipv4.conf.IFNAME.rp_filter":"2","net.ipv6.conf.IFNAME.accept_ra":"0"}}]}`

// TestEquivalence attaches one container through the plugin binaries and
// one through inproc to each bridge template (the Manager's own and the
// bridge ones nerdctl v2.3.5 wrote) and compares what a user sees.
// Differences by design, left out of the comparison: the bridge's MAC (the
// plugin pins whatever the bridge had after its first port joined, inproc
// pins the bridge's own; both keep it from wandering) and where ipMasq's
// rule lives (the plugin: one per container in its own table; inproc: one
// chain per network in inet ocinet, checked here).
func TestEquivalence(t *testing.T) {
	testenv.RequireRoot(t)
	cases := []equivCase{
		{name: "manager-default", make: func(e *env) *ocinet.Network { return mustNetwork(e, ocinet.DefaultNetworkName) }},
		{name: "manager-plain", make: func(e *env) *ocinet.Network { return e.network(ocinet.NetworkConfig{Name: "inp-plain"}) }},
		{name: "manager-fixed", make: func(e *env) *ocinet.Network {
			return e.network(ocinet.NetworkConfig{Name: "inp-fixed", Subnet: netip.MustParsePrefix("10.215.1.0/24"), Gateway: netip.MustParseAddr("10.215.1.254")})
		}},
		{name: "manager-iprange", make: func(e *env) *ocinet.Network {
			return e.network(ocinet.NetworkConfig{Name: "inp-ranged", Subnet: netip.MustParsePrefix("10.215.2.0/24"), IPRange: netip.MustParsePrefix("10.215.2.128/25")})
		}},
		{name: "manager-dual", make: func(e *env) *ocinet.Network {
			return e.network(ocinet.NetworkConfig{Name: "inp-dual", Subnet: netip.MustParsePrefix("10.215.3.0/24"), IPv6Subnet: netip.MustParsePrefix("fd00:215:3::/64")})
		}},
		{name: "manager-internal", make: func(e *env) *ocinet.Network {
			return e.network(ocinet.NetworkConfig{Name: "inp-internal", Internal: true})
		}},
		{name: "manager-labelled", make: func(e *env) *ocinet.Network {
			return e.network(ocinet.NetworkConfig{Name: "inp-labelled", Labels: map[string]string{"team": "blue"}})
		}},
	}
	cases = append(cases, equivCase{name: "tuning-mac-sysctl", mac: "02:42:0a:d7:09:63", make: func(e *env) *ocinet.Network {
		return e.writeNetwork("inp-tuning.conflist", []byte(tuningConf))
	}})
	cases = append(cases, equivCase{name: "cni-0.4.0", make: func(e *env) *ocinet.Network {
		conf := strings.ReplaceAll(strings.ReplaceAll(strings.Replace(manyConf, `"1.0.0"`, `"0.4.0"`, 1), "inpmany0", "inpold0"), "10.216.20.", "10.215.10.")
		return e.writeNetwork("inp-old.conflist", []byte(conf))
	}})
	dualFixture := filepath.Join(testenv.RepoRoot(), "testdata", "nerdctl-v2.3.5", "net.d", "default", "nerdctl-dual.conflist")
	cases = append(cases, equivCase{name: "nerdctl-dual-static-ip-mac", mac: "02:42:0a:d5:03:2a",
		make: func(e *env) *ocinet.Network {
			b, err := os.ReadFile(dualFixture)
			if err != nil {
				e.t.Fatal(err)
			}
			return e.writeNetwork("nerdctl-dual.conflist", b)
		},
		static: func(n *ocinet.Network) []ocinet.NetworkOptions {
			mac, _ := net.ParseMAC("02:42:0a:d5:03:2a")
			return []ocinet.NetworkOptions{{Network: n.Name, MAC: mac,
				IPs: []netip.Addr{netip.MustParseAddr("10.213.3.42"), netip.MustParseAddr("fd00:213:3::42")}}}
		}})
	fixtures, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(), "testdata", "nerdctl-v2.3.5", "net.d", "*.conflist"))
	more, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(), "testdata", "nerdctl-v2.3.5", "net.d", "*", "*.conflist"))
	for _, f := range append(fixtures, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"type": "bridge"`) {
			continue // macvlan, ipvlan: not in process
		}
		cases = append(cases, equivCase{name: "nerdctl-" + strings.TrimSuffix(filepath.Base(f), ".conflist"), make: func(e *env) *ocinet.Network {
			return e.writeNetwork(filepath.Base(f), b)
		}})
	}
	if len(cases) < 16 {
		t.Fatalf("found %d templates, want the Manager's 7 and nerdctl's bridge fixtures", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			n := tc.make(e)
			path := newNS(t)
			ctx := context.Background()
			req := ocinet.AttachRequest{NetNS: path, Networks: []string{n.Name}}
			if tc.static != nil {
				req.PerNetwork = tc.static(n)
			}
			take := func(m *ocinet.Manager, id string) view {
				req.ID = id
				a, err := m.Attach(ctx, req)
				if err != nil {
					t.Fatalf("attach %s: %v", id, err)
				}
				checkStatic(t, id, a, req)
				v := snapshot(t, path, n, e.cachedResult(n.Name, id, "eth0"))
				if tc.mac != "" {
					checkMAC(t, path, id, tc.mac)
				}
				if err := m.Detach(ctx, id); err != nil {
					t.Fatalf("detach %s: %v", id, err)
				}
				if _, err := os.Stat(filepath.Join("/run/cni/tuning", id+"_eth0.json")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("tuning's backup of %s after detach: %v, want none", id, err)
				}
				return v
			}
			want := take(e.plug, "eq-plugins")
			// The bridge goes, so that inproc makes it anew.
			if err := netlinkDel(n.Bridge); err != nil {
				t.Fatal(err)
			}
			var masq, jumps int
			req.ID = "eq-inproc"
			a, err := e.native.Attach(ctx, req)
			if err != nil {
				t.Fatalf("attach through inproc: %v", err)
			}
			checkStatic(t, "eq-inproc", a, req)
			got := snapshot(t, path, n, e.cachedResult(n.Name, "eq-inproc", "eth0"))
			if tc.mac != "" {
				checkMAC(t, path, "eq-inproc", tc.mac)
			}
			masq, jumps = masqRules(t, n.Bridge)
			if err := e.native.Detach(ctx, "eq-inproc"); err != nil {
				t.Fatalf("detach through inproc: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("plugins (-) and inproc (+) differ:\n%s", diff)
			}
			wantMasq := 0
			if strings.Contains(string(n.Bytes), `"ipMasq":true`) || strings.Contains(string(n.Bytes), `"ipMasq": true`) {
				wantMasq = len(n.Subnets)
			}
			if masq != wantMasq || (wantMasq > 0) != (jumps == 1) {
				t.Errorf("masquerade chain of %s: %d rules and %d jumps, want %d rules and %d jump", n.Bridge, masq, jumps, wantMasq, min(wantMasq, 1))
			}
		})
	}
}

func mustNetwork(e *env, name string) *ocinet.Network {
	e.t.Helper()
	n, err := e.plug.Network(name)
	if err != nil {
		e.t.Fatal(err)
	}
	e.forget(n.Bytes, n.Bridge)
	return n
}

// checkMAC checks eth0's MAC in the namespace and in the cached result.
func checkMAC(t *testing.T, path, id, mac string) {
	t.Helper()
	h := handleIn(t, path)
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Attrs().HardwareAddr.String(); got != mac {
		t.Errorf("%s: eth0 has MAC %s, want %s", id, got, mac)
	}
}

// checkStatic checks that the attachment has the request's static
// addresses.
func checkStatic(t *testing.T, id string, a *ocinet.Attachment, req ocinet.AttachRequest) {
	t.Helper()
	for _, o := range req.PerNetwork {
		var got []netip.Addr
		for _, p := range a.Interfaces[0].IPs {
			got = append(got, p.Addr())
		}
		if !cmp.Equal(got, o.IPs, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })) {
			t.Errorf("%s: addresses %v, want the static %v", id, got, o.IPs)
		}
	}
}
