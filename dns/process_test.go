package dns_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/dns"
	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/ocinettest"
)

func responderConfig(state string) dns.Config {
	return dns.Config{Network: "testnet", StateDir: state, Listen: []netip.Addr{gw4, gw6}, Subnets: []netip.Prefix{subnet4, subnet6}}
}

// start runs dns.Start inside the topology's host namespace, so that the
// process is born there.
func start(t *testing.T, tp *topo, c dns.Config) (*dns.Process, error) {
	t.Helper()
	var p *dns.Process
	err := tp.host.Do(func() error {
		var err error
		p, err = dns.Start(context.Background(), c)
		return err
	})
	return p, err
}

// resolvesSrv reports whether srv. resolves to 10.99.0.10 through the
// responder of the topology's network.
func resolvesSrv(t *testing.T, tp *topo) bool {
	resp, err := query(t, tp.in, "udp", "10.99.0.1:53", question("srv.", mdns.TypeA))
	return err == nil && slices.Equal(answerAddrs(resp), []string{"10.99.0.10"})
}

// withSrv makes a topology and a state root whose store has srv on the
// network, removed when the test ends, with a leak check.
func withSrv(t *testing.T) (*topo, string, *hosts.Store) {
	tp := newTopo(t)
	state := t.TempDir()
	ocinettest.CheckLeaks(t, ocinettest.LeakConfig{StateDirs: []string{state}})
	store := newStore(t, state, "default")
	join(t, store, rec("srv", "10.99.0.10"))
	t.Cleanup(func() { _ = store.Remove("srv") })
	return tp, state, store
}

func TestProcessLifecycle(t *testing.T) {
	tp, state, _ := withSrv(t)
	resolves := func() bool { return resolvesSrv(t, tp) }
	p, err := start(t, tp, responderConfig(state))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dns.Stop(state, "testnet") })
	if !resolves() {
		t.Fatal("srv does not resolve once Start returned")
	}
	// Detached: a session of its own, nothing of ours on fds 0 to 2.
	if sid, _ := unix.Getsid(p.PID); sid != p.PID {
		t.Errorf("session %d, want its own (%d)", sid, p.PID)
	}
	for fd, want := range map[int]string{0: "/dev/null", 1: "/dev/null", 2: filepath.Join(dns.Dir(state), "testnet.log")} {
		got, _ := os.Readlink("/proc/" + strconv.Itoa(p.PID) + "/fd/" + strconv.Itoa(fd))
		if got != want {
			t.Errorf("fd %d is %q, want %q", fd, got, want)
		}
	}
	if again, err := start(t, tp, responderConfig(state)); err != nil || again.PID != p.PID {
		t.Errorf("a second Start = %+v, %v; want the running pid %d", again, err, p.PID)
	}

	// SIGKILL loses nothing: the next Start brings it back.
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "killed responder gone", func() bool { return !p.Alive() })
	p2, err := start(t, tp, responderConfig(state))
	if err != nil {
		t.Fatal(err)
	}
	if p2.PID == p.PID || !p2.Alive() {
		t.Errorf("restart gave pid %d (alive %v), the killed one was %d", p2.PID, p2.Alive(), p.PID)
	}
	if !resolves() {
		t.Error("srv does not resolve after the restart")
	}

	// A changed configuration replaces the process.
	c := responderConfig(state)
	c.Listen = []netip.Addr{gw4}
	p3, err := start(t, tp, c)
	if err != nil {
		t.Fatal(err)
	}
	if p3.PID == p2.PID || p2.Alive() {
		t.Errorf("a new configuration kept pid %d", p2.PID)
	}

	if err := dns.Stop(state, "testnet"); err != nil {
		t.Fatal(err)
	}
	if p3.Alive() {
		t.Error("alive after Stop")
	}
	if procs, err := dns.Processes(state); err != nil || len(procs) != 0 {
		t.Errorf("pid files after Stop: %v, %v", procs, err)
	}
	if err := dns.Stop(state, "testnet"); err != nil {
		t.Errorf("a second Stop: %v", err)
	}
	// A pid file whose process is gone and whose pid is now someone
	// else's (this test's) is never signalled.
	stale := dns.Process{PID: os.Getpid(), Start: 1, Network: "testnet"}
	if stale.Alive() {
		t.Error("a pid file with the wrong start time counts as alive")
	}
}

