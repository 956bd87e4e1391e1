package inproc_test

import (
	"context"
	"encoding/json"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/leakcheck"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
	"github.com/ocinet/ocinet/ocinettest"
)

// testBridge is the default network's bridge in these tests.
const testBridge = "ocinproc0"

// testDefaultSubnet is the default network's subnet in these tests.
var testDefaultSubnet = netip.MustParsePrefix("10.214.0.0/24")

// env is two Managers on one conf dir and CNI cache: one runs the plugin
// binaries (the default executor), the other runs them through inproc.
// Leaks are checked when the test ends.
type env struct {
	t        testing.TB
	plugins  string
	confDir  string
	cacheDir string
	// exec is the in-process executor of native; its locks live in
	// lockDir.
	exec    *inproc.Exec
	lockDir string
	plug    *ocinet.Manager
	native  *ocinet.Manager
	// stateNative is native's state root.
	stateNative string
}

func defaultExec() invoke.Exec {
	return &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: io.Discard}, PluginDecoder: version.PluginDecoder{}}
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, plugins: testenv.RequirePlugins(t), confDir: t.TempDir(), cacheDir: t.TempDir(), lockDir: t.TempDir()}
	statePlug, stateNative := t.TempDir(), t.TempDir()
	ocinettest.CheckLeaks(t, leakcheck.Config{
		StateDirs:     []string{statePlug, stateNative},
		CNICacheDir:   filepath.Join(e.cacheDir, "results"),
		IgnoreBridges: []string{testBridge},
	})
	testenv.RemoveLinkAtEnd(t, testBridge)
	x, err := inproc.New(defaultExec(), inproc.WithRuntimeDir(e.lockDir))
	if err != nil {
		t.Fatal(err)
	}
	e.exec = x
	e.plug = e.manager(statePlug, nil)
	e.native = e.manager(stateNative, x)
	e.stateNative = stateNative
	return e
}

func (e *env) manager(state string, x invoke.Exec) *ocinet.Manager {
	e.t.Helper()
	opts := []ocinet.Option{
		ocinet.WithCNIConfDir(e.confDir),
		ocinet.WithPluginDirs(e.plugins),
		ocinet.WithCNICacheDir(e.cacheDir),
		ocinet.WithRuntimeDir(e.t.TempDir()),
		ocinet.WithDefaultBridge(testBridge),
		ocinet.WithDefaultSubnet(testDefaultSubnet),
	}
	if x != nil {
		opts = append(opts, ocinet.WithExec(x))
	} else {
		// The binaries, not the Manager's default (in process where it can).
		opts = append(opts, ocinet.WithDatapath(ocinet.DatapathPlugins))
	}
	m, err := ocinet.New(state, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// forget removes, when the test ends (before the leak check), what a
// network leaves on the host: its bridge, and inproc's chain for it.
func (e *env) forget(conflist []byte, bridge string) {
	e.t.Helper()
	testenv.RemoveLinkAtEnd(e.t, bridge)
	e.t.Cleanup(func() {
		if err := e.exec.RemoveNetwork(context.Background(), conflist); err != nil {
			e.t.Errorf("remove in-process network state: %v", err)
		}
	})
}

// network creates a network through the Manager; it is removed when the
// test ends.
func (e *env) network(cfg ocinet.NetworkConfig) *ocinet.Network {
	e.t.Helper()
	n, err := e.plug.CreateNetwork(context.Background(), cfg)
	if err != nil {
		e.t.Fatalf("create network %s: %v", cfg.Name, err)
	}
	e.forget(n.Bytes, n.Bridge)
	e.t.Cleanup(func() {
		if err := e.plug.RemoveNetwork(context.Background(), n.Name); err != nil {
			e.t.Errorf("remove network %s: %v", n.Name, err)
		}
	})
	return n
}

// writeNetwork puts a conflist into the conf dir and returns the network.
func (e *env) writeNetwork(file string, b []byte) *ocinet.Network {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.confDir, file), b, 0o644); err != nil {
		e.t.Fatal(err)
	}
	var head struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		e.t.Fatal(err)
	}
	n, err := e.plug.Network(head.Name)
	if err != nil {
		e.t.Fatal(err)
	}
	e.forget(n.Bytes, n.Bridge)
	e.t.Cleanup(func() {
		if err := netlinkDel(n.Bridge); err != nil {
			e.t.Errorf("remove bridge %s: %v", n.Bridge, err)
		}
	})
	return n
}

func netlinkDel(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil
	}
	return netlink.LinkDel(l)
}

// newNS makes a namespace that is removed when the test ends.
func newNS(t testing.TB) string {
	t.Helper()
	path, err := netns.Create("", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Remove(path); err != nil {
			t.Errorf("remove namespace: %v", err)
		}
	})
	return path
}

// cachedResult returns the result JSON the CNI library cached for an
// attachment's network.
func (e *env) cachedResult(network, id, ifName string) json.RawMessage {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.cacheDir, "results", network+"-"+id+"-"+ifName))
	if err != nil {
		e.t.Fatalf("cached result: %v", err)
	}
	var c struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		e.t.Fatal(err)
	}
	return c.Result
}

// masqRules returns the rules of inproc's masquerade chain of a bridge, and
// how many jumps to it the static chain holds.
func masqRules(t testing.TB, bridge string) (rules, jumps int) {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	table := &nftables.Table{Name: inproc.TableName, Family: inproc.TableFamily}
	if rs, err := c.GetRules(table, &nftables.Chain{Name: inproc.MasqChain(bridge), Table: table}); err == nil {
		rules = len(rs)
	}
	if rs, err := c.GetRules(table, &nftables.Chain{Name: inproc.PostroutingChain, Table: table}); err == nil {
		for _, r := range rs {
			if inproc.RuleComment(r) == inproc.NetworkComment(bridge) {
				jumps++
			}
		}
	}
	return rules, jumps
}

// sortedLines sorts and joins.
func sortedLines(l []string) string {
	sort.Strings(l)
	return strings.Join(l, "\n")
}
