package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
	"golang.org/x/sys/unix"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/netns"
	"github.com/ocinet/ocinet/portmap"
)

// bench is one run: its settings, its work directory and what it made.
type bench struct {
	ctx       context.Context
	repo      string
	work      string
	n         int
	conc      []int
	peers     []int
	pluginDir string
	stateDir  string // the Manager's state root
	confDir   string // the Manager's conflist directory
	netnsDir  string // this run's own namespace directory
	clean     *cleaner
	report    *Report

	mgrOnce sync.Once
	mgrErr  error
	mgr     *ocinet.Manager
	exec    *timedExec
	network *ocinet.Network

	builds map[string]string

	ctdOnce    sync.Once // the private containerd and the root file system
	ctdErr     error
	ctdAddress string
	rootfs     string

	nftBefore map[string]bool // nftables tables that existed before the run

	pendMu  sync.Mutex
	pending map[string]func() error // set up and not torn down yet, by ID
}

// pend records how to tear down what id set up, until unpend. The
// namespace it was set up in must still exist when the undo runs: the
// bridge plugin skips its NAT clean-up without it. The namespaces of the
// run are removed after everything pending.
func (b *bench) pend(id string, undo func() error) {
	b.pendMu.Lock()
	defer b.pendMu.Unlock()
	if b.pending == nil {
		b.pending = map[string]func() error{}
		b.clean.add("pending attachments", func() error {
			b.pendMu.Lock()
			ids := slices.Sorted(maps.Keys(b.pending))
			b.pendMu.Unlock()
			var errs []error
			for _, id := range ids {
				errs = append(errs, b.undo(id))
			}
			return errors.Join(errs...)
		})
	}
	b.pending[id] = undo
}

func (b *bench) unpend(id string) {
	b.pendMu.Lock()
	defer b.pendMu.Unlock()
	delete(b.pending, id)
}

// undo tears down id now if it is pending.
func (b *bench) undo(id string) error {
	b.pendMu.Lock()
	fn, ok := b.pending[id]
	delete(b.pending, id)
	b.pendMu.Unlock()
	if !ok {
		return nil
	}
	if err := fn(); err != nil {
		return fmt.Errorf("tear down %s: %w", id, err)
	}
	return nil
}

// stopped reports whether the run was interrupted.
func (b *bench) stopped() bool { return b.ctx.Err() != nil }

// fast is the iteration count of the sections whose operations take
// milliseconds.
func (b *bench) fast() int { return 5 * b.n }

// manager returns the run's Manager and its default network, made on first
// use with the run's own state root, conf dir and bridge. Its clean-up
// detaches whatever is still attached and removes the bridge and the
// per-bridge firewall rules the plugins leave behind.
func (b *bench) manager() (*ocinet.Manager, *ocinet.Network, error) {
	b.mgrOnce.Do(func() {
		b.exec = &timedExec{Exec: &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: io.Discard}, PluginDecoder: version.PluginDecoder{}}}
		b.mgr, b.mgrErr = ocinet.New(b.stateDir,
			ocinet.WithCNIConfDir(b.confDir),
			ocinet.WithPluginDirs(b.pluginDir),
			ocinet.WithDefaultBridge(benchBridge),
			ocinet.WithRuntimeDir(filepath.Join(b.work, "run")),
			ocinet.WithExec(b.exec))
		if b.mgrErr != nil {
			return
		}
		b.clean.add("bridge "+benchBridge, func() error { return b.removeBridge(benchBridge) })
		b.network, b.mgrErr = b.mgr.Network(ocinet.DefaultNetworkName)
		if b.mgrErr != nil {
			return
		}
		// Every section that attaches to the default network may run it in
		// process (the container section's hooks do): what the native
		// datapath keeps for the network (its masquerade chain, its set
		// elements) goes after the attachments, before the bridge.
		var x *inproc.Exec
		if x, b.mgrErr = inproc.New(&invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: io.Discard}, PluginDecoder: version.PluginDecoder{}},
			inproc.WithRuntimeDir(filepath.Join(b.work, "run-clean"))); b.mgrErr != nil {
			return
		}
		conflist := b.network.Bytes
		b.clean.add("in-process network state", func() error { return x.RemoveNetwork(context.Background(), conflist) })
		b.clean.add("attachments", b.sweep)
	})
	return b.mgr, b.network, b.mgrErr
}

// sweep detaches every attachment left in the run's state root.
func (b *bench) sweep() error {
	list, err := b.mgr.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range list {
		if err := b.mgr.Detach(context.Background(), a.ID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeBridge deletes a bridge of the run and the isolation rules the
// firewall plugin keeps for it.
func (b *bench) removeBridge(name string) error {
	var errs []error
	if exec.Command("ip", "link", "show", name).Run() == nil {
		if out, err := exec.Command("ip", "link", "del", name).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip link del %s: %v: %s", name, err, out))
		}
	}
	errs = append(errs, removeIsolationRules(name))
	return errors.Join(errs...)
}

// removeIsolationRules deletes the rules that name bridge in the firewall
// plugin's isolation chains. The plugin adds them at the first ADD on a
// bridge and never removes them.
func removeIsolationRules(bridge string) error {
	var errs []error
	for _, chain := range []string{"CNI-ISOLATION-STAGE-1", "CNI-ISOLATION-STAGE-2"} {
		out, err := exec.Command("iptables", "-w", "-t", "filter", "-S", chain).Output()
		if err != nil {
			continue // the chain does not exist
		}
		for _, line := range strings.Split(string(out), "\n") {
			f := ruleWords(line)
			if len(f) < 2 || f[0] != "-A" || !slices.Contains(f, bridge) {
				continue
			}
			args := append([]string{"-w", "-t", "filter", "-D"}, f[1:]...)
			if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, out))
			}
		}
	}
	return errors.Join(errs...)
}

