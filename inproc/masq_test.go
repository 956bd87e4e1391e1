package inproc_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
)

// TestMasquerade sends UDP from containers on an ipMasq network made in
// process: to an address outside the network (a namespace of the test's
// own behind a veth, standing in for the uplink) it arrives from the
// host's address on that link; to another container of the network it
// arrives from the sender's own address. All traffic stays inside
// namespaces the test made.
func TestMasquerade(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	e := newEnv(t)
	list := bridgeList(t, "inp-masq", "inpmasq0", "10.216.80.0/24", t.TempDir(), "")
	e.forget(list.Bytes, "inpmasq0")

	outside := outsideNS(t, "inpout0", []*net.IPNet{
		{IP: net.IPv4(192, 168, 250, 1), Mask: net.CIDRMask(24, 32)},
	}, []*net.IPNet{
		{IP: net.IPv4(192, 168, 250, 2), Mask: net.CIDRMask(24, 32)},
	})

	// Two containers on the network.
	var paths []string
	var addrs []net.IP
	for _, id := range []string{"masq-a", "masq-b"} {
		path := newNS(t)
		rt := &libcni.RuntimeConf{ContainerID: id, NetNS: path, IfName: "eth0"}
		r, err := e.cniFor().AddNetworkList(ctx, list, rt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := e.cniFor().DelNetworkList(ctx, list, rt); err != nil {
				t.Errorf("del %s: %v", id, err)
			}
		})
		res, err := types100.NewResultFromResult(r)
		if err != nil {
			t.Fatal(err)
		}
		paths, addrs = append(paths, path), append(addrs, res.IPs[0].Address.IP)
	}

	// The host's own traffic from the gateway address to itself (through
	// lo, as a query to the network's DNS responder goes) keeps its source.
	t.Run("the host to its gateway", func(t *testing.T) {
		gw := net.IPv4(10, 216, 80, 1)
		ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: gw, Port: 9998})
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		c, err := net.DialUDP("udp4", &net.UDPAddr{IP: gw}, &net.UDPAddr{IP: gw, Port: 9998})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("ocinet")); err != nil {
			t.Fatal(err)
		}
		if err := ln.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		_, src, err := ln.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("nothing arrived at %s: %v", gw, err)
		}
		if !src.IP.Equal(gw) {
			t.Errorf("arrived from %s, want %s (masqueraded?)", src.IP, gw)
		}
	})

	for _, c := range []struct {
		name       string
		to         string // namespace of the receiver
		toAddr     net.IP
		wantSource net.IP
	}{
		{"outside the network", outside, net.IPv4(192, 168, 250, 2), net.IPv4(192, 168, 250, 1)},
		{"inside the network", paths[1], addrs[1], addrs[0]},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := receiveFrom(t, c.to, paths[0], c.toAddr)
			if !src.Equal(c.wantSource) {
				t.Errorf("arrived from %s, want %s", src, c.wantSource)
			}
		})
	}
}

// outsideNS makes a namespace behind a veth pair (host end called hostName,
// with hostAddrs; the namespace's end eth0, with nsAddrs; no duplicate
// address detection) and returns its path.
func outsideNS(t *testing.T, hostName string, hostAddrs, nsAddrs []*net.IPNet) string {
	t.Helper()
	outside := newNS(t)
	ons, err := netns.Open(outside)
	if err != nil {
		t.Fatal(err)
	}
	defer ons.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = hostName
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ons.Fd()))}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netlinkDel(hostName) })
	host, err := netlink.LinkByName(hostName)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range hostAddrs {
		if err := netlink.AddrAdd(host, &netlink.Addr{IPNet: a, Flags: unix.IFA_F_NODAD}); err != nil {
			t.Fatal(err)
		}
	}
	if err := netlink.LinkSetUp(host); err != nil {
		t.Fatal(err)
	}
	h := handleIn(t, outside)
	defer h.Close()
	for _, name := range []string{"eth0", "lo"} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if name == "eth0" {
			for _, a := range nsAddrs {
				if err := h.AddrAdd(l, &netlink.Addr{IPNet: a, Flags: unix.IFA_F_NODAD}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	return outside
}

// receiveFrom listens on UDP port 9999 in the namespace at to, sends one
// datagram to addr from the namespace at from, and returns the source
// address it arrived from (the test fails when none came within 3 s).
func receiveFrom(t *testing.T, to, from string, addr net.IP) net.IP {
	t.Helper()
	var conn net.PacketConn
	network, any := "udp4", "0.0.0.0:9999"
	if addr.To4() == nil {
		network, any = "udp6", "[::]:9999"
	}
	inNS(t, to, func() (err error) { conn, err = net.ListenPacket(network, any); return err })
	defer conn.Close()
	inNS(t, from, func() error {
		c, err := net.DialUDP(network, nil, &net.UDPAddr{IP: addr, Port: 9999})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("ocinet"))
		return err
	})
	if err := conn.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_, src, err := conn.ReadFrom(buf)
	if err != nil {
		t.Fatalf("nothing arrived at %s: %v", addr, err)
	}
	return src.(*net.UDPAddr).IP
}

// inNS runs fn on a thread inside the namespace at path; sockets it opens
// belong to that namespace.
func inNS(t *testing.T, path string, fn func() error) {
	t.Helper()
	ns, err := netns.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := ns.Do(fn); err != nil {
		t.Fatal(err)
	}
}

// TestMasquerade6: the same over IPv6 on a dual-stack network.
func TestMasquerade6(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	e := newEnv(t)
	b := `{"cniVersion":"1.0.0","name":"inp-masq6","plugins":[{"type":"bridge","bridge":"inpmasq6","isGateway":true,"ipMasq":true,"hairpinMode":true,
		"ipam":{"type":"host-local","dataDir":"` + t.TempDir() + `","ranges":[[{"subnet":"10.216.81.0/24"}],[{"subnet":"fd00:216:81::/64"}]],
		"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]}}]}`
	list, err := libcni.ConfListFromBytes([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	e.forget(list.Bytes, "inpmasq6")
	outside := outsideNS(t, "inpout6", []*net.IPNet{
		{IP: net.ParseIP("fd00:250::1"), Mask: net.CIDRMask(64, 128)},
	}, []*net.IPNet{
		{IP: net.ParseIP("fd00:250::2"), Mask: net.CIDRMask(64, 128)},
	})
	path := newNS(t)
	rt := &libcni.RuntimeConf{ContainerID: "masq6", NetNS: path, IfName: "eth0"}
	if _, err := e.cniFor().AddNetworkList(ctx, list, rt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.cniFor().DelNetworkList(ctx, list, rt); err != nil {
			t.Errorf("del: %v", err)
		}
	})
	if src := receiveFrom(t, outside, path, net.ParseIP("fd00:250::2")); !src.Equal(net.ParseIP("fd00:250::1")) {
		t.Errorf("arrived from %s, want fd00:250::1", src)
	}
}
