package ocinet_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
	"github.com/ocinet/ocinet/portmap"
)

// TestDetachAfterReboot: the host "reboots" between attach and detach:
// the namespaces, the bridges and the runtime dir are gone, the journal
// and the CNI state under /var/lib are kept. A new Manager detaches both
// containers (twice, to be sure), everything they held is released (the
// leak check: addresses, firewall rules, ports), and the network works
// again afterwards.
func TestDetachAfterReboot(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	n := e.network(ocinet.NetworkConfig{Name: "ocit-reboot", Subnet: netip.MustParsePrefix("10.213.21.0/24")})
	p, _ := portmap.Parse("127.0.0.1:28120:80")
	var paths []string
	for _, req := range []ocinet.AttachRequest{
		{ID: "reboot-1", Networks: []string{"bridge", "ocit-reboot"}, Ports: []portmap.Mapping{p}},
		{ID: "reboot-2", Networks: []string{"ocit-reboot"}},
	} {
		path, err := netns.Create("", "")
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
		req.NetNS = path
		e.attach(req)
	}

	// The reboot.
	for _, path := range paths {
		if err := netns.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
	for _, br := range []string{testBridge, n.Bridge} {
		if out, err := exec.Command("ip", "link", "del", br).CombinedOutput(); err != nil {
			t.Fatalf("delete bridge %s: %v: %s", br, err, out)
		}
	}
	ents, _ := os.ReadDir(e.runtimeDir)
	for _, ent := range ents {
		if err := os.RemoveAll(filepath.Join(e.runtimeDir, ent.Name())); err != nil {
			t.Fatal(err)
		}
	}

	m := e.manager()
	for _, id := range []string{"reboot-1", "reboot-2"} {
		for i := 0; i < 2; i++ {
			if err := m.Detach(ctx, id); err != nil {
				t.Errorf("Detach %s (%d) after the reboot: %v", id, i+1, err)
			}
		}
	}
	if list, _ := m.List(); len(list) != 0 {
		t.Errorf("records after detaching: %+v", list)
	}
	ns := e.ns()
	a, err := m.Attach(ctx, ocinet.AttachRequest{ID: "reboot-3", NetNS: ns, Networks: []string{"ocit-reboot"}, Ports: []portmap.Mapping{p}})
	if err != nil {
		t.Fatalf("attach after the reboot: %v", err)
	}
	if len(a.Ports) != 1 || a.Ports[0].HostPort != 28120 {
		t.Errorf("the port of a released container is not free again: %+v", a.Ports)
	}
	if err := m.Detach(ctx, "reboot-3"); err != nil {
		t.Fatal(err)
	}
}

// TestDetachPathReused: the container's namespace is gone and another
// namespace has taken its path. DEL must not touch the newcomer (it runs
// in a placeholder instead) and must still release everything.
func TestDetachPathReused(t *testing.T) {
	e := newEnv(t)
	name := "ocinet-test-reused"
	path, err := netns.Create("", name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Remove(path) })
	e.attach(ocinet.AttachRequest{ID: "reused", NetNS: path})
	if err := netns.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := netns.Create("", name); err != nil {
		t.Fatal(err)
	}
	// The newcomer has an eth0 of its own.
	for _, args := range [][]string{
		{"-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"},
		{"-n", name, "addr", "add", "10.213.0.2/24", "dev", "eth0"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	e.detach("reused")
	if got := addrsIn(t, path); !strings.Contains(got, "eth0") {
		t.Errorf("Detach removed the eth0 of the namespace that took the path:\n%s", got)
	}
}

// TestDetachCancelled: a caller whose context is already cancelled still
// gets a complete teardown.
func TestDetachCancelled(t *testing.T) {
	e := newEnv(t)
	ns := e.ns()
	e.attach(ocinet.AttachRequest{ID: "cancelled", NetNS: ns})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.m.Detach(ctx, "cancelled"); err != nil {
		t.Fatalf("Detach with a cancelled context: %v", err)
	}
	if _, err := e.m.Get("cancelled"); !errors.Is(err, ocinet.ErrNotFound) {
		t.Errorf("record still there: %v", err)
	}
	if got := addrsIn(t, ns); strings.Contains(got, "eth0") {
		t.Errorf("eth0 still there:\n%s", got)
	}
}

// TestDetachUsesRecordedConfig: DEL runs with the conflist bytes recorded
// at ADD, not the conf dir's current file. The file is changed so that a
// DEL from it would fail (a plugin that fails every DEL, and another
// subnet), or deleted; Detach succeeds either way, and the leak check finds
// nothing of the attachment left (masquerade rules, lease, veth).
func TestDetachUsesRecordedConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(e *env)
	}{
		{"changed", func(e *env) {
			e.writeConf("50-rec.conflist", chainConf("ocit-rec", "1.0.0", "10.213.31.0/24", 0, failpoint("DEL", "fail", "")))
		}},
		{"deleted", func(e *env) {
			if err := os.Remove(filepath.Join(e.confDir, "50-rec.conflist")); err != nil {
				e.t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			testenv.RemoveLinkAtEnd(t, fpBridge)
			e.writeConf("50-rec.conflist", chainConf("ocit-rec", "1.0.0", "10.213.30.0/24", 3))
			a := e.attach(ocinet.AttachRequest{ID: "rec", NetNS: e.ns(), Networks: []string{"ocit-rec"}})
			if len(a.Interfaces) != 1 || len(a.Interfaces[0].IPs) != 1 || !netip.MustParsePrefix("10.213.30.0/24").Contains(a.Interfaces[0].IPs[0].Addr()) {
				t.Fatalf("attachment %+v, want one address in 10.213.30.0/24", a.Interfaces)
			}
			tc.change(e)
			e.detach("rec")
			if _, err := e.m.Get("rec"); !errors.Is(err, ocinet.ErrNotFound) {
				t.Errorf("record after Detach: %v, want ErrNotFound", err)
			}
		})
	}
}
