package ocinet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/internal/leakcheck"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
)

// preflightEnv carries a preflightChild's instructions (JSON).
const preflightEnv = "OCINET_TEST_PREFLIGHT_CHILD"

type preflightSpec struct {
	State, ConfDir, RuntimeDir string
	PluginDirs                 []string
}

// TestPreflightFallback: on a host whose iptables FORWARD chain has policy
// DROP (a host with docker), the native datapath's firewall would accept
// what that chain drops. auto then runs the network through the plugin
// binaries and says why in the attachment; native refuses, naming the
// chain. The "host" is a network namespace of the test's own, in which a
// child runs the Manager: the policy is never set on the real host.
func TestPreflightFallback(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "ip", "iptables")
	plugins := testenv.RequirePlugins(t)
	// The child's leases are in the host's file system: what host-local
	// leaves of its network goes when the test ends.
	leaseDirs := leakcheck.LeaseDirs(leakcheck.Config{})
	t.Cleanup(func() {
		if err := leakcheck.RemoveNewLeaseDirs(leaseDirs, leakcheck.Config{}); err != nil {
			t.Errorf("remove the child's lease directory: %v", err)
		}
	})
	hostNS, err := netns.Create("", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Remove(hostNS) })
	name := filepath.Base(hostNS)
	for _, args := range [][]string{{"link", "set", "lo", "up"}} {
		if out, err := exec.Command("ip", append([]string{"-n", name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "exec", name, "iptables", "-P", "FORWARD", "DROP").CombinedOutput(); err != nil {
		t.Fatalf("iptables -P FORWARD DROP in the test's namespace: %v: %s", err, out)
	}
	spec, _ := json.Marshal(preflightSpec{State: t.TempDir(), ConfDir: t.TempDir(), RuntimeDir: t.TempDir(),
		PluginDirs: []string{plugins}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", name, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), preflightEnv+"="+string(spec))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the child in a namespace with FORWARD DROP: %v:\n%s", err, out)
	}
	t.Logf("child: %s", strings.TrimSpace(string(out)))
}

// preflightChild runs inside the namespace with FORWARD DROP: it checks
// auto's fallback and native's refusal, and cleans up after itself.
func preflightChild(specJSON string) int {
	var s preflightSpec
	if err := json.Unmarshal([]byte(specJSON), &s); err != nil {
		fmt.Println(err)
		return 2
	}
	fail := func(format string, a ...any) int { fmt.Printf(format+"\n", a...); return 1 }
	ctx := context.Background()
	opts := func(d ocinet.Datapath) []ocinet.Option {
		return []ocinet.Option{ocinet.WithCNIConfDir(s.ConfDir), ocinet.WithPluginDirs(s.PluginDirs...),
			ocinet.WithRuntimeDir(s.RuntimeDir), ocinet.WithDefaultBridge(testBridge),
			ocinet.WithDefaultSubnet(testDefaultSubnet), ocinet.WithDatapath(d)}
	}
	ns, err := netns.Create("", "")
	if err != nil {
		return fail("netns: %v", err)
	}
	defer netns.Remove(ns)

	native, err := ocinet.New(s.State, opts(ocinet.DatapathNative)...)
	if err != nil {
		return fail("new: %v", err)
	}
	if _, err := native.Attach(ctx, ocinet.AttachRequest{ID: "pf-native", NetNS: ns}); !errors.Is(err, ocinet.ErrNotSupported) || !strings.Contains(err.Error(), "policy drop") {
		return fail("native with FORWARD DROP: %v, want ErrNotSupported naming the policy", err)
	}
	if _, err := native.Get("pf-native"); !errors.Is(err, ocinet.ErrNotFound) {
		return fail("native's refusal left a record: %v", err)
	}

	auto, err := ocinet.New(s.State, opts(ocinet.DatapathAuto)...)
	if err != nil {
		return fail("new: %v", err)
	}
	a, err := auto.Attach(ctx, ocinet.AttachRequest{ID: "pf-auto", NetNS: ns})
	if err != nil {
		return fail("auto with FORWARD DROP: %v", err)
	}
	i := a.Interfaces[0]
	detachErr := auto.Detach(ctx, "pf-auto")
	switch {
	case i.Datapath != ocinet.DatapathPlugins || !strings.Contains(i.DatapathReason, "policy drop"):
		return fail("auto with FORWARD DROP ran %q (reason %q), want the binaries and the reason", i.Datapath, i.DatapathReason)
	case detachErr != nil:
		return fail("detach: %v", detachErr)
	}
	fmt.Printf("auto fell back: %s\n", i.DatapathReason)
	return 0
}
