package inproc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
)

// probeExec is the fallback executor of an in-process Exec that runs the
// plugin "probe" itself, as a plugin binary would run: it checks, in the
// container's namespace, that the interface of the previous result has
// its address, is up and has its default route, and passes the previous
// result on. Every other plugin goes to the binaries.
type probeExec struct {
	invoke.Exec
	mu    sync.Mutex
	calls int
	err   error // what the last check found wrong
}

func (p *probeExec) FindInPath(plugin string, paths []string) (string, error) {
	if plugin == "probe" {
		return "/nonexistent/probe", nil
	}
	return p.Exec.FindInPath(plugin, paths)
}

func (p *probeExec) ExecPlugin(ctx context.Context, path string, stdin []byte, environ []string) ([]byte, error) {
	if !strings.HasSuffix(path, "/probe") {
		return p.Exec.ExecPlugin(ctx, path, stdin, environ)
	}
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	var conf struct {
		PrevResult json.RawMessage `json:"prevResult"`
	}
	if err := json.Unmarshal(stdin, &conf); err != nil {
		return nil, err
	}
	if env["CNI_COMMAND"] != "ADD" {
		return nil, nil
	}
	res, err := types100.NewResult(conf.PrevResult)
	if err != nil {
		return nil, err
	}
	r := res.(*types100.Result)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	p.err = probeInterface(env["CNI_NETNS"], env["CNI_IFNAME"], r)
	return json.Marshal(r)
}

// probeInterface reports what is missing of the interface ifName in the
// namespace at path: the result's first address, the link up, a default
// route.
func probeInterface(path, ifName string, r *types100.Result) error {
	if len(r.IPs) == 0 {
		return errors.New("the previous result has no address")
	}
	ns, err := netnsHandle(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	l, err := ns.LinkByName(ifName)
	if err != nil {
		return err
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("%s is down", ifName)
	}
	addrs, err := ns.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.IP.Equal(r.IPs[0].Address.IP) }) {
		return fmt.Errorf("%s has not got %s (it has %v)", ifName, r.IPs[0].Address.IP, addrs)
	}
	routes, err := ns.RouteList(l, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(routes, func(rt netlink.Route) bool { return rt.Dst == nil || rt.Dst.String() == "0.0.0.0/0" }) {
		return fmt.Errorf("%s has no default route (routes %v)", ifName, routes)
	}
	return nil
}

