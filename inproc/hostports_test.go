package inproc_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/testenv"
)

// defaultChain is the chain the templates write (bridge, portmap,
// firewall, tuning) with subnets (one per range set); extraBridge goes
// into the bridge's config, policy is the firewall's ingressPolicy.
func defaultChain(t testing.TB, name, bridge string, subnets []string, dataDir, extraBridge, policy string) *libcni.NetworkConfigList {
	t.Helper()
	return chainWith(t, name, bridge, subnets, dataDir, extraBridge, "", policy, "")
}

// chainWith is defaultChain with extra fields for portmap and firewall too
// (each starting with a comma).
func chainWith(t testing.TB, name, bridge string, subnets []string, dataDir, extraBridge, extraPortmap, policy, extraFirewall string) *libcni.NetworkConfigList {
	t.Helper()
	var ranges, routes []string
	for _, s := range subnets {
		ranges = append(ranges, fmt.Sprintf(`[{"subnet":%q}]`, s))
		if strings.Contains(s, ":") {
			routes = append(routes, `{"dst":"::/0"}`)
		} else {
			routes = append(routes, `{"dst":"0.0.0.0/0"}`)
		}
	}
	fw := `{"type":"firewall"` + extraFirewall + `}`
	if policy != "" {
		fw = fmt.Sprintf(`{"type":"firewall","ingressPolicy":%q%s}`, policy, extraFirewall)
	}
	b := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[{"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":true,"hairpinMode":true%s,
		"ipam":{"type":"host-local","dataDir":%q,"ranges":[%s],"routes":[%s]}},
		{"type":"portmap","capabilities":{"portMappings":true}%s},%s,{"type":"tuning"}]}`,
		name, bridge, extraBridge, dataDir, strings.Join(ranges, ","), strings.Join(routes, ","), extraPortmap, fw)
	list, err := libcni.ConfListFromBytes([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// container is one attachment made by attach.
type container struct {
	id, path string
	ips      []net.IP
	rt       *libcni.RuntimeConf
}

func (c *container) ip(v4 bool) net.IP {
	for _, ip := range c.ips {
		if (ip.To4() != nil) == v4 {
			return ip
		}
	}
	return nil
}

// attach adds a container to the network through cni (in process or the
// binaries) with the port mappings; it is deleted when the test ends
// unless the test deletes it first (del).
func attach(t *testing.T, cni *libcni.CNIConfig, list *libcni.NetworkConfigList, id string, ports []inproc.PortMapping, args ...[2]string) *container {
	t.Helper()
	path := newNS(t)
	rt := &libcni.RuntimeConf{ContainerID: id, NetNS: path, IfName: "eth0", Args: args}
	if len(ports) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": ports}
	}
	r, err := cni.AddNetworkList(context.Background(), list, rt)
	if err != nil {
		t.Fatalf("add %s: %v", id, err)
	}
	t.Cleanup(func() {
		if err := cni.DelNetworkList(context.Background(), list, rt); err != nil {
			t.Errorf("del %s: %v", id, err)
		}
	})
	res, err := types100.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	c := &container{id: id, path: path, rt: rt}
	for _, ipc := range res.IPs {
		c.ips = append(c.ips, ipc.Address.IP)
	}
	return c
}

// serve answers every TCP connection on port (both families) and every
// UDP datagram on port in the container's namespace with the container's
// ID, until the test ends.
func serve(t *testing.T, c *container, ports ...int) {
	t.Helper()
	for _, p := range ports {
		for _, fam := range []string{"4", "6"} {
			if c.ip(fam == "4") != nil {
				serveOn(t, c, fam, p)
			}
		}
	}
}

// serveOn serves one port of one family (4 or 6) for serve.
func serveOn(t *testing.T, c *container, fam string, p int) {
	t.Helper()
	{
		var tl net.Listener
		var ul net.PacketConn
		inNS(t, c.path, func() (err error) {
			if tl, err = net.Listen("tcp"+fam, fmt.Sprintf(":%d", p)); err != nil {
				return err
			}
			ul, err = net.ListenPacket("udp"+fam, fmt.Sprintf(":%d", p))
			return err
		})
		t.Cleanup(func() { tl.Close(); ul.Close() })
		go func() {
			for {
				conn, err := tl.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(conn, "%s %s\n", c.id, conn.RemoteAddr())
				conn.Close()
			}
		}()
		go func() {
			buf := make([]byte, 64)
			for {
				_, from, err := ul.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = ul.WriteTo([]byte(c.id+" "+from.String()+"\n"), from)
			}
		}()
	}
}

// ask connects to addr:port from the namespace at from ("" for the test's
// own) over tcp or udp and returns the first word of the answer (the ID
// of the container that answered) and the source address it saw; "" when
// nothing answered within a second.
func ask(t *testing.T, from, network string, addr net.IP, port int) (id, source string) {
	t.Helper()
	var line string
	dial := func() error {
		d := net.Dialer{Timeout: time.Second}
		conn, err := d.Dial(network, net.JoinHostPort(addr.String(), fmt.Sprint(port)))
		if err != nil {
			return nil
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(time.Second))
		if network == "udp" {
			if _, err := conn.Write([]byte("?")); err != nil {
				return nil
			}
		}
		line, _ = bufio.NewReader(conn).ReadString('\n')
		return nil
	}
	if from == "" {
		_ = dial()
	} else {
		inNS(t, from, dial)
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return "", ""
	}
	host, _, _ := net.SplitHostPort(f[1])
	return f[0], host
}

// remoteNS makes a namespace standing in for another host: behind a veth
// (host end hostIf with 192.168.<n>.1/24, its end eth0 with
// 192.168.<n>.2/24, default route to the host), lo down and without
// 127.0.0.1, so that 127.0.0.0/8 can be routed to the host.
func remoteNS(t *testing.T, hostIf string, n byte) (path string, hostAddr, remoteAddr net.IP) {
	t.Helper()
	hostAddr, remoteAddr = net.IPv4(192, 168, n, 1).To4(), net.IPv4(192, 168, n, 2).To4()
	path = outsideNS(t, hostIf, []*net.IPNet{{IP: hostAddr, Mask: net.CIDRMask(24, 32)}},
		[]*net.IPNet{{IP: remoteAddr, Mask: net.CIDRMask(24, 32)}})
	h := handleIn(t, path)
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetDown(lo); err != nil {
		t.Fatal(err)
	}
	// Without its address, lo no longer claims 127.0.0.0/8.
	if err := h.AddrDel(lo, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(127, 0, 0, 1).To4(), Mask: net.CIDRMask(8, 32)}}); err != nil {
		t.Fatal(err)
	}
	eth, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: hostAddr}); err != nil {
		t.Fatal(err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: hostAddr, Dst: &net.IPNet{IP: net.IPv4(127, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)}}); err != nil {
		t.Fatal(err)
	}
	inNS(t, path, func() error {
		return writeProc("net/ipv4/conf/eth0/route_localnet", "1")
	})
	return path, hostAddr, remoteAddr
}

func writeProc(key, value string) error {
	return os.WriteFile("/proc/sys/"+key, []byte(value), 0o644)
}

// TestPublish publishes TCP and UDP ports and a port range of a container
// and asks for them from everywhere a user of the plugins asks: the host
// on 127.0.0.1, on the bridge's gateway and on its own address, another
// host, and the container itself through the host (hairpin); a port
// published on one host address answers there and nowhere else. The same
// cases run against the plugin binaries on a network of their own: what a
// client sees is the same, but for the one difference on purpose (another
// host's packets to 127.0.0.1).
func TestPublish(t *testing.T) {
	testenv.RequireRoot(t)
	eachDatapath(t, newEnv(t), "inppub", 90, 160, [2]int{18080, 19080}, publishCases)
}

// publishNet is a network of nerdctl's default chain for a subtest of
// eachDatapath: run in process or through the plugin binaries, its
// gateway, the host's address that another host (the namespace remote)
// reaches, and the first host port the subtest publishes.
type publishNet struct {
	cni      *libcni.CNIConfig
	list     *libcni.NetworkConfigList
	binaries bool
	remote   string
	hostAddr net.IP
	gw       net.IP
	base     int
}

// eachDatapath runs f on a network run in process, then on one run
// through the plugin binaries: their bridges are tag+"0" and tag+"b0",
// their subnets 10.216.third.0/24 and the next, their other hosts on
// 192.168.(remote+third).0/24 and the next, and their first host ports
// base[0] and base[1].
func eachDatapath(t *testing.T, e *env, tag string, third, remote byte, base [2]int, f func(*testing.T, publishNet)) {
	for i, dp := range []struct {
		name, bridge string
		cni          *libcni.CNIConfig
	}{
		{"in process", tag + "0", e.cniFor()},
		{"binaries", tag + "b0", libcni.NewCNIConfigWithCacheDir([]string{e.plugins}, e.cacheDir, defaultExec())},
	} {
		n := third + byte(i)
		t.Run(dp.name, func(t *testing.T) {
			list := defaultChain(t, "inp-"+dp.bridge, dp.bridge, []string{fmt.Sprintf("10.216.%d.0/24", n)}, t.TempDir(), "", "same-bridge")
			e.forget(list.Bytes, dp.bridge)
			path, hostAddr, _ := remoteNS(t, dp.bridge+"r", remote+n)
			f(t, publishNet{cni: dp.cni, list: list, binaries: i == 1, remote: path, hostAddr: hostAddr, gw: net.IPv4(10, 216, n, 1), base: base[i]})
		})
	}
}

func publishCases(t *testing.T, p publishNet) {
	cni, list, binaries, remote, hostAddr, gw, base := p.cni, p.list, p.binaries, p.remote, p.hostAddr, p.gw, p.base
	ports := []inproc.PortMapping{
		{HostPort: base, ContainerPort: 80, Protocol: "tcp"},
		{HostPort: base + 1, ContainerPort: 81, Protocol: "udp"},
		{HostPort: base + 20, ContainerPort: 90, Protocol: "tcp"},
		{HostPort: base + 21, ContainerPort: 91, Protocol: "tcp"},
		{HostPort: base + 22, ContainerPort: 92, Protocol: "tcp"},
		{HostPort: base + 10, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"},
		{HostPort: base + 30, ContainerPort: 80, Protocol: "tcp", HostIP: hostAddr.String()},
	}
	c := attach(t, cni, list, "pub-a", ports)
	serve(t, c, 80, 81, 90, 91, 92)
	lo := net.IPv4(127, 0, 0, 1)
	askAll(t, []askCase{
		{"host to 127.0.0.1", "", "tcp", lo, base, "pub-a"},
		{"host to the gateway", "", "tcp", gw, base, "pub-a"},
		{"host to its own address", "", "tcp", hostAddr, base, "pub-a"},
		{"another host", remote, "tcp", hostAddr, base, "pub-a"},
		{"hairpin through the gateway", c.path, "tcp", gw, base, "pub-a"},
		{"hairpin through the host's address", c.path, "tcp", hostAddr, base, "pub-a"},
		{"udp on 127.0.0.1", "", "udp", lo, base + 1, "pub-a"},
		{"udp from another host", remote, "udp", hostAddr, base + 1, "pub-a"},
		{"range first", "", "tcp", lo, base + 20, "pub-a"},
		{"range last", remote, "tcp", hostAddr, base + 22, "pub-a"},
		{"loopback-published on 127.0.0.1", "", "tcp", lo, base + 10, "pub-a"},
		{"loopback-published, not on the gateway", "", "tcp", gw, base + 10, ""},
		// The binary dnats what another host sends to 127.0.0.1 before
		// the kernel's martian check: the port answers there. inproc
		// drops it, on purpose.
		{"loopback-published, not from another host", remote, "tcp", lo, base + 10, map[bool]string{true: "pub-a", false: ""}[binaries]},
		{"published on the host's address, there", "", "tcp", hostAddr, base + 30, "pub-a"},
		{"published on the host's address, from another host", remote, "tcp", hostAddr, base + 30, "pub-a"},
		{"published on the host's address, hairpin", c.path, "tcp", hostAddr, base + 30, "pub-a"},
		{"published on the host's address, not on the gateway", "", "tcp", gw, base + 30, ""},
		{"published on the host's address, not on 127.0.0.1", "", "tcp", lo, base + 30, ""},
		{"unpublished port", "", "tcp", lo, base + 3, ""},
	})
}

// askCase is a request from the namespace from ("" for the host) and the
// container that must answer it ("" for none).
type askCase struct {
	name, from, network string
	addr                net.IP
	port                int
	want                string
}

// askAll asks each case in a subtest of its own.
func askAll(t *testing.T, cases []askCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := ask(t, tc.from, tc.network, tc.addr, tc.port); got != tc.want {
				t.Errorf("%s %s answered by %q, want %q", tc.network, net.JoinHostPort(tc.addr.String(), fmt.Sprint(tc.port)), got, tc.want)
			}
		})
	}
}

// TestPublishSharedHostPort: two containers publish the same host port,
// one on 127.0.0.1 and one on the host's address, and the next port, one
// for UDP on the host's address and one for TCP on every address. Each
// client reaches the container its address and protocol name, and the
// plugin binaries agree.
func TestPublishSharedHostPort(t *testing.T) {
	testenv.RequireRoot(t)
	eachDatapath(t, newEnv(t), "inpshr", 92, 40, [2]int{18400, 18410}, func(t *testing.T, p publishNet) {
		a := attach(t, p.cni, p.list, "shr-a", []inproc.PortMapping{
			{HostPort: p.base, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"},
			{HostPort: p.base + 1, ContainerPort: 80, Protocol: "udp", HostIP: p.hostAddr.String()},
		})
		b := attach(t, p.cni, p.list, "shr-b", []inproc.PortMapping{
			{HostPort: p.base, ContainerPort: 80, Protocol: "tcp", HostIP: p.hostAddr.String()},
			{HostPort: p.base + 1, ContainerPort: 80, Protocol: "tcp"},
		})
		serve(t, a, 80)
		serve(t, b, 80)
		lo := net.IPv4(127, 0, 0, 1)
		askAll(t, []askCase{
			{"127.0.0.1", "", "tcp", lo, p.base, "shr-a"},
			{"the host's address", "", "tcp", p.hostAddr, p.base, "shr-b"},
			{"the host's address from another host", p.remote, "tcp", p.hostAddr, p.base, "shr-b"},
			{"the host's address from the other container", a.path, "tcp", p.hostAddr, p.base, "shr-b"},
			{"neither on the gateway", "", "tcp", p.gw, p.base, ""},
			{"udp on the host's address", "", "udp", p.hostAddr, p.base + 1, "shr-a"},
			{"tcp on the host's address", "", "tcp", p.hostAddr, p.base + 1, "shr-b"},
			{"tcp on the gateway", "", "tcp", p.gw, p.base + 1, "shr-b"},
			{"no udp on the gateway", "", "udp", p.gw, p.base + 1, ""},
		})
	})
}
