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
	e := newEnv(t)
	for _, dp := range []struct {
		name, bridge, subnet string
		cni                  *libcni.CNIConfig
		base                 int
		third                byte
	}{
		{"in process", "inppub0", "10.216.90.0/24", e.cniFor(), 18080, 90},
		{"binaries", "inppubb0", "10.216.91.0/24", libcni.NewCNIConfigWithCacheDir([]string{e.plugins}, e.cacheDir, defaultExec()), 19080, 91},
	} {
		t.Run(dp.name, func(t *testing.T) {
			list := defaultChain(t, "inp-pub-"+dp.bridge, dp.bridge, []string{dp.subnet}, t.TempDir(), "", "same-bridge")
			e.forget(list.Bytes, dp.bridge)
			remote, hostAddr, _ := remoteNS(t, dp.bridge+"r", 160+dp.third)
			publishCases(t, dp.cni, list, dp.name == "binaries", remote, hostAddr, net.IPv4(10, 216, dp.third, 1), dp.base)
		})
	}
}

func publishCases(t *testing.T, cni *libcni.CNIConfig, list *libcni.NetworkConfigList, binaries bool, remote string, hostAddr, gw net.IP, base int) {
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
	for _, tc := range []struct {
		name, from, network string
		addr                net.IP
		port                int
		want                string
	}{
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := ask(t, tc.from, tc.network, tc.addr, tc.port)
			if got != tc.want {
				t.Errorf("%s %s:%d answered by %q, want %q", tc.network, tc.addr, tc.port, got, tc.want)
			}
		})
	}
}