// unfinishedChain is a chain of the in-process bridge (its own lease
// directory), portmap and firewall, and then the probe, a plugin that is
// not the in-process portmap or firewall and must wait for what the
// bridge finishes after its result. routes are the IPAM routes.
func unfinishedChain(t *testing.T, name, bridge, subnet, dataDir, routes string) *libcni.NetworkConfigList {
	t.Helper()
	b := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[
		{"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":true,"hairpinMode":true,
		 "ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":%q}]],"routes":%s}},
		{"type":"portmap","capabilities":{"portMappings":true}},
		{"type":"firewall","ingressPolicy":"same-bridge"},
		{"type":"probe"}]}`, name, bridge, dataDir, subnet, routes)
	list, err := libcni.ConfListFromBytes([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// TestUnfinished: under WithUnfinished, the in-process bridge returns its
// result before the container's interface is configured; the chain's
// portmap and firewall run meanwhile, and a later plugin (here a plugin
// "binary", the probe) runs only once the interface has its address, its
// default route and is up. The bridge's unfinished part is held up in its
// first step, so that a portmap or firewall that waited, or a probe that
// did not, is seen.
func TestUnfinished(t *testing.T) {
	testenv.RequireRoot(t)
	e := newEnv(t)
	probe := &probeExec{Exec: defaultExec()}
	var mu sync.Mutex
	var steps []string
	x, err := inproc.New(probe, inproc.WithRuntimeDir(e.lockDir), inproc.WithStepHook(func(s string) {
		if s == "inproc:ADD:bridge:port" {
			time.Sleep(300 * time.Millisecond)
		}
		mu.Lock()
		steps = append(steps, strings.TrimPrefix(s, "inproc:"))
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	list := unfinishedChain(t, "inp-unf1", "inpunf1", "10.216.70.0/24", dataDir, `[{"dst":"0.0.0.0/0"}]`)
	e.forget(list.Bytes, "inpunf1")
	path := newNS(t)
	rt := &libcni.RuntimeConf{ContainerID: "unf-c1", NetNS: path, IfName: "eth0",
		CapabilityArgs: map[string]any{"portMappings": []map[string]any{{"hostPort": 18470, "containerPort": 80, "protocol": "tcp"}}}}
	cni := libcni.NewCNIConfigWithCacheDir([]string{e.plugins}, e.cacheDir, x)
	ctx, u := inproc.WithUnfinished(context.Background())
	res, err := cni.AddNetworkList(ctx, list, rt)
	if werr := u.Wait(); werr != nil {
		t.Errorf("Wait: %v", werr)
	}
	t.Cleanup(func() {
		if err := cni.DelNetworkList(context.Background(), list, rt); err != nil {
			t.Errorf("DEL: %v", err)
		}
		if l := leases(t, dataDir, list.Name); len(l) != 0 {
			t.Errorf("leases after DEL: %v", l)
		}
	})
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if probe.calls != 1 || probe.err != nil {
		t.Errorf("the probe ran %d times and found: %v; want once, everything in place", probe.calls, probe.err)
	}
	mu.Lock()
	order := slices.Clone(steps)
	mu.Unlock()
	at := func(s string) int {
		i := slices.Index(order, s)
		if i < 0 {
			t.Fatalf("step %s never came (steps %v)", s, order)
		}
		return i
	}
	for _, s := range []string{"ADD:portmap:elements", "ADD:firewall:elements"} {
		if at(s) > at("ADD:bridge:addrs") {
			t.Errorf("step %s came after the bridge configured the interface (steps %v): it did not run beside it", s, order)
		}
	}
	r := mustResult(t, res)
	if err := probeInterface(path, "eth0", r); err != nil {
		t.Errorf("after Wait: %v", err)
	}
	// The MACs of the result are the links' (the bridge chose them, and
	// nothing on the host changed them), unicast and locally administered.
	h, err := netnsHandle(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	cont, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	host, err := netlink.LinkByName(r.Interfaces[1].Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		link netlink.Link
		want string
	}{{"container end", cont, r.Interfaces[2].Mac}, {"host end", host, r.Interfaces[1].Mac}} {
		mac := c.link.Attrs().HardwareAddr
		if mac.String() != c.want {
			t.Errorf("%s: MAC %s, the result says %s", c.what, mac, c.want)
		}
		if len(mac) != 6 || mac[0]&0x01 != 0 || mac[0]&0x02 == 0 {
			t.Errorf("%s: MAC %s is not unicast and locally administered", c.what, mac)
		}
	}
}

func mustResult(t *testing.T, res types.Result) *types100.Result {
	t.Helper()
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// netnsHandle opens a netlink handle in the namespace at path.
func netnsHandle(path string) (*netlink.Handle, error) {
	ns, err := netns.Open(path)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	return netlink.NewHandleAt(vnetns.NsHandle(int(ns.Fd())))
}

// TestUnfinishedFails: when what the bridge finishes after its result
// fails (a route whose gateway is not on the link), the plugin that waits
// for it fails with its error, the probe never looks, Wait returns the
// same error, and the chain's DEL removes everything.
func TestUnfinishedFails(t *testing.T) {
	testenv.RequireRoot(t)
	e := newEnv(t)
	probe := &probeExec{Exec: defaultExec()}
	x, err := inproc.New(probe, inproc.WithRuntimeDir(e.lockDir))
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	list := unfinishedChain(t, "inp-unf2", "inpunf2", "10.216.71.0/24", dataDir, `[{"dst":"10.217.0.0/16","gw":"192.0.2.1"}]`)
	e.forget(list.Bytes, "inpunf2")
	path := newNS(t)
	rt := &libcni.RuntimeConf{ContainerID: "unf-c2", NetNS: path, IfName: "eth0"}
	cni := libcni.NewCNIConfigWithCacheDir([]string{e.plugins}, e.cacheDir, x)
	ctx, u := inproc.WithUnfinished(context.Background())
	_, err = cni.AddNetworkList(ctx, list, rt)
	werr := u.Wait()
	if werr == nil || !strings.Contains(werr.Error(), "192.0.2.1") {
		t.Errorf("Wait: %v, want the route's error", werr)
	}
	checkPluginError(t, err, werr, "did not finish")
	if probe.calls != 0 {
		t.Errorf("the probe ran %d times, want none", probe.calls)
	}
	if err := cni.DelNetworkList(context.Background(), list, rt); err != nil {
		t.Errorf("DEL: %v", err)
	}
	if l := leases(t, dataDir, list.Name); len(l) != 0 {
		t.Errorf("leases after DEL: %v", l)
	}
	if got := namespaceLinks(t, path); got != "lo" {
		t.Errorf("links in the namespace after DEL: %s, want lo only", got)
	}
}

// TestAttachUnfinishedFails: a Manager's Attach whose bridge fails after
// its result (the route again) fails with the route's error and leaves
// nothing: no record, nothing in the namespace, nothing on the host (the
// leak check).
func TestAttachUnfinishedFails(t *testing.T) {
	testenv.RequireRoot(t)
	e := newEnv(t)
	conf := strings.ReplaceAll(strings.ReplaceAll(crashConf, "inpmany0", "inpunf3"), "10.216.20.", "10.216.72.")
	conf = strings.Replace(conf, `"routes":[{"dst":"0.0.0.0/0"}]`, `"routes":[{"dst":"0.0.0.0/0"},{"dst":"10.217.0.0/16","gw":"192.0.2.1"}]`, 1)
	n := e.writeNetwork("inp-unf3.conflist", []byte(conf))
	path := newNS(t)
	_, err := e.native.Attach(context.Background(), ocinet.AttachRequest{ID: "unf-c3", NetNS: path, Networks: []string{n.Name}})
	if err == nil || !strings.Contains(err.Error(), "192.0.2.1") {
		t.Fatalf("Attach: %v, want the route's error", err)
	}
	if _, err := e.native.Get("unf-c3"); !errors.Is(err, ocinet.ErrNotFound) {
		t.Errorf("record after the failed Attach: %v, want none", err)
	}
	if got := namespaceLinks(t, path); got != "lo" {
		t.Errorf("links in the namespace after the failed Attach: %s, want lo only", got)
	}
}
