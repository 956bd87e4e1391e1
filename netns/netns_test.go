//go:build linux

package netns_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocinet/ocinet/internal/leakcheck"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
	"github.com/ocinet/ocinet/ocinettest"
	"golang.org/x/sys/unix"
)

func TestCreateOpenRemove(t *testing.T) {
	testenv.RequireTools(t, "nsenter", "ip")
	dir := testDir(t)
	path := createIn(t, dir)
	if want := filepath.Join(dir, filepath.Base(path)); path != want {
		t.Errorf("Create returned %s, want %s", path, want)
	}
	if err := netns.Check(path); err != nil {
		t.Fatalf("Check(%s): %v", path, err)
	}
	if netns.Closed(path) {
		t.Error("Closed on a live namespace = true")
	}
	ns, err := netns.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if ns.Path() != path {
		t.Errorf("Path() = %s, want %s", ns.Path(), path)
	}
	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ns.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// A new namespace has only lo, and it is down.
	out, err := exec.Command("nsenter", "--net="+path, "ip", "-o", "link").Output()
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], " lo: ") {
		t.Errorf("new namespace links:\n%s", out)
	}
	if _, err := netns.Create(dir, filepath.Base(path)); !errors.Is(err, netns.ErrExists) {
		t.Errorf("Create over a live namespace: err = %v, want ErrExists", err)
	}
	if err := netns.Remove(path); err != nil {
		t.Fatal(err)
	}
	if !netns.Closed(path) {
		t.Error("Closed after Remove = false")
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file left after Remove: %v", err)
	}
	if n := mounts(t, path)[path]; n != 0 {
		t.Errorf("%d mounts left on %s", n, path)
	}
	if err := netns.Remove(path); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if err := netns.Check(path); !errors.Is(err, netns.ErrNotFound) {
		t.Errorf("Check after Remove: err = %v, want ErrNotFound", err)
	}
	if _, err := netns.Open(path); !errors.Is(err, netns.ErrNotFound) {
		t.Errorf("Open after Remove: err = %v, want ErrNotFound", err)
	}
}

func TestRandomNames(t *testing.T) {
	dir := testDir(t)
	a, err := netns.Create(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Remove(a) })
	b, err := netns.Create(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Remove(b) })
	for _, p := range []string{a, b} {
		if !strings.HasPrefix(filepath.Base(p), "cni-") || len(filepath.Base(p)) != len("cni-")+36 {
			t.Errorf("random name %q is not cni-<uuid>", filepath.Base(p))
		}
	}
	if a == b || nsLink(t, a) == nsLink(t, b) {
		t.Errorf("two Creates gave %s (%s) and %s (%s)", a, nsLink(t, a), b, nsLink(t, b))
	}
	for _, p := range []string{a, b} {
		if err := netns.Remove(p); err != nil {
			t.Error(err)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want error
	}{
		{filepath.Join(dir, "missing"), netns.ErrNotFound},
		{filepath.Join(plain, "below-a-file"), netns.ErrNotFound},
		{plain, netns.ErrNotNetNS},
		{dir, netns.ErrNotNetNS},
		{fifo, netns.ErrNotNetNS}, // refused without blocking on the FIFO
		{"/proc/self/ns/mnt", netns.ErrNotNetNS},
		{"/proc/self/ns/net", netns.ErrHostNamespace},
		{"/proc/thread-self/ns/net", netns.ErrHostNamespace},
		{"", netns.ErrInvalid},
	} {
		if _, err := netns.Open(tc.path); !errors.Is(err, tc.want) {
			t.Errorf("Open(%q): err = %v, want %v", tc.path, err, tc.want)
		}
		if err := netns.Check(tc.path); !errors.Is(err, tc.want) {
			t.Errorf("Check(%q): err = %v, want %v", tc.path, err, tc.want)
		}
	}
}

