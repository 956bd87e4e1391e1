package e2e

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/ocinet/ocinet/dns"
)

// testUpstream is the upstream server of the responders in these tests:
// an address of the host's loopback, so that no query leaves the machine.
const testUpstream = "127.0.0.153"

// dnsUpstream starts a DNS server on testUpstream:53 that answers
// ext.example. with 192.0.2.10 and NXDOMAIN for anything else, and makes it
// the responders' upstream (dns/resolv.conf under the state root).
func (e *env) dnsUpstream() {
	e.t.Helper()
	pc, err := net.ListenPacket("udp", testUpstream+":53")
	if err != nil {
		e.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", testUpstream+":53")
	if err != nil {
		pc.Close()
		e.t.Fatal(err)
	}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		if len(r.Question) == 1 && r.Question[0].Name == "ext.example." && r.Question[0].Qtype == mdns.TypeA {
			m.SetReply(r)
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: "ext.example.", Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 10)})
		} else if len(r.Question) == 1 && r.Question[0].Name == "ext.example." {
			m.SetReply(r)
		} else {
			m.SetRcode(r, mdns.RcodeNameError)
		}
		_ = w.WriteMsg(m)
	})
	for _, s := range []*mdns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		go func() { _ = s.ActivateAndServe() }()
		e.t.Cleanup(func() { _ = s.Shutdown() })
	}
	if err := os.MkdirAll(dns.Dir(e.state), 0o700); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dns.Dir(e.state), "resolv.conf"), []byte("nameserver "+testUpstream+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// in runs cmd in a throwaway container on network and returns its output.
func (e *env) in(network, name string, cmd ...string) (string, error) {
	e.t.Helper()
	out, errOut, err := e.ocictl(append([]string{"run", "--rm", "--network", network, "--name", name, "--rootfs", e.rootfs, "--"}, cmd...)...)
	return out + errOut, err
}

func (e *env) ip(name string) string {
	e.t.Helper()
	return e.attachment(name).Interfaces[0].IPs[0].Addr().String()
}

func (e *env) gateway(network string) netip.Addr {
	e.t.Helper()
	mgr, err := e.hookConfig().Manager()
	if err != nil {
		e.t.Fatal(err)
	}
	n, err := mgr.Network(network)
	if err != nil {
		e.t.Fatal(err)
	}
	return n.Gateways[0]
}

// TestDNS: containers resolve each other, their aliases and their addresses
// by DNS on a network in each hosts mode; other names are forwarded; a
// container on another network is refused; the responder comes back after
// SIGKILL and is gone, with its pid file and sockets, once its linger after
// the last container is over.
func TestDNS(t *testing.T) {
	e := newEnv(t, "")
	e.dnsUpstream()
	e.network("dnsfiles", "--subnet", "10.213.81.0/24")
	e.network("dnsonly", "--subnet", "10.213.82.0/24", "--hosts-mode", "dns")
	e.network("dnsother", "--subnet", "10.213.83.0/24")
	for _, network := range []string{"dnsfiles", "dnsonly"} {
		t.Run(network, func(t *testing.T) {
			e := *e
			e.t = t
			srv, w1, w2 := network+"-srv", network+"-w1", network+"-w2"
			e.run(srv, append([]string{"--network", network}, e.httpd()...)...)
			e.run(w1, append([]string{"--network", network, "--network-alias", "web"}, e.httpd()...)...)
			e.run(w2, append([]string{"--network", network, "--network-alias", "web"}, e.httpd()...)...)
			gw := e.gateway(network).String()

			out, err := e.in(network, "q-resolv", "/bin/cat", "/etc/resolv.conf")
			if err != nil || !strings.HasPrefix(strings.SplitN(out, "nameserver ", 2)[1], gw+"\n") {
				t.Errorf("resolv.conf does not name the gateway %s first (%v):\n%s", gw, err, out)
			}
			if out := e.hostsFile(srv); network == "dnsonly" && strings.Contains(out, w1) {
				t.Errorf("hosts mode dns: %s's /etc/hosts lists a peer:\n%s", srv, out)
			}
			out, err = e.in(network, "q-name", "/bin/nslookup", srv)
			if err != nil || !strings.Contains(out, e.ip(srv)) {
				t.Errorf("nslookup %s (%v):\n%s", srv, err, out)
			}
			out, err = e.in(network, "q-fqdn", "/bin/nslookup", srv+"."+network)
			if err != nil || !strings.Contains(out, e.ip(srv)) {
				t.Errorf("nslookup %s.%s, the name followed by the network's (%v):\n%s", srv, network, err, out)
			}
			out, err = e.in(network, "q-alias", "/bin/nslookup", "web")
			if err != nil || !strings.Contains(out, e.ip(w1)) || !strings.Contains(out, e.ip(w2)) {
				t.Errorf("nslookup web, the alias of %s (%s) and %s (%s) (%v):\n%s", w1, e.ip(w1), w2, e.ip(w2), err, out)
			}
			out, err = e.in(network, "q-ptr", "/bin/nslookup", e.ip(srv))
			if err != nil || !strings.Contains(out, srv) {
				t.Errorf("nslookup %s (PTR) (%v):\n%s", e.ip(srv), err, out)
			}
			out, err = e.in(network, "q-ext", "/bin/nslookup", "ext.example")
			if err != nil || !strings.Contains(out, "192.0.2.10") {
				t.Errorf("nslookup ext.example, forwarded to the test upstream (%v):\n%s", err, out)
			}
			out, err = e.in(network, "q-wget", "/bin/wget", "-qO-", "http://"+srv+"/")
			if err != nil || out != page {
				t.Errorf("wget http://%s/ (%v): %q", srv, err, out)
			}

			// From another network: refused, and no way to the page by name.
			out, err = e.in("dnsother", "q-other", "/bin/nslookup", srv, gw)
			if err == nil || strings.Contains(out, e.ip(srv)) {
				t.Errorf("nslookup %s %s from another network answered (%v):\n%s", srv, gw, err, out)
			}
			out, err = e.in("dnsother", "q-other-wget", "/bin/timeout", "5", "/bin/wget", "-qO-", "http://"+srv+"/")
			if err == nil || out == page {
				t.Errorf("wget http://%s/ from another network: %q (%v)", srv, out, err)
			}

			// SIGKILL loses nothing: the next attach starts it again.
			p := responder(t, e.state, network)
			if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 100 && p.Alive(); i++ {
				time.Sleep(10 * time.Millisecond)
			}
			out, err = e.in(network, "q-after-kill", "/bin/nslookup", srv)
			if err != nil || !strings.Contains(out, e.ip(srv)) {
				t.Errorf("nslookup %s after the responder was killed (%v):\n%s", srv, err, out)
			}
			if p2 := responder(t, e.state, network); p2.PID == p.PID {
				t.Errorf("responder pid %d after SIGKILL, the killed one's", p2.PID)
			}

			// The last container gone, and the linger over: no process, no
			// pid file, no socket.
			p = responder(t, e.state, network)
			e.mustOcictl("rm", "-f", srv, w1, w2)
			waitGone(t, p, 5*time.Second)
			if procs, _ := dns.Processes(e.state); slices.ContainsFunc(procs, func(q dns.Process) bool { return q.Network == network }) {
				t.Errorf("pid file of %s left: %+v", network, procs)
			}
			for _, proto := range []string{"udp", "tcp"} {
				var c interface{ Close() error }
				var err error
				if proto == "udp" {
					c, err = net.ListenPacket("udp", gw+":53")
				} else {
					c, err = net.Listen("tcp", gw+":53")
				}
				if err != nil {
					t.Errorf("%s:53/%s still taken after the last container: %v", gw, proto, err)
					continue
				}
				c.Close()
			}
		})
	}
}

func responder(t *testing.T, state, network string) dns.Process {
	t.Helper()
	procs, err := dns.Processes(state)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if p.Network == network && p.Alive() {
			return p
		}
	}
	t.Fatalf("no responder runs for %s: %+v", network, procs)
	return dns.Process{}
}

