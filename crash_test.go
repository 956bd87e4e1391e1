package ocinet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/internal/leakcheck"
	"github.com/ocinet/ocinet/netns"
	"github.com/ocinet/ocinet/portmap"
)

// childEnv carries a crashChild's instructions (JSON) from TestCrashSweep
// to the re-executed test binary.
const childEnv = "OCINET_TEST_CHILD"

// childSpec says what a child does: attach or detach one container.
type childSpec struct {
	Op         string   `json:"op"` // "attach" or "detach"
	State      string   `json:"state"`
	ConfDir    string   `json:"confDir"`
	RuntimeDir string   `json:"runtimeDir"`
	PluginDirs []string `json:"pluginDirs"`
	ID         string   `json:"id"`
	NetNS      string   `json:"netns"`
	Networks   []string `json:"networks"`
	Ports      []string `json:"ports"`
}

// crashChild runs in the re-executed test binary: it does what spec says
// and is expected to be killed at the step ocinet.CrashEnv names. It
// returns the exit status.
func crashChild(spec string) int {
	var c childSpec
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	m, err := ocinet.New(c.State, managerOptions(c.ConfDir, c.RuntimeDir, c.PluginDirs)...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	ctx := context.Background()
	switch c.Op {
	case "attach":
		req := ocinet.AttachRequest{ID: c.ID, NetNS: c.NetNS, Networks: c.Networks}
		for _, s := range c.Ports {
			p, err := portmap.Parse(s)
			if err != nil {
				fmt.Fprintln(os.Stderr, "child:", err)
				return 2
			}
			req.Ports = append(req.Ports, p)
		}
		_, err = m.Attach(ctx, req)
	case "detach":
		err = m.Detach(ctx, c.ID)
	default:
		err = fmt.Errorf("unknown op %q", c.Op)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// TestCrashSweep kills the process that attaches, and the one that
// detaches, with SIGKILL at each named step in turn (every journal write,
// and before and after every plugin of both networks' chains), then runs
// GC: after it, nothing of the container is left. Each step is tried twice:
// with the container's namespace still there (a pinned namespace, as the
// hook keeps), and with it gone too (the container died with the process).
func TestCrashSweep(t *testing.T) {
	e := newEnv(t)
	crashNet := e.network(ocinet.NetworkConfig{Name: "ocit-crash", Subnet: netip.MustParsePrefix("10.213.20.0/24"), Internal: true})
	networks := []string{"bridge", "ocit-crash"}
	ports := []string{"127.0.0.1:28110:80"}

	// The steps, as this chain passes them.
	var steps []string
	var mu sync.Mutex // the loopback's steps come from a goroutine of their own
	restore := ocinet.SetCrashHook(func(s string) {
		mu.Lock()
		steps = append(steps, s)
		mu.Unlock()
	})
	ns := e.ns()
	e.attach(ocinet.AttachRequest{ID: "crash-probe", NetNS: ns, Networks: networks, Ports: []portmap.Mapping{mustParse(t, ports[0])}})
	nAttach := len(steps)
	e.detach("crash-probe")
	restore()
	attachSteps, detachSteps := steps[:nAttach], steps[nAttach:]
	t.Logf("%d attach steps %v", len(attachSteps), attachSteps)
	t.Logf("%d detach steps %v", len(detachSteps), detachSteps)
	if len(attachSteps) < 10 || len(detachSteps) < 10 || !slices.Contains(attachSteps, "attach:planned") || !slices.Contains(attachSteps, "attach:adding") || !slices.Contains(detachSteps, "detach:detaching") {
		t.Fatalf("too few steps seen: the crash points are not wired")
	}
	cfg := leakcheck.Config{StateDirs: []string{e.state}, IgnoreBridges: []string{testBridge}}
	baseline, err := leakcheck.Take(cfg)
	if err != nil {
		t.Fatal(err)
	}

	trial := 0
	start := time.Now()
	for _, gone := range []bool{false, true} {
		for _, op := range []string{"attach", "detach"} {
			list := attachSteps
			if op == "detach" {
				list = detachSteps
			}
			for i, step := range list {
				trial++
				id := fmt.Sprintf("crash-%d", trial)
				name := fmt.Sprintf("%s at %s, namespace gone %v", op, step, gone)
				crashTrial(t, e, name, childSpec{
					Op: op, State: e.state, ConfDir: e.confDir, RuntimeDir: e.runtimeDir, PluginDirs: e.pluginDirs,
					ID: id, Networks: networks, Ports: ports,
				}, step, gone, recordAfterCrash(op, list, i))
				if t.Failed() {
					t.Fatalf("stopping after the first failed trial (%s)", name)
				}
				after, err := leakcheck.Take(cfg)
				if err != nil {
					t.Fatal(err)
				}
				if leaks := ours(leakcheck.Diff(baseline, after), id, e.state, "10.213.", "ocinet-del-"); len(leaks) > 0 {
					t.Fatalf("%s: left behind after GC:\n  %s", name, strings.Join(leaks, "\n  "))
				}
				for _, br := range []string{testBridge, crashNet.Bridge} {
					if ports := bridgePortsSettled(br); len(ports) > 0 {
						t.Fatalf("%s: bridge %s still has ports %v after GC", name, br, ports)
					}
				}
			}
		}
	}
	elapsed := time.Since(start)
	t.Logf("crash sweep: %d trials (%d steps x 2) in %v, %v per trial", trial, len(steps), elapsed.Round(time.Millisecond), (elapsed / time.Duration(trial)).Round(time.Millisecond))
	if trial < 50 {
		t.Errorf("only %d trials; the sweep needs at least 50", trial)
	}
}

// What the journal must hold for an attachment after a crash.
const (
	noRecord         = "no record"
	incompleteRecord = "an incomplete record"
	completeRecord   = "a complete record"
	// maybeRecord: the first record is being written (while the
	// loopback comes up): none, or an incomplete one.
	maybeRecord = "no record or an incomplete one"
)

// recordAfterCrash says what a crash at steps[i] of op must leave in the
// journal: during attach, nothing before the first record's write starts,
// after the ports are reserved (attach:planned, attach:reserved); maybe a
// record while it is written and the loopback comes up (the networks'
// ADDs get going meanwhile but make nothing until both are done), and at
// the loopback's own steps, which run beside the plan, the reservation
// and the write, wherever the probe saw them; an incomplete record once
// it is written (attach:adding); a complete one once committed
// (attach:attached).
// During detach, an incomplete record at every step, since the first
// write (detach:detaching) comes before any DEL and the record goes last.
func recordAfterCrash(op string, steps []string, i int) string {
	if op == "detach" {
		return incompleteRecord
	}
	switch reserved, adding := slices.Index(steps, "attach:reserved"), slices.Index(steps, "attach:adding"); {
	case strings.HasSuffix(steps[i], ":ADD:lo:loopback") && i < adding:
		return maybeRecord
	case i <= reserved:
		return noRecord
	case i < adding:
		return maybeRecord
	case steps[i] == "attach:attached":
		return completeRecord
	default:
		return incompleteRecord
	}
}

// crashTrial runs one child that is killed at step, checks what the
// journal holds (want, see recordAfterCrash), then runs GC.
func crashTrial(t *testing.T, e *env, name string, c childSpec, step string, gone bool, want string) {
	t.Helper()
	ctx := context.Background()
	path, err := netns.Create("", "")
	if err != nil {
		t.Fatal(err)
	}
	defer netns.Remove(path)
	c.NetNS = path
	if c.Op == "detach" {
		req := ocinet.AttachRequest{ID: c.ID, NetNS: path, Networks: c.Networks}
		for _, s := range c.Ports {
			req.Ports = append(req.Ports, mustParse(t, s))
		}
		e.attach(req)
	}
	spec, _ := json.Marshal(c)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec), ocinet.CrashEnv+"="+step)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("%s: the child was not killed at the step: %v: %s", name, err, stderr.Bytes())
		return
	}
	got := noRecord
	if a, err := e.m.Get(c.ID); err == nil {
		got = incompleteRecord
		if a.Complete {
			got = completeRecord
		}
	} else if !errors.Is(err, ocinet.ErrNotFound) {
		t.Errorf("%s: reading the journal after the crash: %v", name, err)
	}
	if got != want && (want != maybeRecord || got == completeRecord) {
		t.Errorf("%s: the journal holds %s after the crash, want %s", name, got, want)
	}
	// Before the ports are reserved (attach:planned) a crash leaves
	// nothing for GC to mention.
	reserved, _ := e.m.Ports().Reserved(c.ID)
	leftNothing := got == noRecord && len(reserved) == 0
	if gone {
		if err := netns.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
	report, err := e.m.GC(ctx, func(string) bool { return false }, ocinet.GCOptions{})
	if err != nil {
		t.Errorf("%s: GC: %v", name, err)
		return
	}
	if !leftNothing && !slices.Contains(report.Finished, c.ID) && !slices.Contains(report.Released, c.ID) && !slices.Contains(report.Ports, c.ID) {
		t.Errorf("%s: GC did not mention %s: %+v", name, c.ID, report)
	}
	if list, _ := e.m.List(); len(list) != 0 {
		t.Errorf("%s: records after GC: %+v", name, list)
	}
	if !gone {
		if got := addrsIn(t, path); strings.Contains(got, "eth") {
			t.Errorf("%s: interfaces left in the namespace after GC:\n%s", name, got)
		}
	}
}

// ours keeps the leak lines that can be told to be this test's: those that
// name one of markers (its container ID, its state root, its subnets).
// Other tests on the same host come and go meanwhile; the leak check at
// the end of the test looks at everything.
func ours(leaks []string, markers ...string) []string {
	var out []string
	for _, l := range leaks {
		for _, m := range markers {
			if strings.Contains(l, m) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// bridgePortsSettled returns the ports of bridge br once the kernel is done
// reaping namespaces: a crash before the lease (no address recorded) leaves
// a veth that only the namespace's end removes, and the kernel destroys a
// namespace, and the veth with it, asynchronously, tens of milliseconds
// after its last reference goes. It waits at most three seconds.
func bridgePortsSettled(br string) []os.DirEntry {
	deadline := time.Now().Add(3 * time.Second)
	for {
		ports, _ := os.ReadDir(filepath.Join("/sys/class/net", br, "brif"))
		if len(ports) == 0 || time.Now().After(deadline) {
			return ports
		}
		time.Sleep(20 * time.Millisecond)
	}
}
