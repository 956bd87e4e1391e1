package ocinettest

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/internal/leakcheck"
	"github.com/ocinet/ocinet/netns"
	"github.com/ocinet/ocinet/sandbox"
)

// DefaultSubnet is the default network's subnet in an [Env], fixed so that
// tests see the same addresses on every host.
var DefaultSubnet = netip.MustParsePrefix("10.4.0.0/24")

// Env is a Manager that runs its real logic (requests checked, the
// journal written before and after ADD, locks, port reservations, DEL from
// the recorded config, rollback, GC) over a [FakeCNI], on temporary
// directories, without root. Namespaces in an Env are plain files made by
// [Env.NetNS]: removing one is what a container's namespace going away
// looks like to the Manager.
//
// Sandbox is a configuration of package sandbox on the same state, so that
// sandbox.Attach, sandbox.Detach and sandbox.GC (the request's
// validation, the hosts store and its files) run over the same fake.
// hook.Run needs a real process and root, and is not for an Env.
type Env struct {
	// CNI is the fake executor every plugin call goes to.
	CNI *FakeCNI
	// Manager is a Manager on the Env's state.
	Manager *ocinet.Manager
	// Sandbox is package sandbox's configuration of the same state,
	// namespace "test", whose DNS responders linger 50 ms.
	Sandbox sandbox.Config
	// StateDir is the state root; ConfDir the CNI conf dir, where the
	// default network appears on first use.
	StateDir, ConfDir string

	t          testing.TB
	netnsDir   string
	cacheDir   string
	runtimeDir string
	pluginDir  string
	extra      []ocinet.Option
}

// NewEnv makes an Env whose directories are removed when the test ends.
// opts are added to the Env's own options (and win over them).
func NewEnv(t testing.TB, opts ...ocinet.Option) *Env {
	t.Helper()
	root := t.TempDir()
	e := &Env{
		CNI:        NewFakeCNI(),
		StateDir:   filepath.Join(root, "state"),
		ConfDir:    filepath.Join(root, "net.d"),
		t:          t,
		netnsDir:   filepath.Join(root, "netns"),
		cacheDir:   filepath.Join(root, "cni-cache"),
		runtimeDir: filepath.Join(root, "run"),
		pluginDir:  filepath.Join(root, "plugins"),
		extra:      opts,
	}
	for _, d := range []string{e.netnsDir, e.pluginDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	e.Manager = e.NewManager()
	e.Sandbox = sandbox.Config{
		StateDir:       e.StateDir,
		NetNSDir:       e.netnsDir,
		CNIConfDir:     e.ConfDir,
		PluginDirs:     []string{e.pluginDir},
		Namespace:      "test",
		ManagerOptions: e.Options(),
		// A network's DNS responder stops this soon after its last
		// container (2 s by default), so that a test's leak check does
		// not wait for it.
		DNSLinger: 50 * time.Millisecond,
	}
	return e
}

// Options returns the options of the Env's Managers, for a Manager (or a
// sandbox.Config) of the caller's own on the same state and fake.
func (e *Env) Options() []ocinet.Option {
	opts := []ocinet.Option{
		ocinet.WithCNIConfDir(e.ConfDir),
		ocinet.WithPluginDirs(e.pluginDir),
		ocinet.WithCNICacheDir(e.cacheDir),
		ocinet.WithRuntimeDir(e.runtimeDir),
		ocinet.WithDefaultSubnet(DefaultSubnet),
		ocinet.WithExec(e.CNI),
		ocinet.WithHost(fakeHost{check: e.checkNetNS}),
	}
	return append(opts, e.extra...)
}

// NewManager returns a new Manager on the Env's state and fake: what a
// process that starts after a crash gets.
func (e *Env) NewManager() *ocinet.Manager {
	e.t.Helper()
	m, err := ocinet.New(e.StateDir, e.Options()...)
	if err != nil {
		e.t.Fatalf("ocinettest: new manager: %v", err)
	}
	return m
}

// NetNS makes a namespace called name (a plain file) and returns its path.
// The Manager accepts it until it is removed (os.Remove).
func (e *Env) NetNS(name string) string {
	e.t.Helper()
	p := filepath.Join(e.netnsDir, name)
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		e.t.Fatalf("ocinettest: namespace: %v", err)
	}
	return p
}

// checkNetNS accepts the files NetNS made.
func (e *Env) checkNetNS(path string) error {
	if path == "" {
		return fmt.Errorf("no namespace path: %w", netns.ErrInvalid)
	}
	if filepath.Dir(path) != e.netnsDir {
		return fmt.Errorf("namespace %s: not made by this Env: %w", path, netns.ErrNotNetNS)
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("namespace %s: %w", path, netns.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("namespace %s: %w", path, netns.ErrNotNetNS)
	}
	return nil
}

// Leftovers lists what the Env's state still holds, one line per item,
// sorted: journal records, port reservations, hosts records, entries of
// the CNI library's result cache, and addresses the fake IPAM holds. After
// every container is detached or collected, it is empty.
func (e *Env) Leftovers() []string {
	var out []string
	for kind, items := range leakcheck.StateRecords(e.StateDir) {
		for _, it := range items {
			out = append(out, kind+": "+it)
		}
	}
	if ents, err := os.ReadDir(filepath.Join(e.cacheDir, "results")); err == nil {
		for _, ent := range ents {
			out = append(out, "cni-cache: "+ent.Name())
		}
	}
	for _, l := range e.CNI.Leases() {
		out = append(out, fmt.Sprintf("lease: %s %s/%s %v", l.Network, l.ContainerID, l.IfName, l.IPs))
	}
	sort.Strings(out)
	return out
}

// CheckClean fails the test if [Env.Leftovers] lists anything.
func (e *Env) CheckClean(t testing.TB) {
	t.Helper()
	if left := e.Leftovers(); len(left) > 0 {
		t.Errorf("left behind:\n  %s", joinLines(left))
	}
}