// ruleWords splits a line of `iptables -S` into its arguments: words
// separated by spaces, where a double-quoted string (with \" inside) is one.
func ruleWords(line string) []string {
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			quoted, inWord = !quoted, true
		case c == ' ' && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// newNS makes a namespace in the run's own directory and returns its path
// and a function that removes it. Whatever is not removed goes with the
// directory at the end of the run.
func (b *bench) newNS(name string) (string, func(), error) {
	p, err := netns.Create(b.netnsDir, name)
	if err != nil {
		return "", nil, err
	}
	return p, func() { _ = netns.Remove(p) }, nil
}

// removeNetNSDir removes every namespace left in the run's directory and
// the directory's own bind mount.
func (b *bench) removeNetNSDir() error {
	ents, err := os.ReadDir(b.netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var errs []error
	for _, e := range ents {
		if err := netns.Remove(filepath.Join(b.netnsDir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	if err := unix.Unmount(b.netnsDir, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
		errs = append(errs, fmt.Errorf("unmount %s: %w", b.netnsDir, err))
	}
	return errors.Join(errs...)
}

// build compiles a package of the repository (or, with dir set, the main
// package in dir) into the run's bin directory, once.
func (b *bench) build(pkg, dir string) (string, error) {
	if bin, ok := b.builds[pkg]; ok {
		return bin, nil
	}
	bin := filepath.Join(b.work, "bin", filepath.Base(pkg))
	cmd := exec.CommandContext(b.ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = b.repo
	if dir != "" {
		cmd.Args = []string{"go", "build", "-o", bin, "."}
		cmd.Dir = dir
	}
	// Static, as the tests build them and as a hook is meant to be
	// installed: a binary linked against libc spends about 1 ms of every
	// start in the dynamic loader, which a hook pays on each container.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	if b.builds == nil {
		b.builds = map[string]string{}
	}
	b.builds[pkg] = bin
	return bin, nil
}

// freePort returns a TCP port that nothing listens on at 127.0.0.1 now.
func freePort() (uint16, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port), nil
}

// localMapping publishes container port 80 on a port of 127.0.0.1 that is
// free now, and returns it both as a -p mapping and expanded.
func localMapping() (portmap.Mapping, []portmap.Port, error) {
	port, err := freePort()
	if err != nil {
		return portmap.Mapping{}, nil, err
	}
	m, err := portmap.Parse(fmt.Sprintf("127.0.0.1:%d:80", port))
	if err != nil {
		return m, nil, err
	}
	ports, err := m.Expand()
	return m, ports, err
}

// inNetNS runs fn on a thread inside the namespace at path (netns.NetNS.Do):
// sockets fn opens belong to that namespace and stay usable from anywhere
// afterwards.
func inNetNS(path string, fn func() error) error {
	ns, err := netns.Open(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	return ns.Do(fn)
}

// timedExec runs CNI plugins as the CNI library does by default and adds up
// how long they ran, so that a Manager's own work can be told from its
// plugins'. env, when set, replaces variables of the plugins' environment.
type timedExec struct {
	invoke.Exec
	env []string

	mu    sync.Mutex
	total time.Duration
	count int
	// runs, when record is set, lists every plugin run.
	record bool
	runs   []pluginRun
}

// pluginRun is one run of a plugin binary.
type pluginRun struct {
	plugin     string
	start, end time.Time
}

func (e *timedExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	if len(e.env) > 0 {
		environ = overrideEnv(environ, e.env)
	}
	t0 := time.Now()
	out, err := e.Exec.ExecPlugin(ctx, pluginPath, stdin, environ)
	t1 := time.Now()
	e.mu.Lock()
	e.total += t1.Sub(t0)
	e.count++
	if e.record {
		e.runs = append(e.runs, pluginRun{filepath.Base(pluginPath), t0, t1})
	}
	e.mu.Unlock()
	return out, err
}

// take returns the plugin time and count since the last take, and resets
// them.
func (e *timedExec) take() (time.Duration, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, c := e.total, e.count
	e.total, e.count, e.runs = 0, 0, nil
	return t, c
}

// overrideEnv returns environ with each KEY=VALUE of set replacing the
// variable of that name.
func overrideEnv(environ, set []string) []string {
	keys := map[string]bool{}
	for _, kv := range set {
		k, _, _ := strings.Cut(kv, "=")
		keys[k] = true
	}
	out := make([]string, 0, len(environ)+len(set))
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !keys[k] {
			out = append(out, kv)
		}
	}
	return append(out, set...)
}
