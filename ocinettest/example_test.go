package ocinettest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hook"
	"github.com/ocinet/ocinet/ocinettest"
	"github.com/ocinet/ocinet/portmap"
	"github.com/ocinet/ocinet/sandbox"
)

// exampleT stands in, in these examples, for the *testing.T of a test.
type exampleT struct {
	testing.TB
	cleanups []func()
}

func newExampleT() *exampleT { return &exampleT{} }

func (t *exampleT) Helper()                      {}
func (t *exampleT) Cleanup(f func())             { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (t *exampleT) Errorf(f string, args ...any) { fmt.Printf(f+"\n", args...) }
func (t *exampleT) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }

func (t *exampleT) TempDir() string {
	dir, err := os.MkdirTemp("", "ocinettest-example-")
	if err != nil {
		panic(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// finish runs the cleanups, as the end of a test does.
func (t *exampleT) finish() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

// An embedder's unit test attaches and detaches a container through a
// Manager whose plugins are fake, and checks that nothing is left.
func ExampleNewEnv() {
	t := newExampleT() // in a test: its *testing.T
	defer t.finish()

	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	p, _ := portmap.Parse("127.0.0.1:8080:80")
	a, err := e.Manager.Attach(ctx, ocinet.AttachRequest{ID: "web", NetNS: e.NetNS("web"), Ports: []portmap.Mapping{p}})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(a.Interfaces[0].Name, a.Interfaces[0].IPs[0], a.Ports[0].HostPort)
	if err := e.Manager.Detach(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	fmt.Println("left:", len(e.Leftovers()))
	// Output:
	// eth0 10.4.0.2/24 8080
	// left: 0
}

// A plugin that fails reaches the caller as ocinet.ErrPlugin, and the
// attachment is rolled back: DEL runs for the whole chain of the network
// that failed, in reverse, and for loopback.
func ExampleFakeCNI_Inject() {
	t := newExampleT()
	defer t.finish()

	e := ocinettest.NewEnv(t)
	e.CNI.Inject(ocinettest.Fault{Command: "ADD", Plugin: "portmap"})
	_, err := e.Manager.Attach(context.Background(), ocinet.AttachRequest{ID: "web", NetNS: e.NetNS("web")})
	fmt.Println(errors.Is(err, ocinet.ErrPlugin))
	for _, c := range e.CNI.CallsOf("DEL") {
		fmt.Println("DEL", c.Plugin)
	}
	fmt.Println("left:", len(e.Leftovers()))
	// Output:
	// true
	// DEL tuning
	// DEL firewall
	// DEL portmap
	// DEL bridge
	// DEL loopback
	// left: 0
}

// A process dies in the middle of an attachment; the next one collects
// what it left.
func ExampleCrashed() {
	t := newExampleT()
	defer t.finish()

	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	e.CNI.Inject(ocinettest.Fault{Command: "ADD", Plugin: "firewall", Action: ocinettest.CrashAfter})
	crashed := ocinettest.Crashed(func() {
		_, _ = e.Manager.Attach(ctx, ocinet.AttachRequest{ID: "web", NetNS: e.NetNS("web")})
	})
	e.CNI.ClearFaults()
	a, _ := e.Manager.Get("web")
	fmt.Println(crashed, a.Complete)

	restarted := e.NewManager()
	report, err := restarted.GC(ctx, nil, ocinet.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(report.Finished, len(e.Leftovers()))
	// Output:
	// true false
	// [web] 0
}

// A held call shows what the journal says half way through an attachment.
func ExampleInjection_Release() {
	t := newExampleT()
	defer t.finish()

	e := ocinettest.NewEnv(t)
	hold := e.CNI.Inject(ocinettest.Fault{Command: "ADD", Plugin: "portmap", Action: ocinettest.Hold})
	done := make(chan error)
	go func() {
		_, err := e.Manager.Attach(context.Background(), ocinet.AttachRequest{ID: "web", NetNS: e.NetNS("web")})
		done <- err
	}()
	<-hold.Reached()
	a, _ := e.Manager.Get("web")
	fmt.Println("complete:", a.Complete, "address known:", len(a.Interfaces[0].IPs) == 1)
	hold.Release()
	fmt.Println(<-done)
	// Output:
	// complete: false address known: true
	// <nil>
}

// The hook's own handling of a request (parsing, validation, the hosts
// store) runs over the fake through Env.Hook.
func ExampleEnv_hook() {
	t := newExampleT()
	defer t.finish()

	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	_, err := sandbox.Attach(ctx, e.Sandbox, "web", e.NetNS("web"), sandbox.Request{Name: "web"})
	fmt.Println(err)
	_, err = sandbox.Attach(ctx, e.Sandbox, "db", e.NetNS("db"), sandbox.Request{Name: "db\nevil"})
	fmt.Println(errors.Is(err, hook.ErrInvalid))
	report, _ := sandbox.GC(ctx, e.Sandbox, func(containerID string) bool { return false })
	fmt.Println(report.Released, len(e.Leftovers()))
	// Output:
	// <nil>
	// true
	// [test-web] 0
}

// A test that needs a real network namespace.
func ExampleNetNS() {
	test := func(t *testing.T) {
		path := ocinettest.NetNS(t) // removed when the test ends
		m, err := ocinet.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		_ = m // m.Attach(ctx, ocinet.AttachRequest{ID: "web", NetNS: path}) ...
		_ = path
	}
	_ = test
}

// An integration test that must leave the host as it found it.
func ExampleCheckLeaks() {
	test := func(t *testing.T) {
		state := t.TempDir()
		// First, so that it runs after every other cleanup.
		ocinettest.CheckLeaks(t, ocinettest.LeakConfig{StateDirs: []string{state}})
		// ... attach and detach containers with a Manager on state ...
	}
	_ = test
}

// Comparing two snapshots by hand, for a test that shares the host with
// others and keeps only what names its own containers.
func ExampleTakeSnapshot() {
	before, err := ocinettest.TakeSnapshot(ocinettest.LeakConfig{})
	if err != nil {
		return
	}
	// ... the work under test ...
	after, err := ocinettest.TakeSnapshot(ocinettest.LeakConfig{})
	if err != nil {
		return
	}
	for _, leak := range ocinettest.Diff(before, after) {
		fmt.Println(leak)
	}
}

// A network whose chain fails at the second DEL, with the real plugins
// beside the failpoint plugin.
func ExampleFailpointPlugin() {
	test := func(t *testing.T) {
		fp := ocinettest.FailpointPlugin(t)
		log := filepath.Join(t.TempDir(), "failpoint.log")
		entry, _ := json.Marshal(ocinettest.Failpoint{FailAt: "DEL", Mode: "fail", After: 1, Log: log})
		conf := `{"cniVersion":"1.0.0","name":"flaky","plugins":[` +
			`{"type":"bridge","bridge":"flaky0","ipam":{"type":"host-local","subnet":"10.99.0.0/24"}},` +
			string(entry) + `]}`
		confDir := t.TempDir()
		if err := os.WriteFile(filepath.Join(confDir, "flaky.conflist"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := ocinet.New(t.TempDir(), ocinet.WithCNIConfDir(confDir), ocinet.WithPluginDirs(fp, "/opt/cni/bin"))
		if err != nil {
			t.Fatal(err)
		}
		_ = m // attach with Networks: []string{"flaky"}, detach twice; ReadFailpointLog(log) says which calls acted
	}
	_ = test
}

// A plugin of the embedder's own, answered by a handler: here an IPAM-less
// plugin that gives every container the same fixed address.
func ExampleFakeCNI_Handle() {
	t := newExampleT()
	defer t.finish()

	e := ocinettest.NewEnv(t)
	conf := `{"cniVersion":"1.0.0","name":"fixed","plugins":[{"type":"my-plugin"}]}`
	if err := os.WriteFile(filepath.Join(e.ConfDir, "fixed.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	e.CNI.Handle("my-plugin", "ADD", func(c ocinettest.Call, prev *ocinettest.Result) (*ocinettest.Result, error) {
		_, ipn, _ := net.ParseCIDR("192.0.2.10/24")
		ipn.IP = net.ParseIP("192.0.2.10")
		return &ocinettest.Result{
			Interfaces: []*types100.Interface{{Name: c.IfName, Sandbox: c.NetNS}},
			IPs:        []*types100.IPConfig{{Interface: types100.Int(0), Address: *ipn}},
		}, nil
	})
	a, err := e.Manager.Attach(context.Background(), ocinet.AttachRequest{ID: "web", NetNS: e.NetNS("web"), Networks: []string{"fixed"}})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(a.Interfaces[0].Network, a.Interfaces[0].IPs)
	// Output:
	// fixed [192.0.2.10/24]
}

// A test of the embedder's own that needs root skips without it, and
// fails instead under CI=true.
func ExampleRequireRoot() {
	test := func(t *testing.T) {
		ocinettest.RequireRoot(t)
		// ... work with real namespaces and plugins ...
	}
	_ = test
}
