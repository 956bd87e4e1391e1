package ocinet_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/portmap"
)

// nerdctlConf is the part of nerdctl's conflist format the tests look at.
type nerdctlConf struct {
	CNIVersion string            `json:"cniVersion"`
	Name       string            `json:"name"`
	ID         string            `json:"nerdctlID"`
	Labels     map[string]string `json:"nerdctlLabels"`
	Plugins    []struct {
		Type      string `json:"type"`
		Bridge    string `json:"bridge"`
		IsGateway bool   `json:"isGateway"`
		IPMasq    bool   `json:"ipMasq"`
		IPAM      struct {
			Type   string `json:"type"`
			Ranges [][]struct {
				Subnet     string `json:"subnet"`
				Gateway    string `json:"gateway"`
				RangeStart string `json:"rangeStart"`
				RangeEnd   string `json:"rangeEnd"`
			} `json:"ranges"`
			Routes []struct {
				Dst string `json:"dst"`
			} `json:"routes"`
		} `json:"ipam"`
	} `json:"plugins"`
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestCreateNetwork(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.network(ocinet.NetworkConfig{Name: "ocit-a", Labels: map[string]string{"tier": "front"}})
	b := e.network(ocinet.NetworkConfig{Name: "ocit-b"})

	id := sha256hex("ocit-a")
	if a.ID != id || a.Bridge != "br-"+id[:12] || a.File != filepath.Join(e.confDir, "ocinet-ocit-a.conflist") {
		t.Errorf("network a: ID %s bridge %s file %s; want ID %s, bridge br-%s, file ocinet-ocit-a.conflist", a.ID, a.Bridge, a.File, id, id[:12])
	}
	if len(a.Subnets) != 1 || len(b.Subnets) != 1 || a.Subnets[0].Overlaps(b.Subnets[0]) {
		t.Fatalf("automatic subnets %v and %v: want one each, not overlapping", a.Subnets, b.Subnets)
	}
	for _, n := range []*ocinet.Network{a, b} {
		s := n.Subnets[0]
		if !netip.MustParsePrefix("10.4.0.0/16").Contains(s.Addr()) || s.Bits() != 24 || s.Addr() == netip.MustParseAddr("10.4.0.0") {
			t.Errorf("automatic subnet %s: want a 10.4.N.0/24 with N >= 1", s)
		}
		if routes, _ := os.ReadFile("/proc/net/route"); strings.Contains(string(routes), hexRouteDst(s)) {
			t.Errorf("automatic subnet %s is routed on the host already", s)
		}
	}

	// The file is in nerdctl's format.
	var c nerdctlConf
	if err := json.Unmarshal(a.Bytes, &c); err != nil {
		t.Fatal(err)
	}
	types := []string{}
	for _, p := range c.Plugins {
		types = append(types, p.Type)
	}
	br := c.Plugins[0]
	if c.CNIVersion != "1.0.0" || c.Name != "ocit-a" || c.ID != id || c.Labels["tier"] != "front" ||
		!slices.Equal(types, []string{"bridge", "portmap", "firewall", "tuning"}) ||
		br.Bridge != a.Bridge || !br.IsGateway || !br.IPMasq || br.IPAM.Type != "host-local" ||
		len(br.IPAM.Ranges) != 1 || br.IPAM.Ranges[0][0].Subnet != a.Subnets[0].String() ||
		br.IPAM.Ranges[0][0].Gateway != a.Subnets[0].Addr().Next().String() ||
		len(br.IPAM.Routes) != 1 || br.IPAM.Routes[0].Dst != "0.0.0.0/0" {
		t.Errorf("conflist not in nerdctl's format:\n%s", a.Bytes)
	}

	// Gateway and IP range as given.
	r := e.network(ocinet.NetworkConfig{Name: "ocit-r", Subnet: netip.MustParsePrefix("10.213.40.0/24"),
		Gateway: netip.MustParseAddr("10.213.40.254"), IPRange: netip.MustParsePrefix("10.213.40.0/26")})
	var rc nerdctlConf
	if err := json.Unmarshal(r.Bytes, &rc); err != nil {
		t.Fatal(err)
	}
	if rr := rc.Plugins[0].IPAM.Ranges[0][0]; rr.Gateway != "10.213.40.254" || rr.RangeStart != "10.213.40.1" || rr.RangeEnd != "10.213.40.63" {
		t.Errorf("range %+v: want gateway 10.213.40.254, addresses 10.213.40.1 to .63", rr)
	}

	nets, err := e.m.Networks()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nets {
		names = append(names, n.Name)
	}
	if !slices.Equal(names, []string{"ocit-a", "ocit-b", "ocit-r"}) {
		t.Errorf("Networks = %v, want [ocit-a ocit-b ocit-r] (the default network is made on first use only)", names)
	}
	if got, err := e.m.Network("ocit-a"); err != nil || got.ID != id || got.Labels["tier"] != "front" {
		t.Errorf("Network(ocit-a) = %+v, %v", got, err)
	}

	// Refusals change nothing.
	before, _ := os.ReadDir(e.confDir)
	for _, tc := range []struct {
		name string
		cfg  ocinet.NetworkConfig
		want error
		text string
	}{
		{"name taken", ocinet.NetworkConfig{Name: "ocit-a"}, ocinet.ErrConflict, "exists"},
		{"subnet taken", ocinet.NetworkConfig{Name: "ocit-c", Subnet: a.Subnets[0]}, ocinet.ErrConflict, `network "ocit-a"`},
		{"default name", ocinet.NetworkConfig{Name: "bridge"}, ocinet.ErrInvalid, "default"},
		{"mode name", ocinet.NetworkConfig{Name: "host"}, ocinet.ErrInvalid, "mode"},
		{"bad name", ocinet.NetworkConfig{Name: "../x"}, ocinet.ErrInvalid, "../x"},
		{"host bits", ocinet.NetworkConfig{Name: "ocit-c", Subnet: netip.MustParsePrefix("10.213.50.1/24")}, ocinet.ErrInvalid, "host bits"},
		{"v6 as v4", ocinet.NetworkConfig{Name: "ocit-c", Subnet: netip.MustParsePrefix("fd00::/64")}, ocinet.ErrInvalid, "IPv4"},
		{"gateway outside", ocinet.NetworkConfig{Name: "ocit-c", Subnet: netip.MustParsePrefix("10.213.50.0/24"), Gateway: netip.MustParseAddr("10.213.51.1")}, ocinet.ErrInvalid, "gateway"},
		{"gateway broadcast", ocinet.NetworkConfig{Name: "ocit-c", Subnet: netip.MustParsePrefix("10.213.50.0/24"), Gateway: netip.MustParseAddr("10.213.50.255")}, ocinet.ErrInvalid, "gateway"},
		{"range outside", ocinet.NetworkConfig{Name: "ocit-c", Subnet: netip.MustParsePrefix("10.213.50.0/24"), IPRange: netip.MustParsePrefix("10.213.51.0/25")}, ocinet.ErrInvalid, "ip range"},
		{"gateway without subnet", ocinet.NetworkConfig{Name: "ocit-c", Gateway: netip.MustParseAddr("10.213.50.1")}, ocinet.ErrInvalid, "subnet"},
		{"v4 as v6", ocinet.NetworkConfig{Name: "ocit-c", IPv6Subnet: netip.MustParsePrefix("10.213.50.0/24")}, ocinet.ErrInvalid, "IPv6"},
		{"reserved label", ocinet.NetworkConfig{Name: "ocit-c", Labels: map[string]string{"nerdctl/default-network": "true"}}, ocinet.ErrInvalid, "label"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.m.CreateNetwork(ctx, tc.cfg)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("CreateNetwork: err = %v, want %v mentioning %q", err, tc.want, tc.text)
			}
		})
	}
	if after, _ := os.ReadDir(e.confDir); len(after) != len(before) {
		t.Errorf("refused creations changed the conf dir: %d files, then %d", len(before), len(after))
	}

	if err := e.m.RemoveNetwork(ctx, "ocit-nosuch"); !errors.Is(err, ocinet.ErrNotFound) {
		t.Errorf("RemoveNetwork(unknown): err = %v, want ErrNotFound", err)
	}
	e.writeConf("10-foreign.conflist", `{"cniVersion":"1.0.0","name":"foreign","plugins":[{"type":"loopback"}]}`)
	if err := e.m.RemoveNetwork(ctx, "foreign"); !errors.Is(err, ocinet.ErrInvalid) {
		t.Errorf("RemoveNetwork(foreign): err = %v, want ErrInvalid", err)
	}
	if _, err := e.m.Network("bridge"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.RemoveNetwork(ctx, "bridge"); !errors.Is(err, ocinet.ErrInvalid) {
		t.Errorf("RemoveNetwork(default): err = %v, want ErrInvalid", err)
	}
}

