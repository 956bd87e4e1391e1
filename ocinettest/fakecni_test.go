package ocinettest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	cnitypes "github.com/containernetworking/cni/pkg/types"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hook"
	"github.com/ocinet/ocinet/ocinettest"
	"github.com/ocinet/ocinet/portmap"
	"github.com/ocinet/ocinet/sandbox"
)

func attach(t *testing.T, m *ocinet.Manager, req ocinet.AttachRequest) *ocinet.Attachment {
	t.Helper()
	a, err := m.Attach(context.Background(), req)
	if err != nil {
		t.Fatalf("attach %s: %v", req.ID, err)
	}
	return a
}

func detach(t *testing.T, m *ocinet.Manager, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := m.Detach(context.Background(), id); err != nil {
			t.Fatalf("detach %s: %v", id, err)
		}
	}
}

// detachClean detaches ids and checks that nothing is left.
func detachClean(t *testing.T, e *ocinettest.Env, ids ...string) {
	t.Helper()
	detach(t, e.Manager, ids...)
	e.CheckClean(t)
}

func TestAttachDetachOverFake(t *testing.T) {
	e := ocinettest.NewEnv(t)
	p, err := portmap.Parse("127.0.0.1:8080:80")
	if err != nil {
		t.Fatal(err)
	}
	a := attach(t, e.Manager, ocinet.AttachRequest{ID: "web", NetNS: e.NetNS("web"), Ports: []portmap.Mapping{p}})
	if len(a.Interfaces) != 1 || a.Interfaces[0].Name != "eth0" || len(a.Interfaces[0].IPs) != 1 {
		t.Fatalf("interfaces = %+v, want eth0 with one address", a.Interfaces)
	}
	if got := a.Interfaces[0].IPs[0]; !ocinettest.DefaultSubnet.Contains(got.Addr()) || got.Bits() != 24 {
		t.Errorf("address %s is not in %s", got, ocinettest.DefaultSubnet)
	}
	if len(a.Ports) != 1 || a.Ports[0].HostPort != 8080 {
		t.Errorf("ports = %+v, want host port 8080", a.Ports)
	}
	// The portmap plugin got the reserved port as a capability argument.
	var sawPorts bool
	for _, c := range e.CNI.CallsOf("ADD") {
		if c.Plugin == "portmap" {
			_, sawPorts = c.CapabilityArgs["portMappings"]
		}
	}
	if !sawPorts {
		t.Error("portmap's ADD had no portMappings")
	}
	if got := len(e.CNI.Leases()); got != 1 {
		t.Errorf("leases = %d, want 1", got)
	}
	// A second container gets another address.
	b := attach(t, e.Manager, ocinet.AttachRequest{ID: "db", NetNS: e.NetNS("db")})
	if b.Interfaces[0].IPs[0] == a.Interfaces[0].IPs[0] {
		t.Errorf("two containers share %s", a.Interfaces[0].IPs[0])
	}
	detach(t, e.Manager, "web", "db")
	// DEL ran in reverse order of ADD, with the recorded namespace path.
	var order []string
	for _, c := range e.CNI.CallsOf("DEL") {
		if c.ContainerID == "web" {
			order = append(order, c.Plugin)
			if c.NetNS != a.NetNS {
				t.Errorf("DEL of %s got namespace %q, want %q", c.Plugin, c.NetNS, a.NetNS)
			}
		}
	}
	if want := []string{"tuning", "firewall", "portmap", "bridge", "loopback"}; !slices.Equal(order, want) {
		t.Errorf("DEL order = %v, want %v", order, want)
	}
	e.CheckClean(t)
}

func TestStaticAddressOverFake(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ip := netip.MustParseAddr("10.4.0.77")
	a := attach(t, e.Manager, ocinet.AttachRequest{ID: "a", NetNS: e.NetNS("a"),
		PerNetwork: []ocinet.NetworkOptions{{Network: "bridge", IPs: []netip.Addr{ip}}}})
	if got := a.Interfaces[0].IPs[0].Addr(); got != ip {
		t.Errorf("address = %s, want %s", got, ip)
	}
	_, err := e.Manager.Attach(context.Background(), ocinet.AttachRequest{ID: "b", NetNS: e.NetNS("b"),
		PerNetwork: []ocinet.NetworkOptions{{Network: "bridge", IPs: []netip.Addr{ip}}}})
	if !errors.Is(err, ocinet.ErrConflict) {
		t.Errorf("second static %s: err = %v, want ErrConflict", ip, err)
	}
	detachClean(t, e, "a")
}

