package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const page = "hello from ocinet\n"

// TestRunPublishRemove is the path of `nerdctl run -d -p`: the hook attaches
// the container, its published ports answer on loopback and on the bridge
// gateway, the container answers on its own address, and after rm nothing
// is left (the leak check).
func TestRunPublishRemove(t *testing.T) {
	e := newEnv(t, "")
	e.run("web", append([]string{"-p", "127.0.0.1:18080:80", "-p", "18081:80"}, e.httpd()...)...)

	a := e.attachment("web")
	if !a.Complete || len(a.Interfaces) != 1 || len(a.Interfaces[0].IPs) == 0 || len(a.Interfaces[0].Gateways) == 0 {
		t.Fatalf("attachment: %+v", a)
	}
	ip := a.Interfaces[0].IPs[0].Addr()
	gw := a.Interfaces[0].Gateways[0]

	if got := get(t, "http://127.0.0.1:18080/"); got != page {
		t.Errorf("published on 127.0.0.1: got %q", got)
	}
	if got := get(t, "http://"+gw.String()+":18081/"); got != page {
		t.Errorf("published on the gateway %s: got %q", gw, got)
	}
	if got := get(t, "http://"+ip.String()+":80/"); got != page {
		t.Errorf("container address %s: got %q", ip, got)
	}

	ps := e.mustOcictl("ps")
	if !strings.Contains(ps, "web") || !strings.Contains(ps, "running") || !strings.Contains(ps, ip.String()) {
		t.Errorf("ps does not show web running on %s:\n%s", ip, ps)
	}
	port := e.mustOcictl("port", "web")
	for _, want := range []string{"80/tcp -> 127.0.0.1:18080", "80/tcp -> 0.0.0.0:18081"} {
		if !strings.Contains(port, want) {
			t.Errorf("port web: missing %q in:\n%s", want, port)
		}
	}
	hostsFile, err := os.ReadFile(filepath.Join(e.state, "hosts", "default", "containers", "web", "hosts"))
	if err != nil || !strings.Contains(string(hostsFile), ip.String()+"\tweb") {
		t.Errorf("hosts file (err %v) does not name web on %s:\n%s", err, ip, hostsFile)
	}

	e.mustOcictl("rm", "-f", "web")
	if ps := e.mustOcictl("ps"); strings.Contains(ps, "web") {
		t.Errorf("ps after rm still shows web:\n%s", ps)
	}
	if _, err := os.Stat(filepath.Join(e.state, "attachments", "default-web.json")); !os.IsNotExist(err) {
		t.Errorf("journal entry left after rm: %v", err)
	}
}

// TestMissingBridgePlugin: with the bridge plugin's binary missing, run
// through the binaries fails with an error that names the plugin and the
// plugin directory, and leaves nothing behind; through the native datapath
// the bridge needs no binary, and the same run works.
func TestMissingBridgePlugin(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"host-local", "loopback", "portmap", "firewall", "tuning"} {
		if err := os.Symlink(filepath.Join("/opt/ocinet/cni/bin", p), filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, dir)
	_, errOut, err := e.ocictl(append([]string{"--datapath=plugins", "run", "-d", "--name", "web", "-p", "127.0.0.1:18080:80"}, e.httpd()...)...)
	if err == nil {
		e.ocictl("rm", "-f", "web")
		t.Fatal("run succeeded without the bridge plugin")
	}
	for _, want := range []string{`plugin "bridge" not found`, dir} {
		if !strings.Contains(errOut, want) {
			t.Errorf("error does not contain %q:\n%s", want, errOut)
		}
	}
	if ps := e.mustOcictl("ps"); strings.Contains(ps, "web") {
		t.Errorf("the failed container is still listed:\n%s", ps)
	}
	// The native datapath runs the bridge itself.
	e.mustOcictl(append([]string{"--datapath=auto", "run", "-d", "--name", "web2", "-p", "127.0.0.1:18080:80"}, e.httpd()...)...)
	if got := get(t, "http://127.0.0.1:18080/"); got != page {
		t.Errorf("through the native bridge: %q, want the page", got)
	}
	e.mustOcictl("--datapath=auto", "rm", "-f", "web2")
}

// TestBadPublishRefused: a bad -p spec is refused before anything is made.
func TestBadPublishRefused(t *testing.T) {
	e := newEnv(t, "")
	_, errOut, err := e.ocictl(append([]string{"run", "-d", "--name", "web", "-p", "8080:80/tpc"}, e.httpd()...)...)
	if err == nil {
		e.ocictl("rm", "-f", "web")
		t.Fatal("run accepted -p 8080:80/tpc")
	}
	if !strings.Contains(errOut, `"tpc"`) {
		t.Errorf("error does not name the bad protocol:\n%s", errOut)
	}
	if ps := e.mustOcictl("ps"); strings.Contains(ps, "web") {
		t.Errorf("a container was created:\n%s", ps)
	}
}
