package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocinet/ocinet/internal/testenv"
)

func (e *env) hostsFile(name string) string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.state, "hosts", "default", "containers", name, "hosts"))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

// TestNamesOnSharedNetwork: containers on a network resolve each other by
// name; a removed container's name leaves the others' /etc/hosts.
func TestNamesOnSharedNetwork(t *testing.T) {
	e := newEnv(t, "")
	e.run("alpha", e.httpd()...)
	e.run("beta", e.httpd()...)
	for _, pair := range [][2]string{{"alpha", "beta"}, {"beta", "alpha"}} {
		out := e.mustOcictl("run", "--rm", "--name", "from-"+pair[0], "--rootfs", e.rootfs, "--", "/bin/wget", "-qO-", "http://"+pair[1]+"/")
		if out != page {
			t.Errorf("wget http://%s/: got %q", pair[1], out)
		}
	}
	betaIP := e.attachment("beta").Interfaces[0].IPs[0].Addr().String()
	if h := e.hostsFile("alpha"); !strings.Contains(h, betaIP+"\tbeta") {
		t.Errorf("alpha's hosts does not name beta on %s:\n%s", betaIP, h)
	}
	e.mustOcictl("rm", "-f", "beta")
	if h := e.hostsFile("alpha"); strings.Contains(h, "beta") {
		t.Errorf("alpha's hosts still names beta after rm:\n%s", h)
	}
}

// TestAddHostAndDNS: --add-host (with host-gateway) and --dns, --dns-search,
// --dns-option appear inside the container.
func TestAddHostAndDNS(t *testing.T) {
	e := newEnv(t, "")
	out := e.mustOcictl("run", "--rm", "--name", "etc",
		"--add-host", "db.example:10.1.2.3", "--add-host", "gw:host-gateway",
		"--dns", "192.0.2.53", "--dns-search", "example.test", "--dns-option", "ndots:2",
		"--rootfs", e.rootfs, "--", "/bin/cat", "/etc/hosts", "/etc/resolv.conf")
	for _, want := range []string{"10.1.2.3\tdb.example", "\tgw", "nameserver 192.0.2.53", "search example.test", "options ndots:2"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q inside the container:\n%s", want, out)
		}
	}
	if strings.Contains(out, "nameserver 127.") {
		t.Errorf("a loopback nameserver reached the container:\n%s", out)
	}
}

// TestAddHostWinsOverPeer: a name that both a peer container and --add-host
// define resolves, inside the container, to the --add-host address, in
// both the NAME:IP and the NAME=IP form; without --add-host it resolves to
// the peer. The --add-host target is another container on the network
// whose web server serves another page.
func TestAddHostWinsOverPeer(t *testing.T) {
	e := newEnv(t, "")
	const otherPage = "the add-host target\n"
	dir := filepath.Join(e.rootfs, "www-target")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(otherPage), 0o644); err != nil {
		t.Fatal(err)
	}
	e.run("svc", e.httpd()...)
	e.run("target", "--rootfs", e.rootfs, "--", "/bin/httpd", "-f", "-p", "80", "-h", "/www-target")
	targetIP := e.attachment("target").Interfaces[0].IPs[0].Addr().String()
	// The target answers on its own address before anything depends on it.
	if got := get(t, "http://"+targetIP+"/"); got != otherPage {
		t.Fatalf("target on %s: got %q", targetIP, got)
	}
	fetch := func(name string, addHost ...string) string {
		t.Helper()
		args := []string{"run", "--rm", "--name", name}
		for _, h := range addHost {
			args = append(args, "--add-host", h)
		}
		args = append(args, "--rootfs", e.rootfs, "--", "/bin/timeout", "30", "/bin/wget", "-qO-", "http://svc/")
		return e.mustOcictl(args...)
	}
	if got := fetch("plain"); got != page {
		t.Errorf("without --add-host, http://svc/ gave %q, want the peer's page %q", got, page)
	}
	for i, h := range []string{"svc:" + targetIP, "svc=" + targetIP} {
		if got := fetch("with-add-host-"+string(rune('a'+i)), h); got != otherPage {
			t.Errorf("with --add-host %s, http://svc/ gave %q, want the target's page %q", h, got, otherPage)
		}
	}
}

// TestHostGatewayWithoutGateway: --add-host NAME:host-gateway on a network
// whose plugins give no gateway (a bridge without isGateway, static IPAM)
// is refused with an error that names the network, and nothing is left.
func TestHostGatewayWithoutGateway(t *testing.T) {
	e := newEnv(t, "")
	const bridge = "ocinet-nogw0"
	testenv.RemoveLinkAtEnd(t, bridge)
	conf := `{"cniVersion":"1.0.0","name":"nogw","plugins":[{"type":"bridge","bridge":"` + bridge + `","isGateway":false,` +
		`"ipam":{"type":"static","addresses":[{"address":"10.213.99.2/24"}]}}]}`
	if err := os.WriteFile(filepath.Join(e.netconf, "nogw.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"hook", "precreate"} {
		t.Run(mode, func(t *testing.T) {
			_, errOut, err := e.ocictl("run", "--rm", "--netns-mode", mode, "--name", "nogw-"+mode, "--network", "nogw",
				"--add-host", "gw:host-gateway", "--rootfs", e.rootfs, "--", "/bin/true")
			if err == nil {
				t.Fatal("run with host-gateway on a network without a gateway succeeded")
			}
			if want := `network "nogw" has no gateway`; !strings.Contains(errOut, want) {
				t.Errorf("error does not say %q:\n%s", want, errOut)
			}
			if ps := e.mustOcictl("ps"); strings.Contains(ps, "nogw-") {
				t.Errorf("the refused container is still listed:\n%s", ps)
			}
		})
	}
}