// hexRouteDst renders a prefix's address as /proc/net/route prints it.
func hexRouteDst(p netip.Prefix) string {
	b := p.Addr().As4()
	return strings.ToUpper(hex.EncodeToString([]byte{b[3], b[2], b[1], b[0]}))
}

// TestRemoveNetworkInUse: a network cannot go while a container is on it;
// the error names the container. Once the container is gone, removal
// deletes the conflist and the bridge.
func TestRemoveNetworkInUse(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	n, err := e.m.CreateNetwork(ctx, ocinet.NetworkConfig{Name: "ocit-use", Subnet: netip.MustParsePrefix("10.213.3.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	testenv.RemoveLinkAtEnd(t, n.Bridge)
	e.attach(ocinet.AttachRequest{ID: "use-1", Name: "web", NetNS: e.ns(), Networks: []string{"ocit-use"}})
	err = e.m.RemoveNetwork(ctx, "ocit-use")
	var inUse *ocinet.InUseError
	if !errors.Is(err, ocinet.ErrConflict) || !errors.As(err, &inUse) || !slices.Equal(inUse.Containers, []string{"web"}) || !strings.Contains(err.Error(), "web") {
		t.Fatalf("RemoveNetwork while attached: err = %v, want an InUseError naming web", err)
	}
	if _, err := os.Stat(n.File); err != nil {
		t.Errorf("conflist gone after a refused removal: %v", err)
	}
	e.detach("use-1")
	if err := e.m.RemoveNetwork(ctx, "ocit-use"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(n.File); !os.IsNotExist(err) {
		t.Errorf("conflist still there: %v", err)
	}
	if _, err := net.InterfaceByName(n.Bridge); err == nil {
		t.Errorf("bridge %s still there after RemoveNetwork", n.Bridge)
	}
}

// TestTwoNetworks: a container on two user networks gets eth0 and eth1 in
// the order asked, reaches a peer on each, and the firewall keeps the
// peers of different networks apart.
func TestTwoNetworks(t *testing.T) {
	e := newEnv(t)
	e.network(ocinet.NetworkConfig{Name: "ocit-front", Subnet: netip.MustParsePrefix("10.213.1.0/24")})
	e.network(ocinet.NetworkConfig{Name: "ocit-back", Subnet: netip.MustParsePrefix("10.213.2.0/24")})
	c, p1, p2 := e.ns(), e.ns(), e.ns()
	att := e.attach(ocinet.AttachRequest{ID: "two-c", NetNS: c, Networks: []string{"ocit-front", "ocit-back"}})
	defer e.detach("two-c")
	front := e.attach(ocinet.AttachRequest{ID: "two-p1", NetNS: p1, Networks: []string{"ocit-front"}})
	defer e.detach("two-p1")
	back := e.attach(ocinet.AttachRequest{ID: "two-p2", NetNS: p2, Networks: []string{"ocit-back"}})
	defer e.detach("two-p2")

	if len(att.Interfaces) != 2 || att.Interfaces[0].Name != "eth0" || att.Interfaces[0].Network != "ocit-front" ||
		att.Interfaces[1].Name != "eth1" || att.Interfaces[1].Network != "ocit-back" {
		t.Fatalf("interfaces: %+v", att.Interfaces)
	}
	cFront, cBack := att.Interfaces[0].IPs[0].Addr(), att.Interfaces[1].IPs[0].Addr()
	if !netip.MustParsePrefix("10.213.1.0/24").Contains(cFront) || !netip.MustParsePrefix("10.213.2.0/24").Contains(cBack) {
		t.Errorf("addresses %s, %s not in their networks' subnets", cFront, cBack)
	}
	got := addrsIn(t, c)
	if !strings.Contains(got, "eth0    inet "+att.Interfaces[0].IPs[0].String()) || !strings.Contains(got, "eth1    inet "+att.Interfaces[1].IPs[0].String()) {
		t.Errorf("namespace addresses do not match the attachment:\n%s", got)
	}
	p1Addr, p2Addr := front.Interfaces[0].IPs[0].Addr(), back.Interfaces[0].IPs[0].Addr()
	if !ping(t, c, p1Addr) {
		t.Errorf("the container does not reach its peer %s on ocit-front", p1Addr)
	}
	if !ping(t, c, p2Addr) {
		t.Errorf("the container does not reach its peer %s on ocit-back", p2Addr)
	}
	if !ping(t, p1, cFront) {
		t.Errorf("the peer on ocit-front does not reach the container at %s", cFront)
	}
	if ping(t, p1, p2Addr) {
		t.Errorf("a container on ocit-front reaches %s on ocit-back: the networks are not isolated", p2Addr)
	}
}

// TestStaticAddressAndMAC: a static address and MAC per network; a second
// container asking for the same address is refused with a conflict naming
// the first, and leaves nothing.
func TestStaticAddressAndMAC(t *testing.T) {
	e := newEnv(t)
	e.network(ocinet.NetworkConfig{Name: "ocit-st1", Subnet: netip.MustParsePrefix("10.213.4.0/24")})
	e.network(ocinet.NetworkConfig{Name: "ocit-st2", Subnet: netip.MustParsePrefix("10.213.5.0/24")})
	mac, _ := net.ParseMAC("02:42:0a:d5:05:63")
	ip := netip.MustParseAddr("10.213.4.77")
	c := e.ns()
	att := e.attach(ocinet.AttachRequest{
		ID: "static-1", Name: "db", NetNS: c, Hostname: "db.example",
		Networks: []string{"ocit-st1", "ocit-st2"},
		PerNetwork: []ocinet.NetworkOptions{
			{Network: "ocit-st1", IPs: []netip.Addr{ip}},
			{Network: "ocit-st2", MAC: mac},
		},
	})
	defer e.detach("static-1")
	if att.Interfaces[0].IPs[0].Addr() != ip {
		t.Errorf("eth0 address %v, want %s", att.Interfaces[0].IPs, ip)
	}
	if att.Interfaces[1].MAC != mac.String() {
		t.Errorf("eth1 MAC %s, want %s", att.Interfaces[1].MAC, mac)
	}
	if out, err := inNS(c, "ip", "-o", "link", "show", "eth1"); err != nil || !strings.Contains(out, mac.String()) {
		t.Errorf("eth1 in the namespace does not have MAC %s: %v: %s", mac, err, out)
	}
	if got := addrsIn(t, c); !strings.Contains(got, "eth0    inet "+ip.String()+"/24") {
		t.Errorf("eth0 does not have %s:\n%s", ip, got)
	}

	_, err := e.m.Attach(context.Background(), ocinet.AttachRequest{
		ID: "static-2", NetNS: e.ns(), Networks: []string{"ocit-st1"},
		PerNetwork: []ocinet.NetworkOptions{{Network: "ocit-st1", IPs: []netip.Addr{ip}}},
	})
	if !errors.Is(err, ocinet.ErrConflict) || !strings.Contains(err.Error(), "db") {
		t.Errorf("second attach with the same address: err = %v, want ErrConflict naming db", err)
	}
	if _, err := e.m.Get("static-2"); !errors.Is(err, ocinet.ErrNotFound) {
		t.Errorf("the refused attachment is recorded: %v", err)
	}
}

func TestAttachRefusesBadStatic(t *testing.T) {
	e := newEnv(t)
	e.network(ocinet.NetworkConfig{Name: "ocit-bad", Subnet: netip.MustParsePrefix("10.213.6.0/24")})
	e.writeConf("20-plain.conflist", `{"cniVersion":"1.0.0","name":"ocit-plain","plugins":[
		{"type":"bridge","bridge":"`+testBridge+`","ipam":{"type":"host-local","ranges":[[{"subnet":"10.213.7.0/24"}]]}}]}`)
	ns := e.ns()
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	ips := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, a := range s {
			out = append(out, netip.MustParseAddr(a))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		opts ocinet.NetworkOptions
		text string
	}{
		{"outside the subnet", ocinet.NetworkOptions{Network: "ocit-bad", IPs: ips("10.213.99.5")}, "outside"},
		{"the gateway", ocinet.NetworkOptions{Network: "ocit-bad", IPs: ips("10.213.6.1")}, "gateway"},
		{"two IPv4", ocinet.NetworkOptions{Network: "ocit-bad", IPs: ips("10.213.6.5", "10.213.6.6")}, "per family"},
		{"v6 without the ips capability", ocinet.NetworkOptions{Network: "ocit-bad", IPs: ips("10.213.6.5", "fd00:213::5")}, "capability"},
		{"loopback", ocinet.NetworkOptions{Network: "ocit-bad", IPs: ips("127.0.0.2")}, "unicast"},
		{"multicast MAC", ocinet.NetworkOptions{Network: "ocit-bad", MAC: mac("01:00:5e:00:00:01")}, "MAC"},
		{"short MAC", ocinet.NetworkOptions{Network: "ocit-bad", MAC: net.HardwareAddr{2, 0, 0}}, "MAC"},
		{"network not asked for", ocinet.NetworkOptions{Network: "ocit-plain", IPs: ips("10.213.7.5")}, "not among"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.m.Attach(context.Background(), ocinet.AttachRequest{ID: "bad", NetNS: ns, Networks: []string{"ocit-bad"}, PerNetwork: []ocinet.NetworkOptions{tc.opts}})
			if !errors.Is(err, ocinet.ErrInvalid) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("Attach: err = %v, want ErrInvalid mentioning %q", err, tc.text)
			}
		})
	}
	_, err := e.m.Attach(context.Background(), ocinet.AttachRequest{ID: "bad", NetNS: ns, Networks: []string{"ocit-plain"},
		PerNetwork: []ocinet.NetworkOptions{{Network: "ocit-plain", MAC: mac("02:00:00:00:00:01")}, {Network: "ocit-plain"}}})
	if !errors.Is(err, ocinet.ErrInvalid) || !strings.Contains(err.Error(), "twice") {
		t.Errorf("settings given twice: err = %v, want ErrInvalid", err)
	}
	_, err = e.m.Attach(context.Background(), ocinet.AttachRequest{ID: "bad", NetNS: ns, Hostname: "-bad-"})
	if !errors.Is(err, ocinet.ErrInvalid) || !strings.Contains(err.Error(), "hostname") {
		t.Errorf("bad hostname: err = %v, want ErrInvalid", err)
	}
	if list, _ := e.m.List(); len(list) != 0 {
		t.Errorf("records after refused attaches: %+v", list)
	}
	if got := addrsIn(t, ns); strings.Contains(got, "eth0") {
		t.Errorf("a refused attach left eth0:\n%s", got)
	}
}

// TestInternalNetwork: no default route, no masquerade, no published ports.
func TestInternalNetwork(t *testing.T) {
	e := newEnv(t)
	n := e.network(ocinet.NetworkConfig{Name: "ocit-int", Subnet: netip.MustParsePrefix("10.213.8.0/24"), Internal: true})
	if !slices.Equal(n.Plugins, []string{"bridge", "firewall", "tuning"}) {
		t.Errorf("internal network chain %v, want [bridge firewall tuning]", n.Plugins)
	}
	var c nerdctlConf
	if err := json.Unmarshal(n.Bytes, &c); err != nil || c.Plugins[0].IPMasq || len(c.Plugins[0].IPAM.Routes) != 0 {
		t.Errorf("internal network masquerades or routes out:\n%s", n.Bytes)
	}
	ns := e.ns()
	p, _ := portmap.Parse("127.0.0.1:28090:80")
	if _, err := e.m.Attach(context.Background(), ocinet.AttachRequest{ID: "int-1", NetNS: ns, Networks: []string{"ocit-int"}, Ports: []portmap.Mapping{p}}); !errors.Is(err, ocinet.ErrInvalid) {
		t.Errorf("publishing on an internal network: err = %v, want ErrInvalid", err)
	}
	e.attach(ocinet.AttachRequest{ID: "int-1", NetNS: ns, Networks: []string{"ocit-int"}})
	defer e.detach("int-1")
	if out, err := inNS(ns, "ip", "route", "show", "default"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("default route in a container on an internal network: %v: %q", err, out)
	}
}

// TestDualStack: an IPv6 subnet next to the IPv4 one gives each container
// an address of each family; static addresses of both go through the "ips"
// capability.
func TestDualStack(t *testing.T) {
	e := newEnv(t)
	e.network(ocinet.NetworkConfig{Name: "ocit-ds", Subnet: netip.MustParsePrefix("10.213.10.0/24"), IPv6Subnet: netip.MustParsePrefix("fd00:213:10::/64")})
	v4, v6 := netip.MustParseAddr("10.213.10.20"), netip.MustParseAddr("fd00:213:10::20")
	a := e.attach(ocinet.AttachRequest{ID: "ds-1", NetNS: e.ns(), Networks: []string{"ocit-ds"}})
	defer e.detach("ds-1")
	b := e.attach(ocinet.AttachRequest{ID: "ds-2", NetNS: e.ns(), Networks: []string{"ocit-ds"},
		PerNetwork: []ocinet.NetworkOptions{{Network: "ocit-ds", IPs: []netip.Addr{v4, v6}}}})
	defer e.detach("ds-2")
	families := func(ps []netip.Prefix) (n4, n6 int) {
		for _, p := range ps {
			if p.Addr().Is4() {
				n4++
			} else {
				n6++
			}
		}
		return
	}
	if n4, n6 := families(a.Interfaces[0].IPs); n4 != 1 || n6 != 1 {
		t.Errorf("dual-stack addresses %v: want one of each family", a.Interfaces[0].IPs)
	}
	var got []netip.Addr
	for _, p := range b.Interfaces[0].IPs {
		got = append(got, p.Addr())
	}
	if !slices.Contains(got, v4) || !slices.Contains(got, v6) {
		t.Errorf("static addresses %v, want %s and %s", got, v4, v6)
	}
}

// TestNerdctlNetwork: a conflist that nerdctl wrote (a fixture in its
// format, its tuning plugin included) is listed with its ID and labels, is
// attachable, and can be removed.
func TestNerdctlNetwork(t *testing.T) {
	e := newEnv(t)
	if _, err := os.Stat(filepath.Join(testenv.PluginDir, "tuning")); err != nil {
		testenv.Skip(t, "needs the tuning plugin (run scripts/install.sh)")
	}
	b, err := os.ReadFile("testdata/nerdctl-bridge.conflist")
	if err != nil {
		t.Fatal(err)
	}
	e.writeConf("nerdctl-nerdnet.conflist", string(b))
	bridge := "br-" + sha256hex("nerdnet")[:12]
	testenv.RemoveLinkAtEnd(t, bridge)
	nets, err := e.m.Networks()
	if err != nil || len(nets) != 1 {
		t.Fatalf("Networks = %v, %v; want the fixture", nets, err)
	}
	n := nets[0]
	if n.Name != "nerdnet" || n.ID != sha256hex("nerdnet") || n.Bridge != bridge || n.Labels["com.example.purpose"] != "fixture" ||
		!slices.Equal(n.Plugins, []string{"bridge", "portmap", "firewall", "tuning"}) || len(n.Subnets) != 1 || n.Subnets[0].String() != "10.213.9.0/24" {
		t.Errorf("fixture network read as %+v", n)
	}
	p, _ := portmap.Parse("127.0.0.1:28091:80")
	a := e.attach(ocinet.AttachRequest{ID: "nerd-1", NetNS: e.ns(), Networks: []string{"nerdnet"}, Ports: []portmap.Mapping{p}})
	if len(a.Interfaces) != 1 || !n.Subnets[0].Contains(a.Interfaces[0].IPs[0].Addr()) || len(a.Ports) != 1 {
		t.Errorf("attachment on the fixture network: %+v", a)
	}
	if err := e.m.Check(context.Background(), "nerd-1"); err != nil {
		t.Errorf("Check: %v", err)
	}
	e.detach("nerd-1")
	if err := e.m.RemoveNetwork(context.Background(), "nerdnet"); err != nil {
		t.Errorf("RemoveNetwork(nerdnet): %v", err)
	}
	if _, err := net.InterfaceByName(bridge); err == nil {
		t.Errorf("bridge %s still there after RemoveNetwork", bridge)
	}
}
