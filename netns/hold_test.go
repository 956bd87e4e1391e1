//go:build linux

package netns_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
	"golang.org/x/sys/unix"
)

// holderArg0 is the argv[0] of the package's holder processes.
const holderArg0 = "ocinet-netns-holder"

// holders returns the PIDs of this process's holder children.
func holders(t testing.TB) []int {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, st := range stats {
		data, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces: split after ')'.
		rest := string(data[strings.LastIndexByte(string(data), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 || f[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(st), "cmdline"))
		if strings.HasPrefix(string(cmdline), holderArg0+"\x00") {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(st)))
			out = append(out, pid)
		}
	}
	return out
}

// pidOf returns the PID in a /proc/<pid>/ns/net path.
func pidOf(t testing.TB, proc string) int {
	t.Helper()
	s, ok := strings.CutPrefix(proc, "/proc/")
	if !ok {
		t.Fatalf("holder path %q is not under /proc/", proc)
	}
	s, ok = strings.CutSuffix(s, "/ns/net")
	pid, err := strconv.Atoi(s)
	if !ok || err != nil {
		t.Fatalf("holder path %q is not /proc/<pid>/ns/net", proc)
	}
	return pid
}

func TestHold(t *testing.T) {
	dir := testDir(t)
	path := createIn(t, dir)
	want := nsLink(t, path)

	proc, release, err := netns.Hold(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	pid := pidOf(t, proc)
	if got := nsLink(t, proc); got != want {
		t.Errorf("holder %s is in %s, want %s", proc, got, want)
	}
	if err := netns.Check(proc); err != nil {
		t.Errorf("Check(%s): %v", proc, err)
	}
	if got := holders(t); len(got) != 1 || got[0] != pid {
		t.Errorf("holder children = %v, want [%d]", got, pid)
	}
	// The holder keeps none of this process's standard streams.
	for fd := 0; fd <= 2; fd++ {
		if target, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(fd)); target != os.DevNull {
			t.Errorf("holder fd %d is %q, want %s", fd, target, os.DevNull)
		}
	}
	// The namespace lives on in the holder after its file is removed.
	if err := netns.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got := nsLinkOrEmpty(proc); got != want {
		t.Errorf("after Remove the holder is in %q, want %s", got, want)
	}

	release() // how long it takes is BenchmarkHold's to say

	if _, err := unix.Wait4(pid, nil, unix.WNOHANG, nil); err != unix.ECHILD {
		t.Errorf("holder %d not reaped by release: wait4 = %v, want ECHILD", pid, err)
	}
	if err := unix.Kill(pid, 0); err != unix.ESRCH {
		t.Errorf("holder %d after release: kill(0) = %v, want ESRCH", pid, err)
	}
	if !netns.Closed(proc) {
		t.Errorf("%s still holds a namespace after release", proc)
	}
	release() // a second release does nothing
}

func TestHoldRefuses(t *testing.T) {
	testenv.RequireRoot(t)
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want error
	}{
		{"/proc/self/ns/net", netns.ErrHostNamespace},
		{"/proc/" + strconv.Itoa(os.Getpid()) + "/ns/net", netns.ErrHostNamespace},
		{filepath.Join(t.TempDir(), "missing"), netns.ErrNotFound},
		{plain, netns.ErrNotNetNS},
	} {
		proc, release, err := netns.Hold(context.Background(), tc.path)
		if !errors.Is(err, tc.want) {
			t.Errorf("Hold(%s) = %q, %v; want %v", tc.path, proc, err, tc.want)
		}
		if release != nil {
			release()
		}
	}
	if h := holders(t); len(h) != 0 {
		t.Errorf("refused holds left holders %v", h)
	}
}