// A scripted failure reaches the caller as the right typed error, and the
// rollback leaves nothing behind.
func TestScriptedFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fault    ocinettest.Fault
		want     error
		notWant  error
		wantCode uint
	}{
		{"cni error", ocinettest.Fault{Command: "ADD", Plugin: "portmap"}, ocinet.ErrPlugin, nil, ocinettest.FaultCode},
		{"cni error with code", ocinettest.Fault{Command: "ADD", Plugin: "bridge", Err: cnitypes.NewError(cnitypes.ErrTryAgainLater, "busy", "")}, ocinet.ErrPlugin, nil, cnitypes.ErrTryAgainLater},
		{"plugin not run", ocinettest.Fault{Command: "ADD", Plugin: "firewall", Err: os.ErrPermission}, os.ErrPermission, ocinet.ErrPlugin, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ocinettest.NewEnv(t)
			inj := e.CNI.Inject(tc.fault)
			_, err := e.Manager.Attach(context.Background(), ocinet.AttachRequest{ID: "web", NetNS: e.NetNS("web")})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.notWant != nil && errors.Is(err, tc.notWant) {
				t.Errorf("err = %v, is %v too", err, tc.notWant)
			}
			var ce *cnitypes.Error
			if tc.wantCode != 0 && (!errors.As(err, &ce) || ce.Code != tc.wantCode) {
				t.Errorf("err = %v, want a CNI error with code %d", err, tc.wantCode)
			}
			if inj.Hits() != 1 {
				t.Errorf("fault acted %d times, want 1", inj.Hits())
			}
			if len(e.CNI.CallsOf("DEL")) == 0 {
				t.Error("no rollback DEL")
			}
			e.CheckClean(t)
		})
	}
}

func TestUninstalledPlugin(t *testing.T) {
	e := ocinettest.NewEnv(t)
	e.CNI.Uninstall("firewall")
	_, err := e.Manager.Attach(context.Background(), ocinet.AttachRequest{ID: "web", NetNS: e.NetNS("web")})
	var pe *ocinet.PluginNotFoundError
	if !errors.Is(err, ocinet.ErrPluginNotFound) || !errors.As(err, &pe) || pe.Plugin != "firewall" {
		t.Fatalf("err = %v, want ErrPluginNotFound naming firewall", err)
	}
	if n := len(e.CNI.Calls()); n != 0 {
		t.Errorf("%d plugin calls before the check refused", n)
	}
	e.CheckClean(t)
}

func TestAfterAndTimes(t *testing.T) {
	e := ocinettest.NewEnv(t)
	inj := e.CNI.Inject(ocinettest.Fault{Command: "ADD", Plugin: "bridge", After: 1, Times: 1})
	ctx := context.Background()
	attach(t, e.Manager, ocinet.AttachRequest{ID: "one", NetNS: e.NetNS("one")})
	if _, err := e.Manager.Attach(ctx, ocinet.AttachRequest{ID: "two", NetNS: e.NetNS("two")}); !errors.Is(err, ocinet.ErrPlugin) {
		t.Errorf("second attach: err = %v, want ErrPlugin", err)
	}
	attach(t, e.Manager, ocinet.AttachRequest{ID: "three", NetNS: e.NetNS("three")})
	if inj.Hits() != 1 {
		t.Errorf("hits = %d, want 1", inj.Hits())
	}
	detachClean(t, e, "one", "three")
}

// A failing DEL keeps the record; a later Detach finishes.
func TestFailingDetachOverFake(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	attach(t, e.Manager, ocinet.AttachRequest{ID: "web", NetNS: e.NetNS("web")})
	e.CNI.Inject(ocinettest.Fault{Command: "DEL", Plugin: "bridge", Times: 1})
	if err := e.Manager.Detach(ctx, "web"); !errors.Is(err, ocinet.ErrPlugin) {
		t.Fatalf("detach: err = %v, want ErrPlugin", err)
	}
	a, err := e.Manager.Get("web")
	if err != nil || a.Complete {
		t.Fatalf("after a failed detach: %+v, %v; want an incomplete record", a, err)
	}
	detachClean(t, e, "web")
}

