package e2e

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocinet/ocinet/dns"
	"github.com/ocinet/ocinet/internal/testenv"
)

// TestPublishUDP: a published UDP port answers from the host.
func TestPublishUDP(t *testing.T) {
	e := newEnv(t, "")
	echo := testenv.Build(t, "./internal/e2e/testdata/udpecho")
	data, err := os.ReadFile(echo)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.rootfs, "bin", "udpecho"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	e.run("echo", "-p", "127.0.0.1:18053:53/udp", "--rootfs", e.rootfs, "--", "/bin/udpecho", "53")

	conn, err := net.Dial("udp", "127.0.0.1:18053")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 64)
	var last error
	for attempt := 0; attempt < 50; attempt++ {
		_ = conn.SetDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := conn.Write([]byte("ping")); err != nil {
			last = err
			continue
		}
		n, err := conn.Read(buf)
		if err == nil && string(buf[:n]) == "ping" {
			return
		}
		last = err
	}
	t.Fatalf("no UDP echo through 127.0.0.1:18053: %v", last)
}

// TestPublishRange: -p 18100-18102:80-82 maps one to one, and each answers.
func TestPublishRange(t *testing.T) {
	e := newEnv(t, "")
	e.run("range", "-p", "127.0.0.1:18100-18102:80-82", "--rootfs", e.rootfs, "--",
		"/bin/sh", "-c", "httpd -p 80 -h /www; httpd -p 81 -h /www; exec httpd -f -p 82 -h /www")
	for _, p := range []string{"18100", "18101", "18102"} {
		if got := get(t, "http://127.0.0.1:"+p+"/"); got != page {
			t.Errorf("port %s: got %q", p, got)
		}
	}
	port := e.mustOcictl("port", "range")
	for _, want := range []string{"80/tcp -> 127.0.0.1:18100", "81/tcp -> 127.0.0.1:18101", "82/tcp -> 127.0.0.1:18102"} {
		if !strings.Contains(port, want) {
			t.Errorf("port: missing %q in:\n%s", want, port)
		}
	}
}

// TestPublishAuto: -p 127.0.0.1::80 gets a free port, shown by port, that
// answers.
func TestPublishAuto(t *testing.T) {
	e := newEnv(t, "")
	e.run("auto", append([]string{"-p", "127.0.0.1::80"}, e.httpd()...)...)
	port := e.mustOcictl("port", "auto")
	m := regexp.MustCompile(`80/tcp -> 127\.0\.0\.1:(\d+)`).FindStringSubmatch(port)
	if m == nil {
		t.Fatalf("port auto: no mapping in:\n%s", port)
	}
	if got := get(t, "http://127.0.0.1:"+m[1]+"/"); got != page {
		t.Errorf("auto port %s: got %q", m[1], got)
	}
}

// TestPublishConflict: a second container asking for a taken host port
// fails with an error naming the port and the holder, and leaves nothing.
func TestPublishConflict(t *testing.T) {
	e := newEnv(t, "")
	e.run("first", append([]string{"-p", "127.0.0.1:18110:80"}, e.httpd()...)...)
	for _, spec := range []string{"127.0.0.1:18110:80", "18110:80"} {
		_, errOut, err := e.ocictl(append([]string{"run", "-d", "--name", "second", "-p", spec}, e.httpd()...)...)
		if err == nil {
			e.ocictl("rm", "-f", "second")
			t.Fatalf("-p %s: a taken port was published twice", spec)
		}
		if !strings.Contains(errOut, "18110") || !strings.Contains(errOut, "in use by another container (first)") {
			t.Errorf("-p %s: error does not name the port and its holder:\n%s", spec, errOut)
		}
		if ps := e.mustOcictl("ps"); strings.Contains(ps, "second") {
			t.Errorf("the refused container is listed:\n%s", ps)
		}
		if _, err := os.Stat(filepath.Join(e.state, "attachments", "default-second.json")); !os.IsNotExist(err) {
			t.Errorf("journal entry of the refused container: %v", err)
		}
	}
	// The first one still answers.
	if got := get(t, "http://127.0.0.1:18110/"); got != page {
		t.Errorf("first container after the refusals: got %q", got)
	}
	// Refused on a network of its own: the DNS responder started for that
	// network while the container was being attached goes again.
	e.network("lonely", "--subnet", "10.213.76.0/24")
	if _, _, err := e.ocictl(append([]string{"run", "-d", "--network", "lonely", "--name", "third", "-p", "127.0.0.1:18110:80"}, e.httpd()...)...); err == nil {
		e.ocictl("rm", "-f", "third")
		t.Fatal("a taken port was published on another network")
	}
	deadline := time.Now().Add(5 * time.Second)
	for responderRuns(e.state, "lonely") {
		if time.Now().After(deadline) {
			t.Fatal("the responder of lonely, a network without containers, still runs 5 s after the refused run")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// responderRuns reports whether a DNS responder of the state root runs for
// network.
func responderRuns(state, network string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		argv := strings.Split(string(b), "\x00")
		if argv[0] == dns.HelperName && slices.Contains(argv, state) && slices.Contains(argv, network) {
			return true
		}
	}
	return false
}

// TestPublishIPv6: on a dual-stack network a port published on every
// address answers on the bridge's IPv6 address, and one published on [::1]
// answers through the loopback proxy (the kernel does not forward from IPv6
// loopback), which ends with the container.
func TestPublishIPv6(t *testing.T) {
	e := newEnv(t, "")
	if b, err := os.ReadFile("/proc/net/if_inet6"); err != nil || !strings.Contains(string(b), " lo\n") {
		testenv.Skip(t, "the host has no IPv6 on loopback")
	}
	e.network("dual", "--ipv6", "--subnet", "10.213.75.0/24", "--subnet", "fd00:ab75::/64")
	_, errOut, err := e.ocictl(append([]string{"run", "-d", "--network", "dual", "--name", "udp6", "-p", "[::1]:18142:80/udp"}, e.httpd()...)...)
	if err == nil {
		e.ocictl("rm", "-f", "udp6")
		t.Fatal("publishing udp on [::1] was accepted")
	}
	if !strings.Contains(errOut, "only tcp") {
		t.Errorf("the refusal does not say why:\n%s", errOut)
	}
	e.run("web6", append([]string{"--network", "dual", "-p", "[::]:18141:80", "-p", "[::1]:18140:80"}, e.httpd()...)...)
	a := e.attachment("web6")
	var gw6 string
	for _, g := range a.Interfaces[0].Gateways {
		if g.Is6() {
			gw6 = g.String()
		}
	}
	if gw6 == "" {
		t.Fatalf("no IPv6 gateway on the dual-stack network: %+v", a.Interfaces[0])
	}
	if got := get(t, "http://["+gw6+"]:18141/"); got != page {
		t.Errorf("published on [::], fetched on the bridge's IPv6 address %s: got %q", gw6, got)
	}
	if got := get(t, "http://[::1]:18140/"); got != page {
		t.Errorf("published on [::1]: got %q", got)
	}
	if port := e.mustOcictl("port", "web6"); !strings.Contains(port, "80/tcp -> [::1]:18140") {
		t.Errorf("port web6:\n%s", port)
	}
	e.mustOcictl("rm", "-f", "web6")
	if c, err := net.DialTimeout("tcp", "[::1]:18140", time.Second); err == nil {
		c.Close()
		t.Error("something still listens on [::1]:18140 after rm")
	}
}