// waitGone fails the test unless the responder p has exited within d.
func waitGone(t *testing.T, p dns.Process, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); p.Alive(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("responder %d of %s still runs %v after the last container", p.PID, p.Network, d)
			return
		}
	}
}

// TestDNSLinger: with ocictl's default linger (2 s), the responder of a
// network outlives its last container, and the network's next container,
// started within the linger, is served by the same process; after the
// last container for good, it is gone with its pid file and port once the
// linger is over.
func TestDNSLinger(t *testing.T) {
	e := newEnv(t, "")
	e.dnsLinger = ""
	e.network("dnslinger", "--subnet", "10.213.86.0/24")
	e.run("linger-1", append([]string{"--network", "dnslinger"}, e.httpd()...)...)
	p := responder(t, e.state, "dnslinger")
	e.mustOcictl("rm", "-f", "linger-1")
	if !p.Alive() {
		t.Fatalf("responder %d gone right after the last container; want it to linger", p.PID)
	}
	e.run("linger-2", append([]string{"--network", "dnslinger"}, e.httpd()...)...)
	if p2 := responder(t, e.state, "dnslinger"); p2.PID != p.PID {
		t.Errorf("the next container started responder %d; want the lingering %d", p2.PID, p.PID)
	}
	out, err := e.in("dnslinger", "q-linger", "/bin/nslookup", "linger-2")
	if err != nil || !strings.Contains(out, e.ip("linger-2")) {
		t.Errorf("nslookup linger-2 through the lingering responder (%v):\n%s", err, out)
	}
	e.mustOcictl("rm", "-f", "linger-2")
	waitGone(t, p, 10*time.Second)
	if procs, _ := dns.Processes(e.state); len(procs) != 0 {
		t.Errorf("pid files after the linger: %+v", procs)
	}
	gw := e.gateway("dnslinger").String()
	for _, listen := range []func() (interface{ Close() error }, error){
		func() (interface{ Close() error }, error) { return net.ListenPacket("udp", gw+":53") },
		func() (interface{ Close() error }, error) { return net.Listen("tcp", gw+":53") },
	} {
		c, err := listen()
		if err != nil {
			t.Errorf("%s:53 still taken after the linger: %v", gw, err)
			continue
		}
		c.Close()
	}
}

