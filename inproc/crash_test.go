package inproc_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/reexec"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/portmap"
)

const crashHelper = "inproc-test-crash"

func init() { reexec.Register(crashHelper, crashChild) }

// crashChild attaches (and, for a DEL step, detaches) one container
// through a Manager over inproc and exits with status 3 at the named step:
// crashChild STATE CONFDIR CACHEDIR LOCKDIR RUNTIMEDIR PLUGINDIR NETNS
// NETWORK STEP.
func crashChild() int {
	a := os.Args[1:]
	if len(a) != 9 {
		fmt.Fprintln(os.Stderr, "usage: STATE CONFDIR CACHEDIR LOCKDIR RUNTIMEDIR PLUGINDIR NETNS NETWORK STEP")
		return 2
	}
	state, confDir, cacheDir, lockDir, runtimeDir, plugins, path, network, step := a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]
	x, err := inproc.New(defaultExec(), inproc.WithRuntimeDir(lockDir), inproc.WithStepHook(func(s string) {
		if s == step {
			os.Exit(3)
		}
	}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	m, err := ocinet.New(state, ocinet.WithCNIConfDir(confDir), ocinet.WithPluginDirs(plugins), ocinet.WithCNICacheDir(cacheDir),
		ocinet.WithRuntimeDir(runtimeDir), ocinet.WithDefaultBridge(testBridge), ocinet.WithDefaultSubnet(testDefaultSubnet), ocinet.WithExec(x))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	req := ocinet.AttachRequest{ID: "crash", NetNS: path, Networks: []string{network}}
	if strings.Contains(step, ":portmap:") {
		req.Ports = []portmap.Mapping{{HostPorts: portmap.PortRange{Start: 18400, End: 18400}, ContainerPorts: portmap.PortRange{Start: 80, End: 80}, Protocol: "tcp"}}
	}
	if _, err := m.Attach(ctx, req); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := m.Detach(ctx, "crash"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 4 // the step never came
}

// crashConf is the default chain (bridge, portmap, firewall, tuning).
const crashConf = `{"cniVersion":"1.0.0","name":"inp-many","plugins":[
	{"type":"bridge","bridge":"inpmany0","isGateway":true,"ipMasq":true,"hairpinMode":true,
	 "ipam":{"type":"host-local","ranges":[[{"subnet":"10.216.20.0/24","gateway":"10.216.20.1"}]],"routes":[{"dst":"0.0.0.0/0"}]}},
	{"type":"portmap","capabilities":{"portMappings":true}},
	{"type":"firewall","ingressPolicy":"same-bridge"},
	{"type":"tuning"}]}`

// TestCrashAtEachStep: a process that dies at each named step of the
// in-process bridge's, portmap's and firewall's ADD and DEL (between the
// link, the lease and the table's elements) leaves an attachment that the Manager's
// GC, run by another process, finishes: the record is gone and nothing is
// left on the host (the leak check) or in the namespace.
func TestCrashAtEachStep(t *testing.T) {
	testenv.RequireRoot(t)
	for _, step := range []string{
		"inproc:ADD:bridge:network", "inproc:ADD:bridge:veth", "inproc:ADD:bridge:lease", "inproc:ADD:bridge:port", "inproc:ADD:bridge:addrs",
		"inproc:ADD:portmap:static", "inproc:ADD:portmap:elements", "inproc:ADD:firewall:static", "inproc:ADD:firewall:elements",
		"inproc:DEL:bridge:link", "inproc:DEL:bridge:conntrack",
	} {
		t.Run(strings.TrimPrefix(step, "inproc:"), func(t *testing.T) {
			e := newEnv(t)
			conf := strings.ReplaceAll(strings.ReplaceAll(crashConf, "inpmany0", "inpcrash0"), "10.216.20.", "10.216.60.")
			n := e.writeNetwork("inp-many.conflist", []byte(conf))
			path := newNS(t)
			cmd := reexec.Command(crashHelper, e.stateNative, e.confDir, e.cacheDir, e.lockDir, t.TempDir(), e.plugins, path, n.Name, step)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 3 {
				t.Fatalf("child: %v (want exit status 3 at %s): %s", err, step, out)
			}
			ctx := context.Background()
			if _, err := e.native.Get("crash"); err != nil {
				t.Fatalf("no record after the crash: %v", err)
			}
			if _, err := e.native.GC(ctx, nil, ocinet.GCOptions{}); err != nil {
				t.Fatalf("gc: %v", err)
			}
			if _, err := e.native.Get("crash"); !errors.Is(err, ocinet.ErrNotFound) {
				t.Errorf("record after GC: %v, want none", err)
			}
			if got := namespaceLinks(t, path); got != "lo" {
				t.Errorf("links in the namespace after GC: %q, want lo", got)
			}
		})
	}
}
