package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