// Crash in the middle of Attach, then a new Manager's GC finishes it.
func TestCrashThenGC(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault ocinettest.Fault
	}{
		{"before bridge ADD", ocinettest.Fault{Command: "ADD", Plugin: "bridge", Action: ocinettest.Crash}},
		{"after bridge ADD", ocinettest.Fault{Command: "ADD", Plugin: "bridge", Action: ocinettest.CrashAfter}},
		{"after firewall ADD", ocinettest.Fault{Command: "ADD", Plugin: "firewall", Action: ocinettest.CrashAfter}},
		{"during DEL", ocinettest.Fault{Command: "DEL", Plugin: "portmap", Action: ocinettest.Crash}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ocinettest.NewEnv(t)
			ctx := context.Background()
			p, _ := portmap.Parse("8080:80")
			req := ocinet.AttachRequest{ID: "web", NetNS: e.NetNS("web"), Ports: []portmap.Mapping{p}}
			if tc.fault.Command == "DEL" {
				attach(t, e.Manager, req)
			}
			e.CNI.Inject(tc.fault)
			crashed := ocinettest.Crashed(func() {
				if tc.fault.Command == "DEL" {
					_ = e.Manager.Detach(ctx, req.ID)
				} else {
					_, _ = e.Manager.Attach(ctx, req)
				}
			})
			if !crashed {
				t.Fatal("no crash")
			}
			e.CNI.ClearFaults()
			a, err := e.Manager.Get("web")
			if err != nil || a.Complete {
				t.Fatalf("after the crash: %+v, %v; want an incomplete record", a, err)
			}
			if tc.fault.Action == ocinettest.CrashAfter && len(e.CNI.Leases()) == 0 {
				t.Error("the plugin's work before the crash is not there")
			}
			m := e.NewManager()
			rep, err := m.GC(ctx, nil, ocinet.GCOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rep.Finished, []string{"web"}) {
				t.Errorf("finished = %v, want [web]", rep.Finished)
			}
			e.CheckClean(t)
		})
	}
}

// attachHeld attaches "web" on a goroutine, with the ADD of plugin held,
// and returns once the held call is reached; done receives Attach's error
// after inj.Release.
func attachHeld(t *testing.T, e *ocinettest.Env, plugin string) (inj *ocinettest.Injection, done <-chan error) {
	t.Helper()
	inj = e.CNI.Inject(ocinettest.Fault{Command: "ADD", Plugin: plugin, Action: ocinettest.Hold})
	ch := make(chan error, 1)
	go func() {
		_, err := e.Manager.Attach(context.Background(), ocinet.AttachRequest{ID: "web", NetNS: e.NetNS("web")})
		ch <- err
	}()
	select {
	case <-inj.Reached():
	case <-time.After(10 * time.Second):
		t.Fatal("the held call was not reached")
	}
	return inj, ch
}

// A held call shows the journal mid-way, then goes on.
func TestHold(t *testing.T) {
	e := ocinettest.NewEnv(t)
	inj, done := attachHeld(t, e, "firewall")
	a, err := e.NewManager().Get("web")
	if err != nil || a.Complete || len(a.Interfaces) != 1 || len(a.Interfaces[0].IPs) != 1 {
		t.Errorf("mid-way: %+v, %v; want an incomplete record that knows the address", a, err)
	}
	inj.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	detachClean(t, e, "web")
}

