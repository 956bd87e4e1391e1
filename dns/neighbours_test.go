package dns_test

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ocinet/ocinet/dns"
	"github.com/ocinet/ocinet/hosts"
)

// A container on several networks asks the responder of its first one and
// resolves its peers on every one of its networks, as with docker's DNS:
// the network's own names first, then its other networks' in the order of
// its record. A container on the network alone resolves none of the
// others'; nobody resolves a network that none of its peers is on. Joins
// that come later, a new neighbour network among them, are followed.
func TestOtherNetworks(t *testing.T) {
	tp := newTopo(t)
	// 10.99.0.2 (client4, fd99::2) asks as "both"; 10.99.0.3 as "front".
	in, err := handle(t, tp.in).LinkByName("dnst-in1")
	if err != nil {
		t.Fatal(err)
	}
	front4 := netip.MustParseAddr("10.99.0.3")
	if err := handle(t, tp.in).AddrAdd(in, &netlink.Addr{IPNet: &net.IPNet{IP: front4.AsSlice(), Mask: net.CIDRMask(24, 32)}, Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	s := newStore(t, state, "default")
	on := func(r hosts.Record, network string, ips ...string) hosts.Record {
		n := hosts.Network{Name: network}
		for _, a := range ips {
			n.IPs = append(n.IPs, netip.MustParseAddr(a))
		}
		r.Networks = append(r.Networks, n)
		return r
	}
	join(t, s, on(on(rec("both", client4.String(), client6.String()), "backnet", "10.97.0.2"), "latenet", "10.95.0.2"))
	join(t, s, rec("front", front4.String()))
	join(t, s, on(hosts.Record{ID: "back1", Name: "back1", Aliases: []string{"db"}}, "backnet", "10.97.0.21"))
	// On testnet too, with another address there: its testnet one wins.
	join(t, s, on(on(hosts.Record{ID: "dual", Name: "dual"}, "backnet", "10.97.0.30"), "testnet", "10.99.0.30"))
	join(t, newStore(t, state, "other"), on(hosts.Record{ID: "far1", Name: "far1"}, "farnet", "10.96.0.22"))
	join(t, s, on(hosts.Record{ID: "late1", Name: "late1"}, "latenet", "10.95.0.21"))
	serve(t, tp, dns.Config{StateDir: state, Upstreams: []netip.AddrPort{upstream(t, 0)}})

	tests := []struct {
		name  string
		from  netip.Addr
		q     *mdns.Msg
		rcode int
		want  []string
	}{
		{"peer on another network", client4, question("back1.", mdns.TypeA), mdns.RcodeSuccess, []string{"10.97.0.21"}},
		{"over IPv6", client6, question("back1.", mdns.TypeA), mdns.RcodeSuccess, []string{"10.97.0.21"}},
		{"alias on another network", client4, question("db.", mdns.TypeA), mdns.RcodeSuccess, []string{"10.97.0.21"}},
		{"name and the other network", client4, question("back1.backnet.", mdns.TypeA), mdns.RcodeSuccess, []string{"10.97.0.21"}},
		{"own network first", client4, question("dual.", mdns.TypeA), mdns.RcodeSuccess, []string{"10.99.0.30"}},
		{"the other network when named", client4, question("dual.backnet.", mdns.TypeA), mdns.RcodeSuccess, []string{"10.97.0.30"}},
		{"asker's own name on another network", client4, question("both.backnet.", mdns.TypeA), mdns.RcodeSuccess, []string{"10.97.0.2"}},
		{"third network of the asker", client4, question("late1.", mdns.TypeA), mdns.RcodeSuccess, []string{"10.95.0.21"}},
		{"PTR on another network", client4, question("21.0.97.10.in-addr.arpa.", mdns.TypePTR), mdns.RcodeSuccess, []string{"back1.", "db."}},
		{"network of none of the asker's", client4, question("far1.", mdns.TypeA), mdns.RcodeNameError, nil},
		{"asker on the network alone", front4, question("back1.", mdns.TypeA), mdns.RcodeNameError, nil},
		{"asker on the network alone, name and network", front4, question("back1.backnet.", mdns.TypeA), mdns.RcodeNameError, nil},
		{"asker on the network alone, PTR", front4, question("21.0.97.10.in-addr.arpa.", mdns.TypePTR), mdns.RcodeNameError, nil},
		{"asker on the network alone, own names", front4, question("dual.", mdns.TypeA), mdns.RcodeSuccess, []string{"10.99.0.30"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := queryFrom(t, tp, tt.from, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			checkAnswer(t, resp, tt.rcode, tt.want)
		})
	}

	resolves := func(from netip.Addr, name, want string) func() bool {
		return func() bool {
			resp, err := queryFrom(t, tp, from, question(name, mdns.TypeA))
			return err == nil && slices.Equal(answerAddrs(resp), []string{want})
		}
	}
	join(t, s, on(hosts.Record{ID: "back2", Name: "back2"}, "backnet", "10.97.0.22"))
	eventually(t, "a peer that joins the other network later", resolves(client4, "back2.", "10.97.0.22"))
	// front joins a network that already has a container: that network is
	// read from the stores when front's record brings it.
	join(t, s, on(hosts.Record{ID: "far2", Name: "far2"}, "farnet", "10.96.0.23"))
	join(t, s, on(rec("front", front4.String()), "farnet", "10.96.0.3"))
	eventually(t, "the peers of a network the asker joined later", resolves(front4, "far1.", "10.96.0.22"))
	eventually(t, "the same, in the asker's namespace", resolves(front4, "far2.", "10.96.0.23"))
	if resp, err := queryFrom(t, tp, client4, question("far1.", mdns.TypeA)); err != nil || resp.Rcode != mdns.RcodeNameError {
		t.Errorf("far1 from both, which is not on farnet: %v %v", resp, err)
	}
}

// queryFrom sends q over UDP from address from of the topology's inside
// namespace to the responder on the IPv4 gateway (the IPv6 one for an
// IPv6 address).
func queryFrom(t testing.TB, tp *topo, from netip.Addr, q *mdns.Msg) (*mdns.Msg, error) {
	t.Helper()
	server := gw4
	if from.Is6() {
		server = gw6
	}
	var resp *mdns.Msg
	err := tp.in.Do(func() error {
		c := &mdns.Client{Net: "udp", Timeout: 3 * time.Second,
			Dialer: &net.Dialer{LocalAddr: net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0))}}
		var err error
		resp, _, err = c.Exchange(q, netip.AddrPortFrom(server, 53).String())
		return err
	})
	return resp, err
}
