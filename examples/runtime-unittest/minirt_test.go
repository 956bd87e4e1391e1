package minirt_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ocinet/ocinet"
	minirt "github.com/ocinet/ocinet/examples/runtime-unittest"
	"github.com/ocinet/ocinet/ocinettest"
	"github.com/ocinet/ocinet/portmap"
)

func newRuntime(t *testing.T) (*minirt.Runtime, *ocinettest.Env) {
	e := ocinettest.NewEnv(t)
	return &minirt.Runtime{Net: e.Manager, Dir: t.TempDir()}, e
}

func TestStartStop(t *testing.T) {
	rt, e := newRuntime(t)
	ctx := context.Background()
	addr, err := rt.Start(ctx, minirt.Container{ID: "web", NetNS: e.NetNS("web"), Ports: []string{"8080:80"}})
	if err != nil {
		t.Fatal(err)
	}
	if !ocinettest.DefaultSubnet.Contains(addr) {
		t.Errorf("address %s is not on the default network %s", addr, ocinettest.DefaultSubnet)
	}
	if err := rt.Stop(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	e.CheckClean(t)
}

// A plugin that fails makes Start fail with ocinet.ErrPlugin, and leaves
// neither a record of the runtime's nor anything of ocinet's.
func TestStartPluginFails(t *testing.T) {
	rt, e := newRuntime(t)
	e.CNI.Inject(ocinettest.Fault{Command: "ADD", Plugin: "bridge"})
	_, err := rt.Start(context.Background(), minirt.Container{ID: "web", NetNS: e.NetNS("web")})
	if !errors.Is(err, ocinet.ErrPlugin) {
		t.Fatalf("err = %v, want ocinet.ErrPlugin", err)
	}
	if _, err := os.Stat(filepath.Join(rt.Dir, "web")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the runtime recorded a container that did not start (%v)", err)
	}
	e.CheckClean(t)
}

// The runtime's own step after attaching fails: Start undoes the attach.
func TestStartRecordFails(t *testing.T) {
	rt, e := newRuntime(t)
	rt.Dir = filepath.Join(rt.Dir, "missing")
	if _, err := rt.Start(context.Background(), minirt.Container{ID: "web", NetNS: e.NetNS("web")}); err == nil {
		t.Fatal("start succeeded without its directory")
	}
	e.CheckClean(t)
}

func TestPortTaken(t *testing.T) {
	rt, e := newRuntime(t)
	ctx := context.Background()
	if _, err := rt.Start(ctx, minirt.Container{ID: "a", NetNS: e.NetNS("a"), Ports: []string{"8080:80"}}); err != nil {
		t.Fatal(err)
	}
	_, err := rt.Start(ctx, minirt.Container{ID: "b", NetNS: e.NetNS("b"), Ports: []string{"8080:80"}})
	var ce *portmap.ConflictError
	if !errors.Is(err, portmap.ErrConflict) || !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *portmap.ConflictError", err)
	}
	if err := rt.Stop(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	e.CheckClean(t)
}

// The runtime dies in the middle of Start; the next runtime's Recover
// releases what it left.
func TestCrashThenRecover(t *testing.T) {
	rt, e := newRuntime(t)
	ctx := context.Background()
	e.CNI.Inject(ocinettest.Fault{Command: "ADD", Plugin: "portmap", Action: ocinettest.CrashAfter})
	if !ocinettest.Crashed(func() {
		_, _ = rt.Start(ctx, minirt.Container{ID: "web", NetNS: e.NetNS("web"), Ports: []string{"8080:80"}})
	}) {
		t.Fatal("Start did not crash")
	}
	e.CNI.ClearFaults()
	if len(e.Leftovers()) == 0 {
		t.Fatal("the crash left nothing to recover")
	}
	next := &minirt.Runtime{Net: e.NewManager(), Dir: rt.Dir}
	if err := next.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	e.CheckClean(t)
}