// noUpstream points the responders of state at a loopback address where
// nothing listens, so that no test's container sends a query beyond the
// machine; dnsUpstream replaces it with a server.
func noUpstream(t *testing.T, state string) {
	t.Helper()
	if err := os.MkdirAll(dns.Dir(state), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dns.Dir(state), "resolv.conf"), []byte("nameserver 127.0.0.154\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDNSPortTaken: with port 53 of the gateway taken by another program,
// a container on a network in hosts mode "hosts" still starts and finds
// its peers through /etc/hosts (resolv.conf does not name the gateway); on
// a network in hosts mode "dns" the start is refused with the reason and
// nothing is left.
func TestDNSPortTaken(t *testing.T) {
	e := newEnv(t, "")
	e.network("takenfiles", "--subnet", "10.213.84.0/24")
	e.network("takendns", "--subnet", "10.213.85.0/24", "--hosts-mode", "dns")
	// The bridges do not exist yet: bind with IP_FREEBIND, as a program
	// that starts before the network's first container would.
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_IP, syscall.IP_FREEBIND, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	for _, a := range []string{"10.213.84.1:53", "10.213.85.1:53"} {
		c, err := lc.ListenPacket(t.Context(), "udp", a)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	e.run("tf-srv", append([]string{"--network", "takenfiles"}, e.httpd()...)...)
	out, err := e.in("takenfiles", "tf-client", "/bin/sh", "-c", "cat /etc/resolv.conf; wget -qO- http://tf-srv/")
	if err != nil || strings.Contains(out, "nameserver 10.213.84.1") || !strings.Contains(out, page) {
		t.Errorf("hosts mode, port taken: want no gateway in resolv.conf and the page by name (%v):\n%s", err, out)
	}
	if procs, _ := dns.Processes(e.state); len(procs) != 0 {
		t.Errorf("responders with port 53 taken: %+v", procs)
	}
	out, errOut, err := e.ocictl("run", "--rm", "--network", "takendns", "--name", "td", "--rootfs", e.rootfs, "--", "/bin/true")
	if err == nil {
		t.Errorf("hosts mode dns, port taken: the container started: %s", out)
	}
	if !strings.Contains(errOut, "address already in use") {
		t.Errorf("hosts mode dns, port taken: the error does not say why:\n%s", errOut)
	}
}

// TestDNSOtherNetworks: a container on two networks resolves, through the
// responder its resolv.conf names first, the peers of both, as with
// docker's DNS; a container on the first network alone does not resolve
// the second's. Both networks resolve by DNS only, so that /etc/hosts
// cannot answer instead.
func TestDNSOtherNetworks(t *testing.T) {
	e := newEnv(t, "")
	e.dnsUpstream()
	e.network("dnsfront", "--subnet", "10.213.87.0/24", "--hosts-mode", "dns")
	e.network("dnsback", "--subnet", "10.213.88.0/24", "--hosts-mode", "dns")
	e.run("back-srv", append([]string{"--network", "dnsback"}, e.httpd()...)...)
	defer e.mustOcictl("rm", "-f", "back-srv")
	run := func(name string, networks ...string) (string, error) {
		args := []string{"run", "--rm", "--name", name, "--rootfs", e.rootfs}
		for _, n := range networks {
			args = append(args, "--network", n)
		}
		out, errOut, err := e.ocictl(append(args, "--", "/bin/nslookup", "back-srv")...)
		return out + errOut, err
	}
	out, err := run("q-two", "dnsfront", "dnsback")
	if err != nil || !strings.Contains(out, e.ip("back-srv")) {
		t.Errorf("nslookup back-srv from a container on dnsfront and dnsback (%v):\n%s", err, out)
	}
	out, err = run("q-front", "dnsfront")
	if err == nil || strings.Contains(out, e.ip("back-srv")) {
		t.Errorf("nslookup back-srv from a container on dnsfront alone answered (%v):\n%s", err, out)
	}
}
