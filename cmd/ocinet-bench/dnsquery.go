package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ocinet/ocinet/dns"
	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/netns"
)

// dnsSection: queries for a container's name from a namespace inside a
// network of 100 containers, to the responder of package dns, against a
// plain miekg/dns server with one fixed answer on the same address as the
// baseline, interleaved. Both run in this process, in a namespace of the
// run that stands for the host; a veth pair joins it to the client's.
// Rows: one query's latency, and the time of a burst of queries from 4
// clients at once (each waiting for its answer), whose rate is in the note.
func (b *bench) dnsSection() error {
	srvPath, rmSrv, err := b.newNS("dns-host")
	if err != nil {
		return err
	}
	defer rmSrv()
	cliPath, rmCli, err := b.newNS("dns-client")
	if err != nil {
		return err
	}
	defer rmCli()
	srvNS, err := netns.Open(srvPath)
	if err != nil {
		return err
	}
	defer srvNS.Close()
	cliNS, err := netns.Open(cliPath)
	if err != nil {
		return err
	}
	defer cliNS.Close()
	if err := benchVeth(srvNS, cliNS); err != nil {
		return fmt.Errorf("veth between the namespaces: %w", err)
	}
	state := filepath.Join(b.work, "dns-state")
	store, err := hosts.Open(filepath.Join(state, "hosts", "default"))
	if err != nil {
		return err
	}
	for i := range 100 {
		id := "peer-" + strconv.Itoa(i)
		if i == 0 {
			id = "srv"
		}
		r := hosts.Record{ID: id, Name: id, Networks: []hosts.Network{{Name: "bench", IPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 89, 0, byte(10 + i)})}}}}
		if err := store.Prepare(id); err != nil {
			return err
		}
		if err := store.Join(r); err != nil {
			return err
		}
	}
	var srv *dns.Server
	var base *mdns.Server
	if err := srvNS.Do(func() error {
		var err error
		srv, err = dns.NewServer(dns.Config{Network: "bench", StateDir: state,
			Listen: []netip.Addr{netip.MustParseAddr("10.89.0.1")}, Subnets: []netip.Prefix{netip.MustParsePrefix("10.89.0.0/24")}})
		if err != nil {
			return err
		}
		pc, err := net.ListenPacket("udp", "10.89.0.1:5300")
		if err != nil {
			srv.Close()
			return err
		}
		base = &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
			m := new(mdns.Msg)
			m.SetReply(r)
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 5}, A: net.IPv4(10, 89, 0, 10)})
			_ = w.WriteMsg(m)
		})}
		return nil
	}); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(b.ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	go func() { _ = base.ActivateAndServe() }()
	defer func() {
		cancel()
		<-served
		_ = base.Shutdown()
	}()

	const clients = 4
	dial := func(addr string) ([]*mdns.Conn, error) {
		var conns []*mdns.Conn
		err := cliNS.Do(func() error {
			for range clients {
				c, err := net.Dial("udp", addr)
				if err != nil {
					return err
				}
				conns = append(conns, &mdns.Conn{Conn: c})
			}
			return nil
		})
		return conns, err
	}
	ours, err := dial("10.89.0.1:53")
	if err != nil {
		return err
	}
	plain, err := dial("10.89.0.1:5300")
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range append(ours, plain...) {
			c.Close()
		}
	}()
	ask := func(c *mdns.Conn) (time.Duration, error) {
		q := new(mdns.Msg)
		q.SetQuestion("srv.", mdns.TypeA)
		t0 := time.Now()
		_ = c.SetDeadline(t0.Add(time.Second))
		if err := c.WriteMsg(q); err != nil {
			return 0, err
		}
		r, err := c.ReadMsg()
		if err != nil {
			return 0, err
		}
		if len(r.Answer) != 1 {
			return 0, fmt.Errorf("answer for srv.: %v", r)
		}
		return time.Since(t0), nil
	}
	// Warm up both, then one query at a time.
	for range 100 {
		if _, err := ask(ours[0]); err != nil {
			return fmt.Errorf("responder: %w", err)
		}
		if _, err := ask(plain[0]); err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
	}
	one, oneBase, err := interleave(100*b.fast(), b.stopped,
		func(int) (time.Duration, error) { return ask(ours[0]) },
		func(int) (time.Duration, error) { return ask(plain[0]) })
	if err != nil {
		return err
	}
	const perClient = 250
	burst := func(conns []*mdns.Conn) (time.Duration, error) {
		var wg sync.WaitGroup
		errs := make(chan error, len(conns))
		t0 := time.Now()
		for _, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range perClient {
					if _, err := ask(c); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		return time.Since(t0), <-errs
	}
	bursts, burstsBase, err := interleave(b.fast(), b.stopped,
		func(int) (time.Duration, error) { return burst(ours) },
		func(int) (time.Duration, error) { return burst(plain) })
	if err != nil {
		return err
	}
	qps := func(d time.Duration) float64 { return float64(clients*perClient) / d.Seconds() }
	b.report.add(
		newRow("dns", "DNS query from inside the network", one).againstPaired("plain miekg/dns server", one, oneBase).
			note("p50 goal 1 ms").field("p50_us", one.median().Microseconds()),
		newRow("dns", fmt.Sprintf("%d DNS queries from %d clients", clients*perClient, clients), bursts).againstPaired("plain miekg/dns server", bursts, burstsBase).
			note("%.0f queries/s (baseline %.0f); goal >= 20000", qps(bursts.median()), qps(burstsBase.median())).
			field("qps", qps(bursts.median())).field("base_qps", qps(burstsBase.median())))
	return nil
}

// benchVeth joins the two namespaces with a veth pair: 10.89.0.1/24 in
// host, 10.89.0.2/24 in client, both up, and loopback up in host.
func benchVeth(host, client *netns.NetNS) error {
	hh, err := netlink.NewHandleAt(vnetns.NsHandle(host.Fd()))
	if err != nil {
		return err
	}
	defer hh.Close()
	ch, err := netlink.NewHandleAt(vnetns.NsHandle(client.Fd()))
	if err != nil {
		return err
	}
	defer ch.Close()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "dnsb0"}, PeerName: "dnsb1", PeerNamespace: netlink.NsFd(client.Fd())}
	if err := hh.LinkAdd(v); err != nil {
		return err
	}
	for _, end := range []struct {
		h          *netlink.Handle
		name, addr string
	}{{hh, "dnsb0", "10.89.0.1"}, {ch, "dnsb1", "10.89.0.2"}, {hh, "lo", ""}} {
		l, err := end.h.LinkByName(end.name)
		if err != nil {
			return err
		}
		if end.addr != "" {
			a := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(end.addr), Mask: net.CIDRMask(24, 32)}, Flags: unix.IFA_F_NODAD}
			if err := end.h.AddrAdd(l, a); err != nil {
				return err
			}
		}
		if err := end.h.LinkSetUp(l); err != nil {
			return err
		}
	}
	return nil
}
