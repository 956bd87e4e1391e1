package netns_test

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
)

// name returns a namespace name unique to the test.
func name(t *testing.T) string {
	return "ocinet-test-" + strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-") + "-" + netns.RandomName()[4:12]
}

func TestCreateCheckRemove(t *testing.T) {
	testenv.RequireRoot(t)
	path, err := netns.Create("", name(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Remove(path) })
	if err := netns.Check(path); err != nil {
		t.Fatalf("Check(%s): %v", path, err)
	}
	// A new namespace has only lo.
	out, err := exec.Command("ip", "netns", "exec", filepath.Base(path), "ip", "-o", "link").Output()
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(strings.TrimSpace(string(out)), "\n") + 1; lines != 1 || !strings.Contains(string(out), "lo:") {
		t.Errorf("new namespace links:\n%s", out)
	}
	if _, err := netns.Create("", filepath.Base(path)); !errors.Is(err, netns.ErrExists) {
		t.Errorf("Create over a live namespace: err = %v, want ErrExists", err)
	}
	if err := netns.Remove(path); err != nil {
		t.Fatal(err)
	}
	if !netns.Closed(path) {
		t.Error("Closed after Remove = false")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("file left after Remove: %v", err)
	}
	if err := netns.Remove(path); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if err := netns.Check(path); !errors.Is(err, netns.ErrNotFound) {
		t.Errorf("Check after Remove: err = %v, want ErrNotFound", err)
	}
}

func TestPinOutlivesProcess(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "unshare", "ip")
	// A process in its own network namespace, with a veth inside it; it
	// says "ready" once the veth exists.
	cmd := exec.Command("unshare", "--net", "sh", "-c", "ip link add v0 type veth peer name v1 && echo ready && exec sleep 60")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	buf := make([]byte, 6)
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("helper process: %q, %v", buf, err)
	}
	path, err := netns.Pin("", name(t), cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Remove(path) })
	// Pinning the same namespace to the same name again is a no-op.
	if again, err := netns.Pin("", filepath.Base(path), cmd.Process.Pid); err != nil || again != path {
		t.Errorf("second Pin = %q, %v", again, err)
	}
	// The host namespace under that name is refused.
	if _, err := netns.Pin("", filepath.Base(path), os.Getpid()); !errors.Is(err, netns.ErrHostNamespace) {
		t.Errorf("Pin of the host namespace: err = %v, want ErrHostNamespace", err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if err := netns.Check(path); err != nil {
		t.Fatalf("pinned namespace gone with its process: %v", err)
	}
	if out, err := exec.Command("ip", "netns", "exec", filepath.Base(path), "ip", "link", "del", "v0").CombinedOutput(); err != nil {
		t.Errorf("delete the veth inside the pinned namespace: %v: %s", err, out)
	}
	if err := netns.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func TestHostNamespaceRefused(t *testing.T) {
	testenv.RequireRoot(t)
	if err := netns.Check("/proc/self/ns/net"); !errors.Is(err, netns.ErrHostNamespace) {
		t.Errorf("Check(/proc/self/ns/net): err = %v, want ErrHostNamespace", err)
	}
	// PID 1's namespace file may be unreadable when the tests run inside a
	// container; where it is readable it must be refused too.
	if f, err := os.Open("/proc/1/ns/net"); err == nil {
		f.Close()
		if err := netns.Check("/proc/1/ns/net"); !errors.Is(err, netns.ErrHostNamespace) {
			t.Errorf("Check(/proc/1/ns/net): err = %v, want ErrHostNamespace", err)
		}
	}
	if err := netns.Check("/proc/self/ns/mnt"); !errors.Is(err, netns.ErrNotNetNS) {
		t.Errorf("Check(mnt namespace): err = %v, want ErrNotNetNS", err)
	}
	if err := netns.Check("/etc/hostname"); !errors.Is(err, netns.ErrNotNetNS) {
		t.Errorf("Check(plain file): err = %v, want ErrNotNetNS", err)
	}
}

func TestStaleFile(t *testing.T) {
	testenv.RequireRoot(t)
	dir := netns.DefaultDir
	n := name(t)
	if _, err := netns.Create(dir, n); err != nil { // also prepares the directory
		t.Fatal(err)
	}
	path := filepath.Join(dir, n)
	if err := netns.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(path) })
	if !netns.Closed(path) {
		t.Error("a plain file is not Closed")
	}
	// A stale plain file is reused by Create and removed by Remove.
	if _, err := netns.Create(dir, n); err != nil {
		t.Fatalf("Create over a stale file: %v", err)
	}
	if err := netns.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidNames(t *testing.T) {
	for _, n := range []string{"../x", "a/b", ".hidden", "", strings.Repeat("a", 201), "a b", "a\nb"} {
		if n != "" { // Create("") picks a random name
			if _, err := netns.Create(t.TempDir(), n); !errors.Is(err, netns.ErrInvalid) {
				t.Errorf("Create(%q): err = %v, want ErrInvalid", n, err)
			}
		}
		if _, err := netns.Pin(t.TempDir(), n, 1); !errors.Is(err, netns.ErrInvalid) {
			t.Errorf("Pin(%q): err = %v, want ErrInvalid", n, err)
		}
	}
	if _, err := netns.Pin("", "ok", 0); !errors.Is(err, netns.ErrInvalid) {
		t.Errorf("Pin(pid 0): err = %v", err)
	}
}
