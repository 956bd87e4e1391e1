package hook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hook"
	"github.com/ocinet/ocinet/internal/leakcheck"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
	"github.com/ocinet/ocinet/ocinettest"
	"github.com/ocinet/ocinet/sandbox"
)

const testBridge = "ocihook0"

// world is a hook configuration on fresh directories, with a leak check.
type world struct {
	t       *testing.T
	cfg     hook.Config
	plugins string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	installed := testenv.RequirePlugins(t)
	state := t.TempDir()
	ocinettest.CheckLeaks(t, leakcheck.Config{StateDirs: []string{state}, IgnoreBridges: []string{testBridge}})
	testenv.RemoveLinkAtEnd(t, testBridge)
	// A plugin directory of links, so a test can take plugins away.
	plugins := t.TempDir()
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap", "firewall", "tuning"} {
		if err := os.Symlink(filepath.Join(installed, p), filepath.Join(plugins, p)); err != nil {
			t.Fatal(err)
		}
	}
	confDir := t.TempDir()
	// The default network, on a bridge of this package's own.
	m, err := ocinet.New(state, ocinet.WithCNIConfDir(confDir), ocinet.WithPluginDirs(plugins), ocinet.WithDefaultBridge(testBridge))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Network(ocinet.DefaultNetworkName); err != nil {
		t.Fatal(err)
	}
	return &world{t: t, plugins: plugins, cfg: hook.Config{StateDir: state, CNIConfDir: confDir, PluginDirs: []string{plugins}, Namespace: "test"}}
}

