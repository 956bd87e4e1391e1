package dns_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ocinet/ocinet/dns"
	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/internal/reexec"
	"github.com/ocinet/ocinet/netns"
	"github.com/ocinet/ocinet/ocinettest"
)

func TestMain(m *testing.M) {
	reexec.Run()
	os.Exit(m.Run())
}

// The test network: the responder's namespace ("host") holds the gateway
// end of two veth pairs, one to a namespace inside the network's subnets
// and one to a namespace outside them, routed through the host. Nothing
// is made in the test process's own namespace.
var (
	gw4      = netip.MustParseAddr("10.99.0.1")
	gw6      = netip.MustParseAddr("fd99::1")
	client4  = netip.MustParseAddr("10.99.0.2")
	client6  = netip.MustParseAddr("fd99::2")
	outside4 = netip.MustParseAddr("10.98.0.2")
	subnet4  = netip.MustParsePrefix("10.99.0.0/24")
	subnet6  = netip.MustParsePrefix("fd99::/64")
)

type topo struct {
	host, in, out *netns.NetNS
}

func newTopo(t testing.TB) *topo {
	t.Helper()
	tp := &topo{host: openNS(t), in: openNS(t), out: openNS(t)}
	h := handle(t, tp.host)
	veth(t, h, "dnst-in0", "dnst-in1", tp.in, []netip.Prefix{netip.PrefixFrom(gw4, 24), netip.PrefixFrom(gw6, 64)},
		[]netip.Prefix{netip.PrefixFrom(client4, 24), netip.PrefixFrom(client6, 64)}, netip.Addr{})
	veth(t, h, "dnst-out0", "dnst-out1", tp.out, []netip.Prefix{netip.MustParsePrefix("10.98.0.1/24")},
		[]netip.Prefix{netip.PrefixFrom(outside4, 24)}, netip.MustParseAddr("10.98.0.1"))
	for _, ns := range []*netns.NetNS{tp.host, tp.in, tp.out} {
		lo, err := handle(t, ns).LinkByName("lo")
		if err != nil {
			t.Fatal(err)
		}
		if err := handle(t, ns).LinkSetUp(lo); err != nil {
			t.Fatal(err)
		}
	}
	return tp
}

func openNS(t testing.TB) *netns.NetNS {
	t.Helper()
	n, err := netns.Open(ocinettest.NetNS(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func handle(t testing.TB, ns *netns.NetNS) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(vnetns.NsHandle(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// veth makes a veth pair in h's namespace, moves the peer into peerNS, gives
// each end its addresses (without duplicate address detection) and the
// peer a default route via gw when gw is valid.
func veth(t testing.TB, h *netlink.Handle, name, peer string, peerNS *netns.NetNS, addrs, peerAddrs []netip.Prefix, gw netip.Addr) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer, PeerNamespace: netlink.NsFd(peerNS.Fd())}
	if err := h.LinkAdd(v); err != nil {
		t.Fatalf("add veth %s: %v", name, err)
	}
	ph := handle(t, peerNS)
	for _, side := range []struct {
		h     *netlink.Handle
		name  string
		addrs []netip.Prefix
	}{{h, name, addrs}, {ph, peer, peerAddrs}} {
		l, err := side.h.LinkByName(side.name)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range side.addrs {
			addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())}, Flags: unix.IFA_F_NODAD}
			if err := side.h.AddrAdd(l, addr); err != nil {
				t.Fatalf("address %s on %s: %v", a, side.name, err)
			}
		}
		if err := side.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	if gw.IsValid() {
		l, _ := ph.LinkByName(peer)
		if err := ph.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
			t.Fatalf("default route in the peer: %v", err)
		}
	}
}

// stateDir returns a state root with the hosts store of namespace ns.
func newStore(t testing.TB, state, ns string) *hosts.Store {
	t.Helper()
	s, err := hosts.Open(filepath.Join(state, "hosts", ns))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func join(t testing.TB, s *hosts.Store, r hosts.Record) {
	t.Helper()
	if err := s.Prepare(r.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Join(r); err != nil {
		t.Fatal(err)
	}
}

func rec(id string, addrs ...string) hosts.Record {
	n := hosts.Network{Name: "testnet", Gateway: gw4}
	for _, a := range addrs {
		n.IPs = append(n.IPs, netip.MustParseAddr(a))
	}
	return hosts.Record{ID: id, Name: id, Networks: []hosts.Network{n}}
}

// upstream starts a DNS server on 127.0.0.1 of the test's own namespace
// (where the responder's goroutines forward from), UDP and TCP on the same
// port, that answers ext.example. with 192.0.2.10 (after delay) and
// NXDOMAIN for every other name.
func upstream(t testing.TB, delay time.Duration) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		if len(r.Question) == 1 && r.Question[0].Name == "ext.example." {
			time.Sleep(delay)
			m.SetReply(r)
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: "ext.example.", Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 10)})
		} else {
			m.SetRcode(r, mdns.RcodeNameError)
		}
		_ = w.WriteMsg(m)
	})
	for _, s := range []*mdns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		go func() { _ = s.ActivateAndServe() }()
		t.Cleanup(func() { _ = s.Shutdown() })
	}
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// serve starts a Server in the topology's host namespace on port 53.
func serve(t testing.TB, tp *topo, c dns.Config, opts ...dns.Option) *dns.Server {
	t.Helper()
	if c.Network == "" {
		c.Network = "testnet"
	}
	if c.Listen == nil {
		c.Listen = []netip.Addr{gw4, gw6}
	}
	if c.Subnets == nil {
		c.Subnets = []netip.Prefix{subnet4, subnet6}
	}
	var srv *dns.Server
	if err := tp.host.Do(func() error {
		var err error
		srv, err = dns.NewServer(c, opts...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv
}

// query sends m from inside ns to server over proto and returns the answer.
func query(t testing.TB, ns *netns.NetNS, proto, server string, m *mdns.Msg) (*mdns.Msg, error) {
	t.Helper()
	var resp *mdns.Msg
	err := ns.Do(func() error {
		c := &mdns.Client{Net: proto, Timeout: 3 * time.Second}
		var err error
		resp, _, err = c.Exchange(m, server)
		return err
	})
	return resp, err
}

func question(name string, qtype uint16) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// answerAddrs returns the addresses in resp's answer section, in order.
func answerAddrs(resp *mdns.Msg) []string {
	var out []string
	for _, rr := range resp.Answer {
		switch rr := rr.(type) {
		case *mdns.A:
			out = append(out, rr.A.String())
		case *mdns.AAAA:
			out = append(out, rr.AAAA.String())
		case *mdns.PTR:
			out = append(out, rr.Ptr)
		}
	}
	return out
}

// eventually retries f every 10ms for at most 3 seconds until it is true.
func eventually(t testing.TB, what string, f func() bool) {
	t.Helper()
	for range 300 {
		if f() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: not after 3s", what)
}

// checkAnswer reports resp's rcode and answers when they are not rcode and
// want.
func checkAnswer(t testing.TB, resp *mdns.Msg, rcode int, want []string) {
	t.Helper()
	if resp.Rcode != rcode {
		t.Errorf("rcode %s, want %s", mdns.RcodeToString[resp.Rcode], mdns.RcodeToString[rcode])
	}
	if diff := cmp.Diff(want, answerAddrs(resp)); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
}
