package hook_test

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hook"
	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/netns"
)

// loopbackUp reports whether lo is up in the network namespace of pid.
func loopbackUp(t *testing.T, pid int) bool {
	t.Helper()
	out, err := exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(pid)+"/ns/net", "ip", "-o", "link", "show", "lo").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show lo in %d: %v: %s", pid, err, out)
	}
	return strings.Contains(string(out), ",UP") || strings.Contains(string(out), "<UP")
}

// hostProcess starts a process on the host's network, as runc's init is in
// a container on the host's network, and returns its pid.
func (w *world) hostProcess() int {
	w.t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

// checkLocal checks what the hook leaves of a container in a mode without
// a network of its own: no attachment, no pin, a hosts record on no
// network, the files written; and after poststop, no record.
func (w *world) checkLocal(id string, pid int, annotation string, files func(hostsFile, resolv string)) {
	t := w.t
	t.Helper()
	if stderr, err := w.run(hook.EventCreateRuntime, state(id, "creating", pid, annotation)); err != nil {
		t.Fatalf("createRuntime: %v: %s", err, stderr)
	}
	m, err := w.cfg.Manager()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(w.cfg.AttachmentID(id)); !errors.Is(err, ocinet.ErrNotFound) {
		t.Errorf("attachment: %v, want none", err)
	}
	if !netns.Closed(w.cfg.PinPath(id)) {
		t.Error("a pin was made")
	}
	store, err := w.cfg.HostsStore()
	if err != nil {
		t.Fatal(err)
	}
	if r, err := store.Get(id); err != nil || len(r.Networks) != 0 || r.Name != "web" {
		t.Errorf("hosts record: %+v, %v", r, err)
	}
	h, err := os.ReadFile(store.HostsPath(id))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := os.ReadFile(store.ResolvConfPath(id))
	if err != nil {
		t.Fatal(err)
	}
	files(string(h), string(rc))
	if stderr, err := w.run(hook.EventPoststop, state(id, "stopped", 0, "")); err != nil {
		t.Fatalf("poststop: %v: %s", err, stderr)
	}
	if _, err := store.Get(id); !errors.Is(err, hosts.ErrNotFound) {
		t.Errorf("hosts record after poststop: %v, want ErrNotFound", err)
	}
}

// TestModeNone: a container in network mode none gets its loopback up
// (runc's init sits in a namespace whose lo is down, as unshare leaves it)
// and its hosts files, and nothing else.
func TestModeNone(t *testing.T) {
	w := newWorld(t)
	pid := w.container()
	if loopbackUp(t, pid) {
		t.Fatal("lo is up before the hook ran: the test would prove nothing")
	}
	w.checkLocal("web", pid, `{"version":1,"mode":"none","name":"web","extraHosts":["db.example:10.1.2.3"],"dnsServers":["192.0.2.53"]}`, func(h, rc string) {
		for _, want := range []string{"127.0.0.1\tlocalhost\n", "10.1.2.3\tdb.example\n"} {
			if !strings.Contains(h, want) {
				t.Errorf("hosts file lacks %q:\n%s", want, h)
			}
		}
		if !strings.Contains(rc, "nameserver 192.0.2.53\n") {
			t.Errorf("resolv.conf:\n%s", rc)
		}
	})
	if !loopbackUp(t, pid) {
		t.Error("lo is not up after createRuntime")
	}
	// Only lo: the namespace has no other link.
	out, err := exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(pid)+"/ns/net", "ip", "-o", "link", "show").CombinedOutput()
	if err != nil || strings.Count(string(out), "\n") != 1 {
		t.Errorf("links in the container's namespace: %v\n%s", err, out)
	}
}

// TestModeHost: a container in network mode host (its init in the host's
// namespace) gets the host's hosts file under its own entries and the
// host's resolv.conf, loopback servers included, and nothing attached.
func TestModeHost(t *testing.T) {
	w := newWorld(t)
	hostHosts, err := os.ReadFile(hosts.DefaultHostHosts)
	if err != nil {
		t.Fatal(err)
	}
	wantResolv, err := hosts.BuildResolvConf(hosts.ResolvOptions{HostNetwork: true})
	if err != nil {
		t.Fatal(err)
	}
	w.checkLocal("web", w.hostProcess(), `{"version":1,"mode":"host","name":"web","extraHosts":["db.example:10.1.2.3"]}`, func(h, rc string) {
		if !strings.Contains(h, "10.1.2.3\tdb.example\n") {
			t.Errorf("hosts file lacks the extra host:\n%s", h)
		}
		for _, line := range strings.Split(string(hostHosts), "\n") {
			// Blank and comment-only lines ('#' and spaces) are padding to
			// the store, not entries.
			if strings.Trim(line, "# \t") != "" && !strings.Contains(h, line+"\n") {
				t.Errorf("hosts file lacks the host's line %q:\n%s", line, h)
			}
		}
		if rc != string(wantResolv) {
			t.Errorf("resolv.conf:\n%s\nwant the host's:\n%s", rc, wantResolv)
		}
	})
}
