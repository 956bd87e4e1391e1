package ocinet_test

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocinet/ocinet/internal/reexec"
	"github.com/ocinet/ocinet/ocinettest"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/internal/leakcheck"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
)

func TestMain(m *testing.M) {
	reexec.Run() // the loopback proxy and the netns holder
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(crashChild(spec)) // a child of TestCrashSweep
	}
	if spec := os.Getenv(preflightEnv); spec != "" {
		os.Exit(preflightChild(spec)) // a child of TestPreflightFallback
	}
	code := m.Run()
	testenv.CleanupBuilds()
	os.Exit(code)
}

// testBridge is the default network's bridge in these tests (ocinet0
// belongs to the end-to-end tests).
const testBridge = "ocitest0"

// testDefaultSubnet is the default network's subnet in these tests: fixed,
// so that tests running at the same time on this host in other conf dirs
// do not pick the same automatic subnet.
var testDefaultSubnet = netip.MustParsePrefix("10.213.0.0/24")

// env is a Manager on a fresh state root, conf dir and runtime dir, with
// the real plugins and the failpoint plugin; a leak check runs when the
// test ends.
type env struct {
	t          *testing.T
	m          *ocinet.Manager
	state      string
	confDir    string
	runtimeDir string
	pluginDirs []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	plugins := testenv.RequirePlugins(t)
	e := &env{t: t, state: t.TempDir(), confDir: t.TempDir(), runtimeDir: t.TempDir()}
	ocinettest.CheckLeaks(t, leakcheck.Config{StateDirs: []string{e.state}, IgnoreBridges: []string{testBridge}})
	testenv.RemoveLinkAtEnd(t, testBridge)
	e.pluginDirs = []string{filepath.Dir(testenv.Build(t, "./internal/failpoint")), plugins}
	e.m = e.manager()
	return e
}

// managerOptions are the options of the tests' Managers.
func managerOptions(confDir, runtimeDir string, pluginDirs []string) []ocinet.Option {
	opts := []ocinet.Option{
		ocinet.WithCNIConfDir(confDir),
		ocinet.WithPluginDirs(pluginDirs...),
		ocinet.WithRuntimeDir(runtimeDir),
		ocinet.WithDefaultBridge(testBridge),
		ocinet.WithDefaultSubnet(testDefaultSubnet),
	}
	if dp := testenv.Datapath(); dp != "" {
		d, err := ocinet.ParseDatapath(dp)
		if err != nil {
			panic(err)
		}
		opts = append(opts, ocinet.WithDatapath(d))
	}
	return opts
}

func (e *env) manager() *ocinet.Manager {
	e.t.Helper()
	m, err := ocinet.New(e.state, managerOptions(e.confDir, e.runtimeDir, e.pluginDirs)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// ns makes a namespace that is removed when the test ends.
func (e *env) ns() string {
	e.t.Helper()
	return newNS(e.t)
}

func newNS(t *testing.T) string {
	t.Helper()
	path, err := netns.Create("", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Remove(path) })
	return path
}

// network creates a network that is removed (with its bridge) when the
// test ends, before the leak check.
func (e *env) network(cfg ocinet.NetworkConfig) *ocinet.Network {
	e.t.Helper()
	n, err := e.m.CreateNetwork(context.Background(), cfg)
	if err != nil {
		e.t.Fatalf("create network %s: %v", cfg.Name, err)
	}
	testenv.RemoveLinkAtEnd(e.t, n.Bridge)
	e.t.Cleanup(func() {
		if err := e.m.RemoveNetwork(context.Background(), n.Name); err != nil {
			e.t.Errorf("remove network %s: %v", n.Name, err)
		}
	})
	return n
}

// writeConf writes a conflist into the conf dir.
func (e *env) writeConf(file, content string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.confDir, file), []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// attach attaches and fails the test on error.
func (e *env) attach(req ocinet.AttachRequest) *ocinet.Attachment {
	e.t.Helper()
	a, err := e.m.Attach(context.Background(), req)
	if err != nil {
		e.t.Fatalf("attach %s: %v", req.ID, err)
	}
	return a
}

func (e *env) detach(id string) {
	e.t.Helper()
	if err := e.m.Detach(context.Background(), id); err != nil {
		e.t.Fatalf("detach %s: %v", id, err)
	}
}

// inNS runs a command inside the namespace at path and returns its
// combined output.
func inNS(path string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", filepath.Base(path)}, args...)...).CombinedOutput()
	return string(out), err
}

// addrsIn lists the IPv4 addresses inside a namespace.
func addrsIn(t *testing.T, path string) string {
	t.Helper()
	out, err := inNS(path, "ip", "-o", "-4", "addr")
	if err != nil {
		t.Fatalf("ip addr in %s: %v: %s", path, err, out)
	}
	return out
}

// ping sends one echo request from the namespace at path to addr (an
// address inside a namespace the test made) and reports whether a reply
// came within two seconds.
func ping(t *testing.T, path string, addr netip.Addr) bool {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.Skip(t, "needs /bin/busybox for ping (run scripts/install.sh)")
	}
	out, err := inNS(path, "/bin/busybox", "ping", "-c", "1", "-W", "2", addr.String())
	if err != nil && !strings.Contains(out, "packets received") {
		t.Logf("ping %s from %s: %v: %s", addr, path, err, out)
	}
	return err == nil
}