func TestHostNamespaceRefused(t *testing.T) {
	dir := testDir(t)
	// PID 1's namespace file may be unreadable when the tests run inside a
	// container; where it is readable it is the host's.
	hosts := []string{"/proc/self/ns/net"}
	if f, err := os.Open("/proc/1/ns/net"); err == nil {
		f.Close()
		hosts = append(hosts, "/proc/1/ns/net")
	}
	for _, h := range hosts {
		if err := netns.Check(h); !errors.Is(err, netns.ErrHostNamespace) {
			t.Errorf("Check(%s): err = %v, want ErrHostNamespace", h, err)
		}
		_, err := netns.Open(h)
		if !errors.Is(err, netns.ErrHostNamespace) || !strings.Contains(err.Error(), h) {
			t.Errorf("Open(%s): err = %v, want ErrHostNamespace naming the path", h, err)
		}
	}
	// Pinning the test's own process pins the host's namespace: refused,
	// and nothing is left in the directory.
	if _, err := netns.Pin(dir, name(t), os.Getpid()); !errors.Is(err, netns.ErrHostNamespace) {
		t.Errorf("Pin(own pid): err = %v, want ErrHostNamespace", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("refused Pin left %d entries in %s", len(ents), dir)
	}
}

// A container's namespace is no host namespace even while the process's
// main thread is in it (netlink enters a namespace on whatever thread its
// goroutine is locked to, the main one included, and /proc/self/ns/net
// then names the container's): Open judges by the namespace the process
// started in.
func TestOpenWhileMainThreadAway(t *testing.T) {
	path := createIn(t, testDir(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), mainThreadAwayEnv+"="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("opening a namespace while the main thread is in it: %v\n%s", err, out)
	}
}

func TestPinOutlivesProcess(t *testing.T) {
	testenv.RequireTools(t, "unshare", "nsenter", "ip")
	dir := testDir(t)
	// A process in its own network namespace, with a veth inside it; it
	// says "ready" once the veth exists.
	cmd := exec.Command("unshare", "--net", "sh", "-c", "ip link add v0 type veth peer name v1 && echo ready && exec sleep 60")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start(t, cmd)
	buf := make([]byte, 6)
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("helper process: %q, %v", buf, err)
	}
	procNS := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/net"
	want := nsLink(t, procNS)
	path, err := netns.Pin(dir, name(t), cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Remove(path) })
	if got := nsLink(t, path); got != want {
		t.Errorf("pinned %s, the process is in %s", got, want)
	}
	// Pinning the same namespace to the same name again is a no-op.
	if again, err := netns.Pin(dir, filepath.Base(path), cmd.Process.Pid); err != nil || again != path {
		t.Errorf("second Pin = %q, %v", again, err)
	}
	if n := mounts(t, path)[path]; n != 1 {
		t.Errorf("%d mounts on %s after pinning twice, want 1", n, path)
	}
	// Another namespace under that name is refused.
	other := createIn(t, dir)
	if _, err := netns.Pin(dir, filepath.Base(other), cmd.Process.Pid); !errors.Is(err, netns.ErrExists) {
		t.Errorf("Pin over another namespace: err = %v, want ErrExists", err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if _, err := os.Stat(procNS); err == nil {
		t.Fatalf("%s still exists after the process was reaped", procNS)
	}
	if err := netns.Check(path); err != nil {
		t.Fatalf("pinned namespace gone with its process: %v", err)
	}
	if out, err := exec.Command("nsenter", "--net="+path, "ip", "link", "del", "v0").CombinedOutput(); err != nil {
		t.Errorf("delete the veth inside the pinned namespace: %v: %s", err, out)
	}
	if out, err := exec.Command("nsenter", "--net="+path, "ip", "-o", "link").Output(); err != nil || strings.Contains(string(out), "v1") {
		t.Errorf("links after deleting the veth: %v\n%s", err, out)
	}
	for _, p := range []string{path, other} {
		if err := netns.Remove(p); err != nil {
			t.Error(err)
		}
	}
	if _, err := netns.Pin(dir, name(t), cmd.Process.Pid); !errors.Is(err, netns.ErrNotFound) {
		t.Errorf("Pin of a reaped pid: err = %v, want ErrNotFound", err)
	}
}

func TestRemoveWhileInUse(t *testing.T) {
	testenv.RequireTools(t, "nsenter", "sleep")
	dir := testDir(t)
	path := createIn(t, dir)
	want := nsLink(t, path)

	// A process inside the namespace: the file goes, the namespace stays
	// the process's until it exits.
	cmd := exec.Command("nsenter", "--net="+path, "sleep", "60")
	start(t, cmd)
	procNS := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/net"
	deadline := time.Now().Add(5 * time.Second)
	for nsLinkOrEmpty(procNS) != want {
		if time.Now().After(deadline) {
			t.Fatalf("the process did not enter %s", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// An open handle holds it too.
	held, err := netns.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := netns.Remove(path); err != nil {
		t.Fatalf("Remove while a process is inside: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file left: %v", err)
	}
	if got := nsLinkOrEmpty(procNS); got != want {
		t.Errorf("the process's namespace is %q after Remove, want %s", got, want)
	}
	if err := held.Do(func() error { return nil }); err != nil {
		t.Errorf("Do in a removed but held namespace: %v", err)
	}
}

func nsLinkOrEmpty(path string) string {
	s, _ := os.Readlink(path)
	return s
}

func TestRemoveStackedMounts(t *testing.T) {
	dir := testDir(t)
	path := createIn(t, dir)
	// Two more mounts on the same file, as racing tools leave: one lazy
	// unmount leaves the file a mount point, and unlink fails with EBUSY
	// until all of them are off.
	for i := 0; i < 2; i++ {
		if err := unix.Mount(path, path, "none", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := mounts(t, path)[path]; n < 3 {
		t.Fatalf("%d mounts on %s, want at least 3", n, path)
	}
	// How long this takes is BenchmarkRemoveStackedMounts's to say.
	if err := netns.Remove(path); err != nil {
		t.Fatalf("Remove of a file mounted three times: %v", err)
	}
	if n := mounts(t, path)[path]; n != 0 {
		t.Errorf("%d mounts left on %s", n, path)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file left: %v", err)
	}
}

func TestRemoveInPrivateMountNamespace(t *testing.T) {
	testenv.RequireTools(t, "unshare", "sleep")
	dir := testDir(t)
	path := createIn(t, dir)
	// A process in a mount namespace of its own, with private propagation:
	// its copy of the bind mount does not go when the host's does.
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "60")
	start(t, cmd)
	deadline := time.Now().Add(5 * time.Second)
	for nsLinkOrEmpty("/proc/"+strconv.Itoa(cmd.Process.Pid)+"/ns/mnt") == processNS[1] {
		if time.Now().After(deadline) {
			t.Fatal("unshare did not enter a new mount namespace")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := netns.Remove(path); err != nil {
		t.Fatalf("Remove while another mount namespace holds a copy: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file left: %v", err)
	}
}

func TestRemoveLeavesOtherFilesAlone(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(data, []byte("not a namespace"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{data, sub} {
		if err := netns.Remove(p); !errors.Is(err, netns.ErrNotNetNS) {
			t.Errorf("Remove(%s): err = %v, want ErrNotNetNS", p, err)
		}
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("Remove(%s) touched it: %v", p, err)
		}
	}
	if err := netns.Remove(""); !errors.Is(err, netns.ErrInvalid) {
		t.Errorf("Remove(\"\"): err = %v, want ErrInvalid", err)
	}
}

func TestStaleFile(t *testing.T) {
	dir := testDir(t)
	n := name(t)
	path := filepath.Join(dir, n)
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(path) })
	if !netns.Closed(path) {
		t.Error("a plain file is not Closed")
	}
	if err := netns.Check(path); !errors.Is(err, netns.ErrNotNetNS) {
		t.Errorf("Check(plain file): err = %v, want ErrNotNetNS", err)
	}
	// Remove deletes a stale file.
	if err := netns.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale file left by Remove: %v", err)
	}
	// Create reuses one.
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if _, err := netns.Create(dir, n); err != nil {
		t.Fatalf("Create over a stale file: %v", err)
	}
	if err := netns.Check(path); err != nil {
		t.Error(err)
	}
	if err := netns.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidNames(t *testing.T) {
	for _, n := range []string{"../x", "a/b", ".hidden", ".", "..", "", strings.Repeat("a", 201), "a b", "a\nb", "a\x00b"} {
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
	// A container ID is a valid name.
	dir := testDir(t)
	id := "default-" + strings.Repeat("0123456789abcdef", 4)
	path, err := netns.Create(dir, id)
	if err != nil {
		t.Fatalf("Create(%q): %v", id, err)
	}
	if err := netns.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentCreateRemove creates and removes 50 namespaces at once in a
// directory that does not exist yet, so that the creators also race to
// make it a shared mount.
func TestConcurrentCreateRemove(t *testing.T) {
	testenv.RequireRoot(t)
	base, err := os.MkdirTemp("", "ocinet-netns-")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "netns")
	t.Cleanup(func() {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		_ = os.RemoveAll(base)
	})
	ocinettest.CheckLeaks(t, leakcheck.Config{NetNSDir: dir})
	const n = 50
	paths := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths[i], errs[i] = netns.Create(dir, fmt.Sprintf("%s-%02d", name(t), i))
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, p := range paths {
			if p != "" {
				_ = netns.Remove(p)
			}
		}
	})
	inodes := map[string]string{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Create %d: %v", i, err)
		}
		link := nsLink(t, paths[i])
		if other, dup := inodes[link]; dup {
			t.Errorf("%s and %s are the same namespace %s", other, paths[i], link)
		}
		inodes[link] = paths[i]
	}
	m := mounts(t, dir)
	if m[dir] != 1 {
		t.Errorf("%d mounts on the directory %s, want exactly one self-mount", m[dir], dir)
	}
	for _, p := range paths {
		if m[p] != 1 {
			t.Errorf("%d mounts on %s, want 1", m[p], p)
		}
	}
	if len(m) != n+1 {
		t.Errorf("%d mount points under %s, want %d", len(m), dir, n+1)
	}
	if shared := sharedMount(t, dir); !shared {
		t.Errorf("%s is not a shared mount", dir)
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = netns.Remove(paths[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Remove %d: %v", i, err)
		}
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("left in %s: %d entries, %v", dir, len(ents), err)
	}
	m = mounts(t, dir)
	if len(m) != 1 || m[dir] != 1 {
		t.Errorf("mounts left under %s: %v", dir, m)
	}
}

// sharedMount reports whether the mount on dir has shared propagation.
func sharedMount(t testing.TB, dir string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 6 && unescapeMount(f[4]) == dir {
			for _, opt := range f[6:] {
				if opt == "-" {
					break
				}
				if strings.HasPrefix(opt, "shared:") {
					return true
				}
			}
		}
	}
	return false
}
