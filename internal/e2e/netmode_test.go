package e2e

import (
	"encoding/json"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ocinet/ocinet/hosts"
)

// netnsModes are ocictl's three moments of attaching a container.
var netnsModes = []string{"hook", "precreate", "task"}

// interfaces returns the interface names /proc/net/dev lists at the start
// of out, up to a line "--".
func interfaces(out string) []string {
	var names []string
	dev, _, _ := strings.Cut(out, "\n--")
	for _, line := range strings.Split(dev, "\n") {
		if name, _, ok := strings.Cut(line, ":"); ok && !strings.Contains(name, "|") {
			names = append(names, strings.TrimSpace(name))
		}
	}
	return names
}

// hostInterfaces returns the names of the host's links.
func hostInterfaces(t *testing.T) map[string]bool {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, i := range ifs {
		names[i.Name] = true
	}
	return names
}

// checkInspectMode checks that `ocictl inspect` shows container name on
// no network of its own, in mode, with no interface and no port.
func (e *env) checkInspectMode(name, mode string) {
	e.t.Helper()
	var out []struct {
		Name        string   `json:"name"`
		NetworkMode string   `json:"networkMode"`
		Interfaces  []any    `json:"interfaces"`
		Ports       []string `json:"ports"`
	}
	if err := json.Unmarshal([]byte(e.mustOcictl("inspect", name)), &out); err != nil {
		e.t.Fatal(err)
	}
	if len(out) != 1 || out[0].Name != name || out[0].NetworkMode != mode || len(out[0].Interfaces) != 0 || len(out[0].Ports) != 0 {
		e.t.Errorf("inspect %s: %+v, want network mode %s and nothing attached", name, out, mode)
	}
}

// TestNetworkModeNone: --network none gives a container its loopback, up,
// and nothing else, in each netns mode (precreate's namespace, made by
// ocinet, starts with lo down); /etc/hosts and resolv.conf are written;
// nothing is attached, and nothing is left after rm.
func TestNetworkModeNone(t *testing.T) {
	e := newEnv(t, "")
	for _, mode := range netnsModes {
		t.Run(mode, func(t *testing.T) {
			name := "none-" + mode
			out := e.mustOcictl("run", "--rm", "--name", name, "--network", "none", "--netns-mode", mode,
				"--add-host", "db.example:10.1.2.3", "--dns", "192.0.2.53", "--rootfs", e.rootfs, "--",
				"/bin/sh", "-c", "cat /proc/net/dev; echo --; cat /etc/hosts /etc/resolv.conf; /bin/httpd -p 127.0.0.1:80 -h /www && timeout 5 /bin/wget -qO- http://127.0.0.1/")
			if got := interfaces(out); len(got) != 1 || got[0] != "lo" {
				t.Errorf("interfaces inside: %v, want only lo:\n%s", got, out)
			}
			for _, want := range []string{page, "127.0.0.1\tlocalhost\n", "10.1.2.3\tdb.example\n", "nameserver 192.0.2.53\n"} {
				if !strings.Contains(out, want) {
					t.Errorf("missing %q inside the container:\n%s", want, out)
				}
			}
			e.run(name+"-kept", "--network", "none", "--netns-mode", mode, "--rootfs", e.rootfs, "--", "/bin/sleep", "30")
			e.checkInspectMode(name+"-kept", "none")
		})
	}
}