// A held call ends with its context.
func TestHoldCancelled(t *testing.T) {
	e := ocinettest.NewEnv(t)
	e.CNI.Inject(ocinettest.Fault{Command: "ADD", Plugin: "bridge", Action: ocinettest.Hold, Times: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := e.Manager.Attach(ctx, ocinet.AttachRequest{ID: "web", NetNS: e.NetNS("web")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	e.CheckClean(t)
}

// The namespace goes away before Detach: DEL runs without a path and
// still releases everything.
func TestNamespaceGoneOverFake(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ns := e.NetNS("web")
	attach(t, e.Manager, ocinet.AttachRequest{ID: "web", NetNS: ns})
	if err := os.Remove(ns); err != nil {
		t.Fatal(err)
	}
	if err := e.Manager.Detach(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	for _, c := range e.CNI.CallsOf("DEL") {
		if c.NetNS != "" {
			t.Errorf("DEL of %s got namespace %q after it was gone", c.Plugin, c.NetNS)
		}
	}
	e.CheckClean(t)
}

func TestCheckAndStatusOverFake(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	attach(t, e.Manager, ocinet.AttachRequest{ID: "web", NetNS: e.NetNS("web")})
	if err := e.Manager.Check(ctx, "web"); err != nil {
		t.Errorf("check: %v", err)
	}
	e.CNI.Inject(ocinettest.Fault{Command: "CHECK", Plugin: "firewall"})
	if err := e.Manager.Check(ctx, "web"); !errors.Is(err, ocinet.ErrPlugin) {
		t.Errorf("check with a failing plugin: err = %v, want ErrPlugin", err)
	}
	if err := e.Manager.Detach(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if err := e.Manager.Check(ctx, "web"); !errors.Is(err, ocinet.ErrNotFound) {
		t.Errorf("check after detach: err = %v, want ErrNotFound", err)
	}
	e.CheckClean(t)
}

func TestHandle(t *testing.T) {
	e := ocinettest.NewEnv(t)
	var mu sync.Mutex
	var seen []string
	e.CNI.Handle("portmap", "ADD", func(c ocinettest.Call, prev *ocinettest.Result) (*ocinettest.Result, error) {
		mu.Lock()
		seen = append(seen, c.ContainerID)
		mu.Unlock()
		return prev, nil
	})
	attach(t, e.Manager, ocinet.AttachRequest{ID: "web", NetNS: e.NetNS("web")})
	if !slices.Equal(seen, []string{"web"}) {
		t.Errorf("handler saw %v", seen)
	}
	detachClean(t, e, "web")
}

// The hook's request handling over the fake: parsing, validation, the
// hosts store, GC of a namespace's containers.
func TestHookOverFake(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	p, _ := portmap.Parse("8080:80")
	a, err := sandbox.Attach(ctx, e.Sandbox, "web", e.NetNS("web"), sandbox.Request{Name: "web", Hostname: "web", Ports: []portmap.Mapping{p}})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != e.Sandbox.AttachmentID("web") || a.Labels[hook.LabelContainer] != "web" {
		t.Errorf("attachment %s labels %v", a.ID, a.Labels)
	}
	if _, err := sandbox.Attach(ctx, e.Sandbox, "bad", e.NetNS("bad"), sandbox.Request{Name: "a b"}); !errors.Is(err, hook.ErrInvalid) {
		t.Errorf("bad name: err = %v, want ErrInvalid", err)
	}
	rep, err := sandbox.GC(ctx, e.Sandbox, func(string) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Released, []string{a.ID}) {
		t.Errorf("released = %v, want [%s]", rep.Released, a.ID)
	}
	e.CheckClean(t)
}

// GC sends the CNI GC verb to networks of CNI 1.1.0, naming the
// attachments that remain; the fake releases the others' addresses.
func TestGCVerbOverFake(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	conf := `{"cniVersion":"1.1.0","name":"gcnet","plugins":[{"type":"bridge","bridge":"gc0",` +
		`"ipam":{"type":"host-local","ranges":[[{"subnet":"10.77.0.0/24"}]]}}]}`
	if err := os.WriteFile(filepath.Join(e.ConfDir, "gcnet.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"live", "dead"} {
		attach(t, e.Manager, ocinet.AttachRequest{ID: id, NetNS: e.NetNS(id), Networks: []string{"gcnet"}})
	}
	rep, err := e.Manager.GC(ctx, func(id string) bool { return id == "live" }, ocinet.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Released, []string{"dead"}) || !slices.Equal(rep.Networks, []string{"gcnet"}) {
		t.Errorf("report = %+v, want dead released and gcnet collected", rep)
	}
	gc := e.CNI.CallsOf("GC")
	if len(gc) != 1 || !slices.Equal(gc[0].Valid, []cnitypes.GCAttachment{{ContainerID: "live", IfName: "eth0"}}) {
		t.Errorf("GC calls = %+v, want one naming live/eth0 as valid", gc)
	}
	if l := e.CNI.Leases(); len(l) != 1 || l[0].ContainerID != "live" {
		t.Errorf("leases = %+v, want live's only", l)
	}
	detachClean(t, e, "live")
}

// Attachments at once get distinct addresses and all detach cleanly.
func TestConcurrentOverFake(t *testing.T) {
	e := ocinettest.NewEnv(t)
	const n = 16
	addrs := make([]netip.Addr, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("c%d", i)
			a, err := e.Manager.Attach(context.Background(), ocinet.AttachRequest{ID: id, NetNS: e.NetNS(id)})
			if err == nil {
				addrs[i] = a.Interfaces[0].IPs[0].Addr()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	seen := map[netip.Addr]bool{}
	var ids []string
	for i, err := range errs {
		if err != nil {
			t.Fatalf("attach c%d: %v", i, err)
		}
		if seen[addrs[i]] {
			t.Errorf("%s given twice", addrs[i])
		}
		seen[addrs[i]] = true
		ids = append(ids, fmt.Sprintf("c%d", i))
	}
	detachClean(t, e, ids...)
}

// The journal is written before the first plugin that can leave anything
// behind runs (the loopback's ADD runs while it is written: lo goes with
// the namespace): held at the first plugin of the container's network, a
// new process already finds the record, in phase adding, naming the
// network it is about to add.
func TestJournalBeforeFirstADD(t *testing.T) {
	e := ocinettest.NewEnv(t)
	inj, done := attachHeld(t, e, "bridge")
	b, err := os.ReadFile(filepath.Join(e.StateDir, "attachments", "web.json"))
	if err != nil {
		t.Fatalf("no journal record at the network's first plugin's ADD: %v", err)
	}
	var rec struct {
		Phase    string `json:"phase"`
		Networks []struct {
			Name string `json:"name"`
		} `json:"networks"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Phase != "adding" || len(rec.Networks) != 1 || rec.Networks[0].Name != ocinet.DefaultNetworkName {
		t.Errorf("record at the first ADD: %s; want phase adding and the default network", b)
	}
	inj.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	detachClean(t, e, "web")
}
