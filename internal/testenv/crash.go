package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Daemon is a private containerd of one test, which the test may crash
// and start again.
type Daemon struct {
	dir     string
	Address string // its socket
}

// CrashableContainerd starts a private containerd for the calling test
// alone (scripts/containerd.sh), stops it when the test ends (with the
// shims that served it) and returns it.
func CrashableContainerd(t testing.TB) *Daemon {
	t.Helper()
	requireContainerd(t)
	dir, addr, err := startContainerd()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stopContainerd(dir); err != nil {
			t.Error(err)
		}
	})
	return &Daemon{dir: dir, Address: addr}
}

// Kill crashes the daemon: SIGKILL to containerd, to every shim that
// serves it and to the process each shim started (a container's first
// process, whose death ends the rest of its PID namespace), then waits
// until they are all gone. It returns the containers' process IDs.
func (d *Daemon) Kill(t testing.TB) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dir, "containerd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	daemon, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("containerd.pid: %v", err)
	}
	procs, err := processes()
	if err != nil {
		t.Fatal(err)
	}
	var shims, kids, helpers []int
	for pid, p := range procs {
		if p.shimOf(d.Address) {
			shims = append(shims, pid)
		}
	}
	for pid, p := range procs {
		if !slices.Contains(shims, p.ppid) {
			continue
		}
		// A DNS responder that a hook started ends up a child of the
		// shim too: it is killed with the rest, not counted as a
		// container.
		if len(p.args) > 0 && strings.HasPrefix(p.args[0], "ocinet-") {
			helpers = append(helpers, pid)
			continue
		}
		kids = append(kids, pid)
	}
	all := append(append(append([]int{daemon}, shims...), kids...), helpers...)
	for _, pid := range all {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			t.Fatalf("kill %d: %v", pid, err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, pid := range all {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d still runs 20s after SIGKILL", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	slices.Sort(kids)
	return kids
}

// Restart starts the daemon again on the same root and state after Kill.
func (d *Daemon) Restart(t testing.TB) {
	t.Helper()
	script := filepath.Join(RepoRoot(), "scripts", "containerd.sh")
	out, err := exec.Command("bash", script, "start", d.dir).Output()
	if err != nil {
		t.Fatalf("restart containerd: %v", exitErr(err))
	}
	if addr := strings.TrimSpace(string(out)); addr != d.Address {
		t.Fatalf("restarted containerd listens on %s, not %s", addr, d.Address)
	}
}

// RuncRoot is where containerd's runc shim keeps runc's state, per
// containerd namespace.
const RuncRoot = "/run/containerd/runc"

// ForgetRuncState deletes runc's state of a container whose processes are
// gone (after Kill), as a reboot does by emptying /run: its state directory
// and its empty cgroups. containerd then finds the task dead and cannot
// run its poststop hook.
func ForgetRuncState(t testing.TB, namespace, id string) {
	t.Helper()
	dir := filepath.Join(RuncRoot, namespace, id)
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		CgroupPaths map[string]string `json:"cgroup_paths"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s/state.json: %v", dir, err)
	}
	for _, p := range st.CgroupPaths {
		if !strings.HasPrefix(p, "/sys/fs/cgroup/") {
			t.Fatalf("%s/state.json names cgroup %q outside /sys/fs/cgroup", dir, p)
		}
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			t.Fatalf("remove cgroup of %s: %v", id, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
}

type proc struct {
	ppid int
	args []string
}

// shimOf reports whether p is a containerd-shim-runc-v2 serving the daemon
// at address.
func (p proc) shimOf(address string) bool {
	if len(p.args) == 0 || filepath.Base(p.args[0]) != "containerd-shim-runc-v2" {
		return false
	}
	i := slices.Index(p.args, "-address")
	return i >= 0 && i+1 < len(p.args) && p.args[i+1] == address
}

// processes reads every process's parent and arguments from /proc.
func processes() (map[int]proc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	out := map[int]proc{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := statFields(pid)
		if len(f) < 2 {
			continue // gone
		}
		ppid, _ := strconv.Atoi(f[1])
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out[pid] = proc{ppid: ppid, args: strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")}
	}
	return out, nil
}

// alive reports whether pid runs: a zombie (killed, not yet reaped) does
// not count.
func alive(pid int) bool {
	f := statFields(pid)
	return len(f) > 0 && f[0] != "Z"
}

// statFields returns the fields of /proc/PID/stat after the command name
// (state, ppid, ...), or nil when the process is gone. The name, in
// parentheses, may hold anything, so the fields start after the last ')'.
func statFields(pid int) []string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	return strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
}