// container starts a process in a new network namespace, as runc's init
// is when createRuntime runs, and returns its pid.
func (w *world) container() int {
	w.t.Helper()
	cmd := exec.Command("unshare", "--net", "sh", "-c", "echo ready; exec sleep 60")
	out, err := cmd.StdoutPipe()
	if err != nil {
		w.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	buf := make([]byte, 6)
	if _, err := io.ReadFull(out, buf); err != nil {
		w.t.Fatal(err)
	}
	return cmd.Process.Pid
}

func state(id, status string, pid int, req string) string {
	st := hook.State{OCIVersion: "1.0.2", ID: id, Status: status, Pid: pid, Bundle: "/nonexistent"}
	if req != "" {
		st.Annotations = map[string]string{hook.Annotation: req}
	}
	b, _ := json.Marshal(st)
	return string(b)
}

func (w *world) run(event, stdin string) (string, error) {
	var stderr bytes.Buffer
	err := hook.Run(context.Background(), event, strings.NewReader(stdin), &stderr, w.cfg)
	return stderr.String(), err
}

// files lists every file under dir with its size, for "nothing changed".
func files(t *testing.T, dir string) []string {
	var out []string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && p != dir {
			out = append(out, fmt.Sprintf("%s %d", strings.TrimPrefix(p, dir), info.Size()))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func TestHostileInputsRefused(t *testing.T) {
	w := newWorld(t)
	pid := w.container()
	ok := `{"version":1}`
	// Each case must be refused for the reason it names: want is a part of
	// the message, or a sentinel the error must wrap besides ErrInvalid.
	for _, tc := range []struct {
		name, event, stdin string
		want               any
	}{
		{"unknown event", "prestart", state("web", "creating", pid, ok), `unknown event "prestart"`},
		{"empty state", hook.EventCreateRuntime, ``, "state: EOF"},
		{"state not json", hook.EventCreateRuntime, `id=web`, "state: invalid character"},
		{"unknown state field", hook.EventCreateRuntime, `{"id":"web","pid":1,"status":"creating","rootfs":"/"}`, `unknown field "rootfs"`},
		{"id with path", hook.EventCreateRuntime, state("../../etc", "creating", pid, ok), `container id "../../etc"`},
		{"id with NUL", hook.EventCreateRuntime, state("web\x00x", "creating", pid, ok), `container id "web\x00x"`},
		{"no request", hook.EventCreateRuntime, state("web", "creating", pid, ""), "annotation io.ocinet.network.v1: EOF"},
		{"unknown request field", hook.EventCreateRuntime, state("web", "creating", pid, `{"version":1,"stateDir":"/etc"}`), `unknown field "stateDir"`},
		{"newline in name", hook.EventCreateRuntime, state("web", "creating", pid, `{"version":1,"name":"a\nb"}`), `container name: name "a\nb"`},
		{"oversized request", hook.EventCreateRuntime, state("web", "creating", pid, `{"version":1,"name":"`+strings.Repeat("a", 70000)+`"}`), "larger than"},
		{"network path", hook.EventCreateRuntime, state("web", "creating", pid, `{"version":1,"networks":["../../../etc/passwd"]}`), `network name "../../../etc/passwd"`},
		{"host namespace", hook.EventCreateRuntime, state("web", "creating", os.Getpid(), ok), netns.ErrHostNamespace},
		{"host mode, namespace of its own", hook.EventCreateRuntime, state("web", "creating", pid, `{"version":1,"mode":"host"}`), "network mode host, but the container has a network namespace of its own"},
		{"none mode, host namespace", hook.EventCreateRuntime, state("web", "creating", os.Getpid(), `{"version":1,"mode":"none"}`), netns.ErrHostNamespace},
		{"pid 1", hook.EventCreateRuntime, state("web", "creating", 1, ok), "pid 1 is the host's init"},
		{"no pid", hook.EventCreateRuntime, state("web", "creating", 0, ok), "needs the container's pid"},
		{"missing pid", hook.EventCreateRuntime, state("web", "creating", 1<<22+7, ok), netns.ErrNotFound},
		{"running container", hook.EventCreateRuntime, state("web", "running", pid, ok), `status "running"`},
		{"stopped container", hook.EventCreateRuntime, state("web", "stopped", pid, ok), `status "stopped"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := files(t, w.cfg.StateDir)
			stderr, err := w.run(tc.event, tc.stdin)
			if err == nil {
				_, _ = w.run(hook.EventPoststop, state("web", "stopped", 0, ""))
				t.Fatal("accepted")
			}
			if !errors.Is(err, hook.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
			switch want := tc.want.(type) {
			case string:
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %v, want it refused for %q", err, want)
				}
			case error:
				if !errors.Is(err, want) {
					t.Errorf("err = %v, want it to wrap %v", err, want)
				}
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "ocinet hook ") {
				t.Errorf("stderr is not one line: %q", stderr)
			}
			if after := files(t, w.cfg.StateDir); strings.Join(before, "\n") != strings.Join(after, "\n") {
				t.Errorf("state root changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

func TestCreateRuntimeTwiceThenPoststop(t *testing.T) {
	w := newWorld(t)
	pid := w.container()
	st := state("web", "creating", pid, `{"version":1,"name":"web","ports":["127.0.0.1:28090:80"]}`)
	for i := 0; i < 2; i++ {
		if stderr, err := w.run(hook.EventCreateRuntime, st); err != nil {
			t.Fatalf("createRuntime %d: %v: %s", i, err, stderr)
		}
	}
	m, err := w.cfg.Manager()
	if err != nil {
		t.Fatal(err)
	}
	list, err := m.List()
	if err != nil || len(list) != 1 || !list[0].Complete || len(list[0].Ports) != 1 {
		t.Fatalf("attachments after two createRuntime: %+v, %v", list, err)
	}
	if err := netns.Check(w.cfg.PinPath("web")); err != nil {
		t.Errorf("pin: %v", err)
	}
	if stderr, err := w.run(hook.EventPoststop, state("web", "stopped", 0, "")); err != nil {
		t.Fatalf("poststop: %v: %s", err, stderr)
	}
	if !netns.Closed(w.cfg.PinPath("web")) {
		t.Error("pin left after poststop")
	}
}

// TestRecordedAnnotationAttaches: an annotation exactly as a spec written
// by the first release carries it (every field that release knew) attaches
// and detaches after an upgrade, with what it asked for.
func TestRecordedAnnotationAttaches(t *testing.T) {
	w := newWorld(t)
	pid := w.container()
	recorded := `{"version":1,"networks":["bridge"],"ports":["127.0.0.1:28091:80/tcp"],"name":"web","hostname":"web.local","extraHosts":["db:192.0.2.5","gw:host-gateway"],"dnsServers":["192.0.2.53"],"dnsSearch":["example.test"],"dnsOptions":["ndots:2"],"static":[{"network":"bridge","mac":"02:42:0a:00:00:09"}]}`
	if stderr, err := w.run(hook.EventCreateRuntime, state("web", "creating", pid, recorded)); err != nil {
		t.Fatalf("createRuntime with a recorded annotation: %v: %s", err, stderr)
	}
	m, err := w.cfg.Manager()
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.Get(w.cfg.AttachmentID("web"))
	if err != nil || !a.Complete || len(a.Ports) != 1 || a.Ports[0].HostPort != 28091 || a.Interfaces[0].MAC != "02:42:0a:00:00:09" || a.Hostname != "web.local" {
		t.Fatalf("attachment from the recorded annotation: %+v, %v", a, err)
	}
	store, err := w.cfg.HostsStore()
	if err != nil {
		t.Fatal(err)
	}
	r, err := store.Get("web")
	if err != nil || len(r.ExtraHosts) != 2 || !r.ExtraHosts[1].Gateway {
		t.Errorf("hosts record from the recorded annotation: %+v, %v", r, err)
	}
	if stderr, err := w.run(hook.EventPoststop, state("web", "stopped", 0, "")); err != nil {
		t.Fatalf("poststop: %v: %s", err, stderr)
	}
	if _, err := m.Get(w.cfg.AttachmentID("web")); !errors.Is(err, ocinet.ErrNotFound) {
		t.Errorf("after poststop: %v, want ErrNotFound", err)
	}
}

// TestPoststopNamespaceGone: the pin is gone (and with it the namespace)
// before poststop; teardown still completes (the leak check).
func TestPoststopNamespaceGone(t *testing.T) {
	w := newWorld(t)
	pid := w.container()
	if stderr, err := w.run(hook.EventCreateRuntime, state("web", "creating", pid, `{"version":1}`)); err != nil {
		t.Fatalf("createRuntime: %v: %s", err, stderr)
	}
	syscallKill(pid)
	if err := netns.Remove(w.cfg.PinPath("web")); err != nil {
		t.Fatal(err)
	}
	if stderr, err := w.run(hook.EventPoststop, state("web", "stopped", 0, "")); err != nil {
		t.Fatalf("poststop: %v: %s", err, stderr)
	}
}

// TestPoststopPluginsGone: DEL cannot run; poststop still succeeds, keeps
// the journal entry and the pin for later, and says why in the log. Once
// the plugins are back, a second poststop finishes.
func TestPoststopPluginsGone(t *testing.T) {
	w := newWorld(t)
	// Through the binaries: in process, DEL needs none of them.
	w.cfg.Datapath = ocinet.DatapathPlugins
	pid := w.container()
	if stderr, err := w.run(hook.EventCreateRuntime, state("web", "creating", pid, `{"version":1}`)); err != nil {
		t.Fatalf("createRuntime: %v: %s", err, stderr)
	}
	hidden := t.TempDir()
	if err := os.Rename(w.plugins, filepath.Join(hidden, "plugins")); err != nil {
		t.Fatal(err)
	}
	if stderr, err := w.run(hook.EventPoststop, state("web", "stopped", 0, "")); err != nil {
		t.Fatalf("poststop failed the caller: %v: %s", err, stderr)
	}
	m, _ := w.cfg.Manager()
	if _, err := m.Get(w.cfg.AttachmentID("web")); err != nil {
		t.Errorf("journal entry not kept: %v", err)
	}
	if err := netns.Check(w.cfg.PinPath("web")); err != nil {
		t.Errorf("pin not kept: %v", err)
	}
	log, _ := os.ReadFile(filepath.Join(w.cfg.ContainerDir("web"), "hook.log"))
	if !bytes.Contains(log, []byte("detach failed")) {
		t.Errorf("hook.log does not say why:\n%s", log)
	}
	if err := os.Rename(filepath.Join(hidden, "plugins"), w.plugins); err != nil {
		t.Fatal(err)
	}
	if stderr, err := w.run(hook.EventPoststop, state("web", "stopped", 0, "")); err != nil {
		t.Fatalf("second poststop: %v: %s", err, stderr)
	}
	if _, err := m.Get(w.cfg.AttachmentID("web")); !errors.Is(err, ocinet.ErrNotFound) {
		t.Errorf("journal entry after the second poststop: %v", err)
	}
}

// TestDeadline: a plugin that hangs at ADD; the hook gives up at its own
// deadline, rolls back, fails with a clear error, and leaves no process.
func TestDeadline(t *testing.T) {
	w := newWorld(t)
	// The sleep's argument marks it as this test's, to look for it later.
	marker := "sleep 600." + strconv.Itoa(os.Getpid())
	script := "#!/bin/sh\nif [ \"$CNI_COMMAND\" = ADD ]; then exec " + marker + "; fi\n"
	if err := os.WriteFile(filepath.Join(w.plugins, "hang"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := `{"cniVersion":"1.0.0","name":"slow","plugins":[{"type":"loopback"},{"type":"hang"}]}`
	if err := os.WriteFile(filepath.Join(w.cfg.CNIConfDir, "slow.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	w.cfg.Timeout = time.Second
	pid := w.container()
	start := time.Now()
	stderr, err := w.run(hook.EventCreateRuntime, state("web", "creating", pid, `{"version":1,"networks":["slow"]}`))
	if err == nil {
		t.Fatal("createRuntime succeeded with a hanging plugin")
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the hook took %v with a 1s deadline", took)
	}
	if !strings.Contains(stderr, "deadline") && !strings.Contains(stderr, "killed") {
		t.Errorf("error does not say the deadline passed: %s", stderr)
	}
	if out, _ := exec.Command("pgrep", "-f", marker).Output(); len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("a plugin process outlived the hook: %s", out)
		_ = exec.Command("pkill", "-f", marker).Run()
	}
	m, _ := w.cfg.Manager()
	if list, _ := m.List(); len(list) != 0 {
		t.Errorf("attachments left: %+v", list)
	}
	if !netns.Closed(w.cfg.PinPath("web")) {
		t.Error("pin left")
	}
}

func syscallKill(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}

// TestGC: the container is gone without a poststop (its runtime crashed);
// GC tears the attachment down and releases the hosts record and the pin.
func TestGC(t *testing.T) {
	w := newWorld(t)
	for _, id := range []string{"gone", "alive"} {
		if stderr, err := w.run(hook.EventCreateRuntime, state(id, "creating", w.container(), `{"version":1,"name":"`+id+`"}`)); err != nil {
			t.Fatalf("createRuntime %s: %v: %s", id, err, stderr)
		}
	}
	report, err := sandbox.GC(context.Background(), w.cfg, func(id string) bool { return id == "alive" })
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Released) != 1 || report.Released[0] != w.cfg.AttachmentID("gone") {
		t.Errorf("released %v, want only %s", report.Released, w.cfg.AttachmentID("gone"))
	}
	if !netns.Closed(w.cfg.PinPath("gone")) {
		t.Error("the pin of the gone container is left")
	}
	store, _ := w.cfg.HostsStore()
	if _, err := store.Get("gone"); err == nil {
		t.Error("the hosts record of the gone container is left")
	}
	if _, err := store.Get("alive"); err != nil {
		t.Errorf("the live container's hosts record: %v", err)
	}
	if stderr, err := w.run(hook.EventPoststop, state("alive", "stopped", 0, "")); err != nil {
		t.Fatalf("poststop: %v: %s", err, stderr)
	}
}