// TestNetworkModeHost: --network host puts a container on the host's
// network in each netns mode: a server it starts on 127.0.0.1 answers the
// host, it sees the host's interfaces, its host name is the host's, its
// /etc/hosts holds the host's entries under its own and its resolv.conf is
// the host's; after rm, the port is free again.
func TestNetworkModeHost(t *testing.T) {
	e := newEnv(t, "")
	hostName, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	hostHosts, err := os.ReadFile(hosts.DefaultHostHosts)
	if err != nil {
		t.Fatal(err)
	}
	resolv, err := hosts.BuildResolvConf(hosts.ResolvOptions{HostNetwork: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range netnsModes {
		t.Run(mode, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
			l.Close()
			name := "host-" + mode
			e.run(name, "--network", "host", "--netns-mode", mode, "--rootfs", e.rootfs, "--", "/bin/httpd", "-f", "-p", "127.0.0.1:"+port, "-h", "/www")
			if got := get(t, "http://127.0.0.1:"+port+"/"); got != page {
				t.Errorf("the container's server on the host's 127.0.0.1:%s: got %q", port, got)
			}
			before := hostInterfaces(t)
			out := e.mustOcictl("run", "--rm", "--name", name+"-look", "--network", "host", "--netns-mode", mode, "--rootfs", e.rootfs, "--",
				"/bin/sh", "-c", "cat /proc/net/dev; echo --; echo hostname=$(hostname); cat /etc/hosts; echo '-- resolv'; cat /etc/resolv.conf")
			// The host's links that were there before and after the run
			// (an earlier test's veth may go meanwhile, with its
			// namespace), one of them not lo, so that a namespace of the
			// container's own could not pass.
			inside, after := interfaces(out), hostInterfaces(t)
			shared := 0
			for name := range before {
				if !after[name] {
					continue
				}
				if name != "lo" {
					shared++
				}
				if !slices.Contains(inside, name) {
					t.Errorf("the host's interface %s is not inside: %v", name, inside)
				}
			}
			if shared == 0 {
				t.Fatalf("the host has no interface but lo: the test cannot tell its network from a new namespace")
			}
			if !strings.Contains(out, "hostname="+hostName+"\n") {
				t.Errorf("host name inside is not %q:\n%s", hostName, out)
			}
			for _, line := range strings.Split(string(hostHosts), "\n") {
				if strings.Trim(line, "# \t") != "" && !strings.Contains(out, line+"\n") {
					t.Errorf("the host's hosts line %q is not inside:\n%s", line, out)
				}
			}
			if _, got, _ := strings.Cut(out, "-- resolv\n"); got != string(resolv) {
				t.Errorf("resolv.conf inside:\n%s\nwant the host's:\n%s", got, resolv)
			}
			e.checkInspectMode(name, "host")
			e.mustOcictl("rm", "-f", name)
			l, err = net.Listen("tcp", "127.0.0.1:"+port)
			if err != nil {
				t.Fatalf("port %s after rm: %v", port, err)
			}
			l.Close()
		})
	}
}

// TestNetworkModeRefused: a mode combined with what needs a network of the
// container's own is refused with a message that says so, before anything
// is made.
func TestNetworkModeRefused(t *testing.T) {
	e := newEnv(t, "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--network", "none", "-p", "8080:80"}, "network mode none with published ports"},
		{[]string{"--network", "host", "--network-alias", "db"}, "network mode host with network aliases"},
		{[]string{"--network", "host", "--ip", "10.4.0.9"}, "network mode host with static addresses or MAC"},
		{[]string{"--network", "none", "--add-host", "gw:host-gateway"}, "network mode none with an extra host at host-gateway"},
		{[]string{"--network", "bridge", "--network", "host"}, "--network host: cannot be combined with other networks"},
	} {
		args := append(append([]string{"run", "--rm", "--name", "refused"}, tc.args...), "--rootfs", e.rootfs, "--", "/bin/true")
		if _, errOut, err := e.ocictl(args...); err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("ocictl %s: %v, stderr %q; want it refused for %q", strings.Join(tc.args, " "), err, errOut, tc.want)
		}
	}
	if ps := e.mustOcictl("ps"); strings.Contains(ps, "refused") {
		t.Errorf("a refused run left a container:\n%s", ps)
	}
}

// TestNetworkContainer: --network container:NAME shares NAME's network in
// each netns mode of NAME: the joiner reaches NAME's server on 127.0.0.1,
// has NAME's interfaces, host name and /etc/hosts, and nothing is attached
// for it. A joiner of a container that does not run, or with
// options of a network of its own, is refused.
func TestNetworkContainer(t *testing.T) {
	e := newEnv(t, "")
	for _, mode := range netnsModes {
		t.Run(mode, func(t *testing.T) {
			web := "web-" + mode
			e.run(web, append([]string{"--netns-mode", mode, "--hostname", "web.example"}, e.httpd()...)...)
			ip := e.attachment(web).Interfaces[0].IPs[0].Addr().String()
			join := "side-" + mode
			out := e.mustOcictl("run", "--rm", "--name", join, "--network", "container:"+web, "--rootfs", e.rootfs, "--",
				"/bin/sh", "-c", "cat /proc/net/dev; echo --; echo hostname=$(hostname); timeout 5 /bin/wget -qO- http://127.0.0.1/; ip -o -4 addr show eth0; echo '-- hosts'; cat /etc/hosts")
			if got := interfaces(out); len(got) != 2 || !strings.Contains(strings.Join(got, " "), "eth0") {
				t.Errorf("interfaces inside the joiner: %v, want lo and eth0:\n%s", got, out)
			}
			for _, want := range []string{"hostname=web.example\n", page, " " + ip + "/"} {
				if !strings.Contains(out, want) {
					t.Errorf("missing %q inside the joiner:\n%s", want, out)
				}
			}
			if _, got, _ := strings.Cut(out, "-- hosts\n"); got != e.hostsFile(web) {
				t.Errorf("the joiner's /etc/hosts:\n%s\nwant %s's:\n%s", got, web, e.hostsFile(web))
			}
			e.run(join+"-kept", "--network", "container:"+web, "--rootfs", e.rootfs, "--", "/bin/sleep", "30")
			e.checkInspectMode(join+"-kept", "container:"+web)
			e.mustOcictl("rm", "-f", join+"-kept")
			e.mustOcictl("rm", "-f", web)
		})
	}
	e.run("stopped", "--rootfs", e.rootfs, "--", "/bin/true")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--network", "container:missing"}, "--network container:missing"},
		{[]string{"--network", "container:stopped"}, "not running"},
		{[]string{"--network", "container:stopped", "-p", "8080:80"}, "-p cannot be combined with it"},
		{[]string{"--network", "container:stopped", "--dns", "192.0.2.53"}, "--dns cannot be combined with it"},
		{[]string{"--network", "container:../x"}, `container id "../x"`},
	} {
		args := append(append([]string{"run", "--rm", "--name", "refused"}, tc.args...), "--rootfs", e.rootfs, "--", "/bin/true")
		if _, errOut, err := e.ocictl(args...); err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("ocictl %s: %v, stderr %q; want it refused for %q", strings.Join(tc.args, " "), err, errOut, tc.want)
		}
	}
}
