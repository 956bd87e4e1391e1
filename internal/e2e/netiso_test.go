package e2e

import (
	"strings"
	"testing"
)

// network creates a network for the test and removes it when the test
// ends, after the test's containers (cleanups run last first).
func (e *env) network(name string, args ...string) {
	e.t.Helper()
	e.mustOcictl(append(append([]string{"network", "create"}, args...), name)...)
	e.t.Cleanup(func() {
		if _, errOut, err := e.ocictl("network", "rm", name); err != nil {
			e.t.Errorf("cleanup network rm %s: %v: %s", name, err, errOut)
		}
	})
}

// TestNetworkIsolation: containers see the names of peers on their own
// networks only.
func TestNetworkIsolation(t *testing.T) {
	e := newEnv(t, "")
	e.network("front", "--subnet", "10.213.71.0/24")
	e.network("back", "--subnet", "10.213.72.0/24")
	e.run("f1", append([]string{"--network", "front"}, e.httpd()...)...)
	e.run("b1", append([]string{"--network", "back"}, e.httpd()...)...)

	out := e.mustOcictl("run", "--rm", "--network", "front", "--name", "fclient", "--rootfs", e.rootfs, "--", "/bin/wget", "-qO-", "http://f1/")
	if out != page {
		t.Errorf("front client fetching f1: got %q", out)
	}
	out, errOut, err := e.ocictl("run", "--rm", "--network", "front", "--name", "fclient2", "--rootfs", e.rootfs, "--", "/bin/wget", "-T", "2", "-qO-", "http://b1/")
	if err == nil || out == page {
		t.Errorf("a container on front reached b1 on back by name: %q %s", out, errOut)
	}
	if h := e.hostsFile("f1"); strings.Contains(h, "b1") || !strings.Contains(h, "f1") {
		t.Errorf("f1's hosts file:\n%s", h)
	}
}

// TestStaticAddress: --ip and --mac-address on a network made with a known
// subnet.
func TestStaticAddress(t *testing.T) {
	e := newEnv(t, "")
	e.network("fixed", "--subnet", "10.213.73.0/24")
	e.run("pinned", append([]string{"--network", "fixed", "--ip", "10.213.73.50", "--mac-address", "02:42:0a:d5:49:32"}, e.httpd()...)...)
	a := e.attachment("pinned")
	if len(a.Interfaces) != 1 || a.Interfaces[0].IPs[0].Addr().String() != "10.213.73.50" || a.Interfaces[0].MAC != "02:42:0a:d5:49:32" {
		t.Fatalf("attachment: %+v", a.Interfaces)
	}
	if got := get(t, "http://10.213.73.50/"); got != page {
		t.Errorf("the fixed address: got %q", got)
	}
	// The address is taken: a second container asking for it is refused.
	_, errOut, err := e.ocictl(append([]string{"run", "-d", "--network", "fixed", "--ip", "10.213.73.50", "--name", "second"}, e.httpd()...)...)
	if err == nil {
		e.ocictl("rm", "-f", "second")
		t.Fatal("the same static address was given twice")
	}
	if !strings.Contains(errOut, "10.213.73.50") {
		t.Errorf("the error does not name the address:\n%s", errOut)
	}
}
