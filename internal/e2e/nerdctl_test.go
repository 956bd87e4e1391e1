package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/ocinettest"
)

// nerdctlFixtures is the conf dir nerdctl v2.3.5 wrote (its README says
// with which commands).
var nerdctlFixtures = filepath.Join(testenv.RepoRoot(), "testdata", "nerdctl-v2.3.5", "net.d")

// attachmentIn returns the recorded attachment of a container of
// namespace ns.
func (e *env) attachmentIn(ns, name string) *ocinet.Attachment {
	e.t.Helper()
	cfg := e.hookConfig()
	cfg.Namespace = ns
	mgr, err := cfg.Manager()
	if err != nil {
		e.t.Fatal(err)
	}
	a, err := mgr.Get(cfg.AttachmentID(name))
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// isolationRules returns the rules of the firewall plugin's isolation
// chains, both families, that name dev (read with iptables -S: the test's
// oracle, not the code under test), and the element of the in-process
// firewall's set of isolated bridges that names it.
func isolationRules(t *testing.T, dev string) []string {
	t.Helper()
	var out []string
	for _, tool := range []string{"iptables", "ip6tables"} {
		for _, chain := range []string{"CNI-ISOLATION-STAGE-1", "CNI-ISOLATION-STAGE-2"} {
			b, err := exec.Command(tool, "-w", "-t", "filter", "-S", chain).Output()
			if err != nil {
				continue // no such chain
			}
			for _, l := range strings.Split(string(b), "\n") {
				if f := strings.Fields(l); slices.Contains(f, dev) {
					out = append(out, tool+" "+l)
				}
			}
		}
	}
	// The in-process firewall isolates through the set of isolated
	// bridges in the table inet ocinet.
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	table := &nftables.Table{Name: inproc.TableName, Family: inproc.TableFamily}
	if set, err := c.GetSetByName(table, inproc.IsolatedSet); err == nil {
		els, err := c.GetSetElements(set)
		if err != nil {
			t.Fatal(err)
		}
		for _, el := range els {
			if string(bytes.TrimRight(el.Key, "\x00")) == dev {
				out = append(out, "nftables "+inproc.IsolatedSet+" "+dev+" "+el.Comment)
			}
		}
	}
	return out
}

// TestNerdctlFixtures: the conf dir that nerdctl v2.3.5 wrote, used as it
// is: `network ls` shows each namespace its networks; a container runs on
// each bridge network (the default one included) with an address from
// its subnets and serves there; `network rm` removes each user network as
// nerdctl would, its bridge, and the isolation rules the firewall plugin
// made for it.
func TestNerdctlFixtures(t *testing.T) {
	e := newEnv(t, "")
	testenv.CopyTree(t, nerdctlFixtures, e.netconf)
	testenv.RemoveLinkAtEnd(t, "nerdctl0")

	ls := func(ns string) []string {
		t.Helper()
		out := e.mustOcictl("--namespace", ns, "network", "ls", "-q")
		return strings.Fields(out)
	}
	if got, want := ls("default"), []string{"bridge", "dual", "fixed", "internalnet", "ivlan", "labelled", "mvlan", "plain", "ranged"}; !slices.Equal(got, want) {
		t.Errorf("network ls in default: %v, want %v", got, want)
	}
	if got, want := ls("other"), []string{"bridge", "othernsnet"}; !slices.Equal(got, want) {
		t.Errorf("network ls in other: %v, want %v", got, want)
	}
	if out := e.mustOcictl("network", "ls"); !strings.Contains(out, filepath.Join(e.netconf, "default", "nerdctl-plain.conflist")) {
		t.Errorf("network ls does not show plain's file:\n%s", out)
	}

	for _, fx := range []struct {
		ns, network, bridge string
		subnets             []string
		reachable           bool // the host has an address on the bridge
	}{
		{"default", "bridge", "nerdctl0", []string{"10.4.0.0/24"}, true},
		{"default", "plain", "br-a116c9ed46d6", []string{"10.4.1.0/24"}, true},
		{"default", "fixed", "br-992a93455c71", []string{"10.213.1.0/24"}, true},
		{"default", "ranged", "br-658bb8cf1211", []string{"10.213.2.128/25"}, true},
		{"default", "dual", "br-8ccf2f9e9cc4", []string{"10.213.3.0/24", "fd00:213:3::/64"}, true},
		{"default", "internalnet", "br-68d6d5a2331a", []string{"10.4.2.0/24"}, false},
		{"default", "labelled", "br-6cc8d29769c7", []string{"10.4.3.0/24"}, true},
		{"other", "othernsnet", "br-475ea7276f56", []string{"10.4.1.0/24"}, true},
	} {
		t.Run(fx.network, func(t *testing.T) {
			testenv.RemoveLinkAtEnd(t, fx.bridge)
			name := "fx-" + fx.network
			e.mustOcictl(append([]string{"--namespace", fx.ns, "run", "-d", "--name", name, "--network", fx.network}, e.httpd()...)...)
			removed := false
			defer func() {
				if !removed {
					_, _, _ = e.ocictl("--namespace", fx.ns, "rm", "-f", name)
				}
			}()
			a := e.attachmentIn(fx.ns, name)
			if len(a.Interfaces) != 1 || len(a.Interfaces[0].IPs) != len(fx.subnets) {
				t.Fatalf("attachment on %s: %+v", fx.network, a.Interfaces)
			}
			for i, s := range fx.subnets {
				if ip := a.Interfaces[0].IPs[i].Addr(); !netip.MustParsePrefix(s).Contains(ip) {
					t.Errorf("address %s not in %s", ip, s)
				}
			}
			if fx.reachable {
				ip := a.Interfaces[0].IPs[0].Addr()
				if got := get(t, "http://"+ip.String()+"/"); got != page {
					t.Errorf("container on %s at %s served %q", fx.network, ip, got)
				}
			}
			rules := isolationRules(t, fx.bridge)
			if len(rules) == 0 {
				t.Errorf("no isolation rules for %s: the fixture's ingressPolicy did not apply", fx.bridge)
			}
			e.mustOcictl("--namespace", fx.ns, "rm", "-f", name)
			removed = true
			if fx.network == "bridge" {
				return // the default network stays
			}
			if out := strings.TrimSpace(e.mustOcictl("--namespace", fx.ns, "network", "rm", fx.network)); out != fx.network {
				t.Errorf("network rm printed %q", out)
			}
			if _, err := os.Stat(filepath.Join(e.netconf, fx.ns, "nerdctl-"+fx.network+".conflist")); !os.IsNotExist(err) {
				t.Errorf("conflist of %s after network rm: %v", fx.network, err)
			}
			if _, err := net.InterfaceByName(fx.bridge); err == nil {
				t.Errorf("bridge %s still there after network rm", fx.bridge)
			}
			if left := isolationRules(t, fx.bridge); len(left) > 0 {
				t.Errorf("isolation rules of %s after network rm:\n%s", fx.bridge, strings.Join(left, "\n"))
			}
		})
	}
	if _, errOut, err := e.ocictl("network", "rm", "bridge"); err == nil || !strings.Contains(errOut, "default network") {
		t.Errorf("network rm bridge: %v %s; want a refusal", err, errOut)
	}
}

// parentLink makes a veth pair for the test whose one end, name, stays on
// the host as the parent of macvlan or ipvlan networks and whose other end
// is up inside a namespace the test made (the kernel here has no dummy
// links; the machine's uplink is never used).
// It returns the peer's namespace.
func parentLink(t *testing.T, name string) string {
	t.Helper()
	peerNS := ocinettest.NetNS(t)
	peer := name + "p"
	for _, args := range [][]string{
		{"link", "add", name, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", filepath.Base(peerNS)},
		{"-n", filepath.Base(peerNS), "link", "set", peer, "up"},
		{"link", "set", name, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		if args[1] == "add" {
			t.Cleanup(func() { _ = exec.Command("ip", "link", "del", name).Run() })
		}
	}
	return peerNS
}

// requireLinkType skips unless the kernel makes links of the type (ipvlan,
// macvlan): it tries one on the peer of a parentLink, inside the peer's
// namespace. It skips under CI=true too: a kernel built without the link
// type is not a prerequisite the project can install (this machine's has
// no ipvlan), and the skip is counted as a skip.
func requireLinkType(t *testing.T, peerNS, peer, kind string) {
	t.Helper()
	ns := filepath.Base(peerNS)
	out, err := exec.Command("ip", "-n", ns, "link", "add", "link", peer, "name", "probe0", "type", kind).CombinedOutput()
	if err != nil {
		t.Skipf("the kernel makes no %s links: ip link add: %v: %s", kind, err, bytes.TrimSpace(out))
	}
	_ = exec.Command("ip", "-n", ns, "link", "del", "probe0").Run()
}

// TestMacvlanIpvlan: `network create -d macvlan|ipvlan -o parent=...`:
// containers on the network get addresses from it and reach each other
// over the parent.
func TestMacvlanIpvlan(t *testing.T) {
	for _, tc := range []struct {
		driver, mode, subnet string
	}{
		{"macvlan", "bridge", "10.213.82.0/24"},
		{"ipvlan", "l2", "10.213.83.0/24"},
	} {
		t.Run(tc.driver, func(t *testing.T) {
			e := newEnv(t, "")
			parent := "ocit" + tc.driver[:2] + "0"
			requireLinkType(t, parentLink(t, parent), parent+"p", tc.driver)
			if _, errOut, err := e.ocictl("network", "create", "-d", tc.driver, "-o", "parent=ocit-nosuch", "bad"); err == nil || !strings.Contains(errOut, "no such device") {
				t.Errorf("parent that does not exist: %v %s", err, errOut)
			}
			if _, errOut, err := e.ocictl("network", "create", "-d", tc.driver, "-o", "parent="+parent, "-o", "mode=nosuch", "bad"); err == nil || !strings.Contains(errOut, "mode") {
				t.Errorf("bad mode: %v %s", err, errOut)
			}
			netName := "ocit-" + tc.driver
			e.network(netName, "-d", tc.driver, "-o", "parent="+parent, "-o", "mode="+tc.mode, "--subnet", tc.subnet)
			e.run("srv", append([]string{"--network", netName}, e.httpd()...)...)
			a := e.attachment("srv")
			if len(a.Interfaces) != 1 || len(a.Interfaces[0].IPs) != 1 || !netip.MustParsePrefix(tc.subnet).Contains(a.Interfaces[0].IPs[0].Addr()) {
				t.Fatalf("attachment on %s: %+v", netName, a.Interfaces)
			}
			ip := a.Interfaces[0].IPs[0].Addr()
			out := e.mustOcictl("run", "--rm", "--network", netName, "--name", "client", "--rootfs", e.rootfs, "--", "/bin/wget", "-qO-", "http://"+ip.String()+"/")
			if out != page {
				t.Errorf("client on %s fetching %s: got %q", netName, ip, out)
			}
		})
	}
}

// TestNetworkPrune: `network prune` removes the networks no container
// uses and names them; the default network and networks in use stay;
// without -f it asks, and a "no" (here: no answer) removes nothing.
func TestNetworkPrune(t *testing.T) {
	e := newEnv(t, "")
	for _, n := range []struct{ name, subnet string }{{"ocit-used", "10.213.84.0/24"}, {"ocit-idle", "10.213.85.0/24"}} {
		e.mustOcictl("network", "create", "--subnet", n.subnet, n.name)
		testenv.RemoveLinkAtEnd(t, "br-"+networkIDOf(n.name)[:12])
		t.Cleanup(func() { _, _, _ = e.ocictl("network", "rm", n.name) })
	}
	e.run("user", append([]string{"--network", "ocit-used"}, e.httpd()...)...)
	e.mustOcictl("network", "inspect", "bridge") // the default network, made on first use
	if out, _, err := e.ocictl("network", "prune"); err != nil || strings.Contains(out, "ocit-idle") {
		t.Errorf("prune without -f and without an answer: %v, %q", err, out)
	}
	if out := e.mustOcictl("network", "prune", "-f"); out != "Deleted Networks:\nocit-idle\n" {
		t.Errorf("prune -f printed %q", out)
	}
	if got := strings.Fields(e.mustOcictl("network", "ls", "-q")); !slices.Equal(got, []string{"bridge", "ocit-used"}) {
		t.Errorf("after prune: %v, want [bridge ocit-used]", got)
	}
	e.mustOcictl("rm", "-f", "user")
	if out := e.mustOcictl("network", "prune", "-f"); out != "Deleted Networks:\nocit-used\n" {
		t.Errorf("second prune printed %q", out)
	}
}

// networkIDOf is nerdctl's network ID: hex SHA-256 of the name.
func networkIDOf(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}