func TestHoldCanceled(t *testing.T) {
	dir := testDir(t)
	path := createIn(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := netns.Hold(ctx, path); !errors.Is(err, context.Canceled) {
		t.Errorf("Hold with a canceled context: err = %v, want context.Canceled", err)
	}
	if h := holders(t); len(h) != 0 {
		t.Errorf("a canceled Hold left holders %v", h)
	}
	if err := netns.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// TestHoldDiesWithParent kills a process that holds a namespace and checks
// that its holder ends too.
func TestHoldDiesWithParent(t *testing.T) {
	dir := testDir(t)
	path := createIn(t, dir)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	parent := exec.Command(exe, "-test.run=^$")
	parent.Env = append(os.Environ(), holdParentEnv+"="+path)
	stdin, err := parent.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start(t, parent)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("parent: %q, %v", line, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("parent said %q", line)
	}
	proc := "/proc/" + strconv.Itoa(pid) + "/ns/net"
	if got, want := nsLinkOrEmpty(proc), nsLink(t, path); got != want {
		t.Fatalf("holder %d is in %q, want %s", pid, got, want)
	}
	if err := parent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = unix.Kill(pid, unix.SIGKILL)
			t.Fatalf("holder %d outlived its parent by 5 s", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid is a process that has not exited (a zombie
// waiting for its new parent to reap it has exited).
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// TestHoldContivLikePlugin runs, through libcni, a CNI plugin that accepts
// only /proc/<pid>/ns/net (as contiv's does) against a namespace made by
// Create: it refuses the named path with "invalid nw name space", and works
// through Hold.
func TestHoldContivLikePlugin(t *testing.T) {
	dir := testDir(t)
	pluginDir := t.TempDir()
	if err := os.Symlink(testenv.Build(t, "./examples/pid-path-plugin/plugin"), filepath.Join(pluginDir, "pid-only")); err != nil {
		t.Fatal(err)
	}
	path := createIn(t, dir)
	ctx := context.Background()
	cni := libcni.NewCNIConfigWithCacheDir([]string{pluginDir}, t.TempDir(), nil)
	list, err := libcni.ConfListFromBytes([]byte(`{"cniVersion": "1.0.0", "name": "pid-only", "plugins": [{"type": "pid-only"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	rt := func(nspath string) *libcni.RuntimeConf {
		return &libcni.RuntimeConf{ContainerID: "netns-test-" + netns.RandomName()[4:12], NetNS: nspath, IfName: "eth0"}
	}

	// The named path: refused, and the namespace is untouched.
	_, err = cni.AddNetworkList(ctx, list, rt(path))
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || cniErr.Code != types.ErrInvalidNetNS || cniErr.Msg != "invalid nw name space" || cniErr.Details != path {
		t.Fatalf("ADD with %s: err = %v, want the plugin's \"invalid nw name space\" (code %d) for that path", path, err, types.ErrInvalidNetNS)
	}
	if loUp(t, path) {
		t.Fatal("lo is up after the refused ADD")
	}

	// Through Hold: the plugin gets /proc/<pid>/ns/net and acts in the namespace.
	proc, release, err := netns.Hold(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	conf := rt(proc)
	res, err := cni.AddNetworkList(ctx, list, conf)
	if err != nil {
		t.Fatalf("ADD with %s: %v", proc, err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Interfaces) != 1 || r.Interfaces[0].Sandbox != proc {
		t.Errorf("ADD result interfaces = %+v, want lo in %s", r.Interfaces, proc)
	}
	if !loUp(t, path) {
		t.Error("lo is down in the namespace after the ADD through the holder")
	}
	if err := cni.DelNetworkList(ctx, list, conf); err != nil {
		t.Errorf("DEL with %s: %v", proc, err)
	}
	release()
	if h := holders(t); len(h) != 0 {
		t.Errorf("holders left after release: %v", h)
	}
	if err := netns.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// loUp reports whether lo is up in the namespace at path.
func loUp(t *testing.T, path string) bool {
	t.Helper()
	ns, err := netns.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var up bool
	if err := ns.Do(func() error {
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		up = lo.Flags&net.FlagUp != 0
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return up
}