// TestStopFreesPortOfKilled: a responder killed with SIGKILL counts as
// dead as soon as its main thread is a zombie, while its other threads
// still hold its sockets. Stop (as Start, before it starts a new one)
// waits until the whole process is gone: right after it, the port binds.
func TestStopFreesPortOfKilled(t *testing.T) {
	tp := newTopo(t)
	state := t.TempDir()
	ocinettest.CheckLeaks(t, ocinettest.LeakConfig{StateDirs: []string{state}})
	for i := range 5 {
		p, err := start(t, tp, responderConfig(state))
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		eventually(t, "killed responder counted as dead", func() bool { return !p.Alive() })
		if err := dns.Stop(state, "testnet"); err != nil {
			t.Fatal(err)
		}
		if err := tp.host.Do(func() error {
			for _, proto := range []string{"udp", "tcp"} {
				var c io.Closer
				var err error
				if proto == "udp" {
					c, err = net.ListenPacket(proto, "10.99.0.1:53")
				} else {
					c, err = net.Listen(proto, "10.99.0.1:53")
				}
				if err != nil {
					return err
				}
				c.Close()
			}
			return nil
		}); err != nil {
			t.Fatalf("round %d: port 53 right after Stop of the killed responder: %v", i, err)
		}
	}
}

func TestPortTaken(t *testing.T) {
	tp := newTopo(t)
	state := t.TempDir()
	ocinettest.CheckLeaks(t, ocinettest.LeakConfig{StateDirs: []string{state}})
	var taken net.PacketConn
	if err := tp.host.Do(func() error {
		var err error
		taken, err = net.ListenPacket("udp", "10.99.0.1:53")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err := start(t, tp, responderConfig(state))
	if err == nil {
		t.Fatal("Start succeeded with port 53 taken")
	}
	t.Logf("Start: %v", err)
	if procs, _ := dns.Processes(state); len(procs) != 0 {
		t.Errorf("a failed Start left pid files: %v", procs)
	}
}

// Attach on a network in hosts mode falls back on /etc/hosts with a log
// line when port 53 is taken; on a network in dns mode it fails. With the
// port free it starts the responder, names the gateway, and Release stops
// it once the last container left.
func TestAttachAndRelease(t *testing.T) {
	tp := newTopo(t)
	e := ocinettest.NewEnv(t)
	ocinettest.CheckLeaks(t, ocinettest.LeakConfig{StateDirs: []string{e.StateDir}})
	ctx := context.Background()
	// The dns-mode network's gateway, 10.97.0.1, is an address of the
	// host namespace whose port 53 this test holds.
	h := handle(t, tp.host)
	lo, _ := h.LinkByName("lo")
	if err := h.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(10, 97, 0, 1), Mask: net.CIDRMask(32, 32)}}); err != nil {
		t.Fatal(err)
	}
	files, err := e.Manager.CreateNetwork(ctx, ocinet.NetworkConfig{Name: "files", Subnet: subnet4})
	if err != nil {
		t.Fatal(err)
	}
	dnsNet, err := e.Manager.CreateNetwork(ctx, ocinet.NetworkConfig{Name: "dnsonly", Subnet: netip.MustParsePrefix("10.97.0.0/24"),
		DNS: ocinet.DNSOptions{HostsMode: ocinet.HostsModeDNS}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dns.Dir(e.StateDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dns.Dir(e.StateDir), "resolv.conf"), []byte("nameserver 127.0.0.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store := newStore(t, e.StateDir, "test")
	t.Cleanup(func() {
		_ = store.Remove("d1")
		_ = store.Remove("f1")
		_ = dns.Release(e.StateDir)
	})
	member := func(id, network, ip string) hosts.Record {
		r := hosts.Record{ID: id, Name: id, Networks: []hosts.Network{{Name: network, IPs: []netip.Addr{netip.MustParseAddr(ip)}}}}
		if err := dns.Mark(e.Manager, &r); err != nil {
			t.Fatal(err)
		}
		join(t, store, r)
		return r
	}
	attach := func(r hosts.Record, log *slog.Logger) (first []netip.Addr, err error) {
		err = tp.host.Do(func() error {
			var err error
			first, err = dns.Attach(ctx, e.StateDir, e.Manager, r, 0, log)
			return err
		})
		return first, err
	}
	fr := member("f1", files.Name, "10.99.0.10")
	dr := member("d1", dnsNet.Name, "10.97.0.10")
	if !dr.Networks[0].PeersByDNS || fr.Networks[0].PeersByDNS {
		t.Errorf("Mark: PeersByDNS %v on the dns network, %v on the files network", dr.Networks[0].PeersByDNS, fr.Networks[0].PeersByDNS)
	}

	var taken []net.PacketConn
	for _, a := range []string{"10.99.0.1:53", "10.97.0.1:53"} {
		if err := tp.host.Do(func() error {
			c, err := net.ListenPacket("udp", a)
			taken = append(taken, c)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	first, err := attach(fr, log)
	if err != nil || len(first) != 0 {
		t.Errorf("hosts mode, port taken: Attach = %v, %v; want no server and no error", first, err)
	}
	if !bytes.Contains(logBuf.Bytes(), []byte("level=WARN")) {
		t.Errorf("hosts mode, port taken: no warning logged: %q", logBuf.String())
	}
	if _, err := attach(dr, nil); err == nil {
		t.Error("dns mode, port taken: Attach succeeded")
	}
	if procs, _ := dns.Processes(e.StateDir); len(procs) != 0 {
		t.Errorf("failed starts left pid files: %v", procs)
	}
	for _, c := range taken {
		c.Close()
	}

	first, err = attach(fr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(first, []netip.Addr{gw4}) {
		t.Errorf("servers to name first: %v, want [%s]", first, gw4)
	}
	procs, _ := dns.Processes(e.StateDir)
	if len(procs) != 1 || !procs[0].Alive() {
		t.Fatalf("responders after Attach: %+v", procs)
	}
	if err := dns.Release(e.StateDir); err != nil {
		t.Fatal(err)
	}
	if !procs[0].Alive() {
		t.Error("Release stopped a responder whose network has a container")
	}
	// Repair starts a killed responder again.
	if err := syscall.Kill(procs[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "killed responder gone", func() bool { return !procs[0].Alive() })
	if err := tp.host.Do(func() error { return dns.Repair(ctx, e.StateDir, e.Manager, 0, nil) }); err != nil {
		t.Fatal(err)
	}
	// Both networks have a container (d1's start failed above, but it is
	// still in the store, and port 53 of its gateway is free now).
	procs, _ = dns.Processes(e.StateDir)
	if len(procs) != 2 || !procs[0].Alive() || !procs[1].Alive() {
		t.Fatalf("responders after Repair: %+v", procs)
	}
	if err := store.Leave("d1"); err != nil {
		t.Fatal(err)
	}
	if err := store.Leave("f1"); err != nil {
		t.Fatal(err)
	}
	if err := dns.Release(e.StateDir); err != nil {
		t.Fatal(err)
	}
	if procs, _ := dns.Processes(e.StateDir); len(procs) != 0 {
		t.Errorf("pid files after Release: %v", procs)
	}
	// Told to stop, they exit on their own and take their stopping files.
	for _, p := range procs {
		eventually(t, "the responder of "+p.Network+", a network without containers, gone after Release", func() bool { return !p.Alive() })
	}
	eventually(t, "no stopping file after the responders exited", func() bool {
		left, _ := filepath.Glob(filepath.Join(dns.Dir(e.StateDir), "*.stopping"))
		return len(left) == 0
	})
}

// TestReleaseThenStart: Release does not wait for the responder to exit; a
// Start of the same network right after waits for it (the port must be
// free) and starts a new one that answers.
func TestReleaseThenStart(t *testing.T) {
	tp := newTopo(t)
	state := t.TempDir()
	ocinettest.CheckLeaks(t, ocinettest.LeakConfig{StateDirs: []string{state}})
	store := newStore(t, state, "default")
	join(t, store, rec("srv", "10.99.0.10"))
	resolves := func() bool { return resolvesSrv(t, tp) }
	old, err := start(t, tp, responderConfig(state))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dns.Stop(state, "testnet") })
	if err := store.Remove("srv"); err != nil {
		t.Fatal(err)
	}
	if err := dns.Release(state); err != nil {
		t.Fatal(err)
	}
	join(t, store, rec("srv", "10.99.0.10"))
	t.Cleanup(func() { _ = store.Remove("srv") })
	p, err := start(t, tp, responderConfig(state))
	if err != nil {
		t.Fatalf("Start right after Release: %v", err)
	}
	if p.PID == old.PID || old.Alive() {
		t.Errorf("Start right after Release gave pid %d; the released one (%d) alive: %v", p.PID, old.PID, old.Alive())
	}
	if !resolves() {
		t.Error("srv does not resolve through the new responder")
	}
	if left, _ := filepath.Glob(filepath.Join(dns.Dir(state), "*.stopping")); len(left) != 0 {
		t.Errorf("stopping files once the new responder runs: %v", left)
	}
}

// TestLinger: a responder with a linger outlives its network's last
// container by that long and no more. Release leaves it running; a
// container that comes within the linger finds the same process, which
// then stays; once the linger passes with no container, it stops on its
// own and leaves nothing (no pid or stopping file, its port free).
// StopUnused stops a lingering one at once.
func TestLinger(t *testing.T) {
	tp, state, store := withSrv(t)
	const linger = time.Second
	c := responderConfig(state)
	c.Linger = linger
	p, err := start(t, tp, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dns.Stop(state, "testnet") })
	if p.Linger != linger {
		t.Errorf("pid file's linger %v, want %v", p.Linger, linger)
	}
	if !resolvesSrv(t, tp) {
		t.Fatal("srv does not resolve once Start returned")
	}

	// The last container leaves, and another comes within the linger.
	if err := store.Remove("srv"); err != nil {
		t.Fatal(err)
	}
	if err := dns.Release(state); err != nil {
		t.Fatal(err)
	}
	if procs, _ := dns.Processes(state); !p.Alive() || len(procs) != 1 {
		t.Fatalf("right after Release: alive %v, pid files %+v; want it lingering", p.Alive(), procs)
	}
	join(t, store, rec("srv", "10.99.0.10"))
	again, err := start(t, tp, c)
	if err != nil || again.PID != p.PID {
		t.Fatalf("Start within the linger = %+v, %v; want the lingering pid %d", again, err, p.PID)
	}
	time.Sleep(2 * linger)
	if !p.Alive() || !resolvesSrv(t, tp) {
		t.Fatalf("with a container again, after twice the linger: alive %v, srv resolves %v", p.Alive(), resolvesSrv(t, tp))
	}

	// The last container leaves for good: it stops on its own.
	if err := store.Remove("srv"); err != nil {
		t.Fatal(err)
	}
	if err := dns.Release(state); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the lingering responder gone on its own", func() bool { return !p.Alive() })
	eventually(t, "no pid or stopping file once it exited", func() bool {
		pids, _ := filepath.Glob(filepath.Join(dns.Dir(state), "*.pid"))
		stopping, _ := filepath.Glob(filepath.Join(dns.Dir(state), "*.stopping"))
		return len(pids)+len(stopping) == 0
	})
	if err := tp.host.Do(func() error {
		c, err := net.ListenPacket("udp", "10.99.0.1:53")
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Errorf("port 53 of the gateway after the linger: %v", err)
	}

	// StopUnused does not wait for the linger.
	c.Linger = time.Hour
	p, err = start(t, tp, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := dns.StopUnused(state); err != nil {
		t.Fatal(err)
	}
	if procs, _ := dns.Processes(state); len(procs) != 0 {
		t.Errorf("pid files after StopUnused: %+v", procs)
	}
	eventually(t, "the responder told to stop by StopUnused gone", func() bool { return !p.Alive() })
}

func TestStartInvalid(t *testing.T) {
	state := t.TempDir()
	for _, c := range []dns.Config{
		{Network: "../x", StateDir: state, Listen: []netip.Addr{gw4}, Subnets: []netip.Prefix{subnet4}},
		{Network: "", StateDir: state, Listen: []netip.Addr{gw4}, Subnets: []netip.Prefix{subnet4}},
		{Network: "n", Listen: []netip.Addr{gw4}, Subnets: []netip.Prefix{subnet4}},
		{Network: "n", StateDir: state, Subnets: []netip.Prefix{subnet4}},
		{Network: "n", StateDir: state, Listen: []netip.Addr{gw4}},
		{Network: "n", StateDir: state, Listen: []netip.Addr{netip.IPv4Unspecified()}, Subnets: []netip.Prefix{subnet4}},
		{Network: "n", StateDir: state, Listen: []netip.Addr{gw4}, Subnets: []netip.Prefix{subnet4}, Port: 70000},
	} {
		if _, err := dns.Start(context.Background(), c); !errors.Is(err, dns.ErrInvalid) {
			t.Errorf("Start(%+v) = %v, want ErrInvalid", c, err)
		}
	}
	if err := dns.Stop(state, "../x"); !errors.Is(err, dns.ErrInvalid) {
		t.Errorf("Stop(../x) = %v, want ErrInvalid", err)
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Errorf("refused calls wrote %v", ents)
	}
}
