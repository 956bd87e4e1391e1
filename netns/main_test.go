//go:build linux

package netns_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ocinet/ocinet/internal/reexec"
	"github.com/ocinet/ocinet/ocinettest"

	"github.com/ocinet/ocinet/internal/leakcheck"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
	"golang.org/x/sys/unix"
)

// holdParentEnv makes the test binary act as a process that holds a
// namespace and then waits to be killed (TestHoldDiesWithParent).
const holdParentEnv = "NETNS_TEST_HOLD_PARENT"

// processNS is this process's network and mount namespaces when the tests
// started, as readlink shows them ("net:[4026531840]").
var processNS [2]string

// mainThreadAwayEnv makes the test binary move its main thread into the
// namespace the variable names and open that namespace from another
// thread (TestOpenWhileMainThreadAway).
const mainThreadAwayEnv = "NETNS_TEST_MAIN_THREAD_AWAY"

func init() {
	if os.Getenv(mainThreadAwayEnv) != "" {
		runtime.LockOSThread() // TestMain runs on the main thread
	}
}

func TestMain(m *testing.M) {
	reexec.Run() // the holder
	if path := os.Getenv(holdParentEnv); path != "" {
		os.Exit(holdParent(path))
	}
	if path := os.Getenv(mainThreadAwayEnv); path != "" {
		os.Exit(mainThreadAway(path))
	}
	processNS[0], _ = os.Readlink("/proc/self/ns/net")
	processNS[1], _ = os.Readlink("/proc/self/ns/mnt")
	code := m.Run()
	testenv.CleanupBuilds()
	// Whatever the tests did, no thread of this process may be left in
	// another namespace.
	if code == 0 && os.Geteuid() == 0 {
		if foreign := foreignThreadsSettled(); len(foreign) > 0 {
			fmt.Fprintf(os.Stderr, "threads left in foreign namespaces after the tests: %v\n", foreign)
			code = 1
		}
	}
	os.Exit(code)
}

// holdParent holds the namespace at path, prints the holder's PID and
// blocks until stdin closes or the process is killed.
func holdParent(path string) int {
	proc, release, err := netns.Hold(context.Background(), path)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	defer release()
	fmt.Println(strings.TrimSuffix(strings.TrimPrefix(proc, "/proc/"), "/ns/net"))
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

// mainThreadAway enters the namespace at path on the main thread (as
// netlink's NewHandleAt may, for a moment, from a goroutine locked to it)
// and opens that namespace, and this thread's own, from another thread:
// the first is no host namespace, the second is. It prints what it found
// and returns the exit status.
func mainThreadAway(path string) int {
	if unix.Gettid() != os.Getpid() {
		fmt.Println("not on the main thread")
		return 2
	}
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Println("error:", err)
		return 2
	}
	defer unix.Close(self)
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Println("error:", err)
		return 2
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		fmt.Println("error: setns:", err)
		return 2
	}
	type opened struct{ container, own error }
	ch := make(chan opened)
	go func() { // not the main thread: the main goroutine holds it
		var o opened
		if ns, err := netns.Open(path); err != nil {
			o.container = err
		} else {
			ns.Close()
		}
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		_, o.own = netns.Open("/proc/thread-self/ns/net")
		ch <- o
	}()
	o := <-ch
	if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
		fmt.Println("error: setns back:", err)
		return 2
	}
	fmt.Printf("container: %v\nown: %v\n", o.container, o.own)
	if o.container != nil || !errors.Is(o.own, netns.ErrHostNamespace) {
		return 1
	}
	return 0
}

// foreignThreads lists the threads of this process whose network or mount
// namespace differs from the process's at start.
func foreignThreads() []string {
	tasks, _ := filepath.Glob("/proc/self/task/*")
	var out []string
	for _, task := range tasks {
		for i, kind := range []string{"net", "mnt"} {
			got, err := os.Readlink(filepath.Join(task, "ns", kind))
			if err != nil {
				continue // the thread just ended
			}
			if got != processNS[i] {
				out = append(out, filepath.Base(task)+":"+got)
			}
		}
	}
	return out
}

// foreignThreadsSettled is foreignThreads once threads that Do discarded
// have had up to two seconds to end: a goroutine that exits locked hands
// its result back a moment before the runtime ends its thread.
func foreignThreadsSettled() []string {
	deadline := time.Now().Add(2 * time.Second)
	for {
		f := foreignThreads()
		if len(f) == 0 || time.Now().After(deadline) {
			return f
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// name returns a namespace name unique to the test.
func name(t testing.TB) string {
	n := strings.ToLower(strings.NewReplacer("/", "-", "#", "-").Replace(t.Name()))
	if len(n) > 40 {
		n = n[:40]
	}
	return "ocinet-test-" + n + "-" + netns.RandomName()[4:12]
}

// testDir returns a fresh namespace directory of the test's own, registers
// the leak check on it, and unmounts and removes it when the test ends.
// Tests work in their own directory so that their namespaces never appear
// in /var/run/netns, where other packages' tests take snapshots.
func testDir(t testing.TB) string {
	t.Helper()
	testenv.RequireRoot(t)
	dir, err := os.MkdirTemp("", "ocinet-netns-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		_ = os.RemoveAll(dir)
	})
	ocinettest.CheckLeaks(t, leakcheck.Config{NetNSDir: dir})
	return dir
}

// createIn creates a namespace with a name of the test's in dir, and
// removes it when the test ends (if the test has not).
func createIn(t testing.TB, dir string) string {
	t.Helper()
	path, err := netns.Create(dir, name(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Remove(path); err != nil {
			t.Error(err)
		}
	})
	return path
}

// openTemp creates a namespace in a directory of the test's own and opens
// it; both are undone when the test ends.
func openTemp(t testing.TB) *netns.NetNS {
	t.Helper()
	path := createIn(t, testDir(t))
	ns, err := netns.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// start starts cmd and kills and reaps it when the test ends.
func start(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

// mounts counts the entries of /proc/self/mountinfo per mount point under
// (and including) dir.
func mounts(t testing.TB, dir string) map[string]int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out[mp]++
		}
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// nsLink returns what readlink shows for the namespace at path
// ("net:[4026532281]").
func nsLink(t testing.TB, path string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("net:[%d]", st.Ino)
}
