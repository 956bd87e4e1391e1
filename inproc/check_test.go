package inproc_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/vishvananda/netlink"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/testenv"
)

// TestCheck: CHECK in process passes on what ADD made in process (bridge,
// tuning and loopback), so does the binaries' CHECK, and CHECK in process
// fails, naming it, once the container's address is gone.
func TestCheck(t *testing.T) {
	testenv.RequireRoot(t)
	e := newEnv(t)
	conf := strings.ReplaceAll(strings.ReplaceAll(manyConf, "inpmany0", "inpchk0"), "10.216.20.", "10.216.50.")
	n := e.writeNetwork("inp-many.conflist", []byte(conf))
	ctx := context.Background()
	path := newNS(t)
	a, err := e.native.Attach(ctx, ocinet.AttachRequest{ID: "check", NetNS: path, Networks: []string{n.Name}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.native.Detach(ctx, "check"); err != nil {
			t.Error(err)
		}
	}()
	if err := e.native.Check(ctx, "check"); err != nil {
		t.Fatalf("check of a fresh attachment: %v", err)
	}
	// The binaries' CHECK finds what inproc made as they would have made it.
	list, err := libcni.ConfListFromBytes(n.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	binaries := libcni.NewCNIConfigWithCacheDir([]string{e.plugins}, e.cacheDir, defaultExec())
	if err := binaries.CheckNetworkList(ctx, list, &libcni.RuntimeConf{ContainerID: "check", NetNS: path, IfName: "eth0", Args: [][2]string{{"IgnoreUnknown", "1"}}}); err != nil {
		t.Fatalf("the plugin binaries' check of what inproc made: %v", err)
	}
	h := handleIn(t, path)
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	ip := a.Interfaces[0].IPs[0]
	if err := h.AddrDel(l, &netlink.Addr{IPNet: &net.IPNet{IP: ip.Addr().AsSlice(), Mask: net.CIDRMask(ip.Bits(), 32)}}); err != nil {
		t.Fatal(err)
	}
	err = e.native.Check(ctx, "check")
	if !errors.Is(err, ocinet.ErrPlugin) || !strings.Contains(err.Error(), ip.String()) {
		t.Fatalf("check without the address: %v, want a plugin error naming %s", err, ip)
	}
}

// TestGC: the Manager's GC with in-process plugins on a CNI 1.1.0 network
// (which gets the GC and STATUS verbs) keeps what is live and tears down
// what is not, with no plugin binary run; STATUS is ok.
func TestGC(t *testing.T) {
	testenv.RequireRoot(t)
	e := newEnv(t)
	conf := strings.ReplaceAll(strings.ReplaceAll(strings.Replace(manyConf, `"1.0.0"`, `"1.1.0"`, 1), "inpmany0", "inpgc0"), "10.216.20.", "10.216.51.")
	n := e.writeNetwork("inp-many.conflist", []byte(conf))
	ctx := context.Background()
	fb := &countingExec{Exec: defaultExec()}
	x, err := inproc.New(fb, inproc.WithRuntimeDir(e.lockDir))
	if err != nil {
		t.Fatal(err)
	}
	e.native = e.manager(e.stateNative, x)
	for _, id := range []string{"gc-live", "gc-dead"} {
		if _, err := e.native.Attach(ctx, ocinet.AttachRequest{ID: id, NetNS: newNS(t), Networks: []string{n.Name}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.native.Status(ctx, n.Name); err != nil {
		t.Errorf("status: %v", err)
	}
	rep, err := e.native.GC(ctx, func(id string) bool { return id == "gc-live" }, ocinet.GCOptions{})
	if err != nil {
		t.Fatalf("gc: %v (report %+v)", err, rep)
	}
	if _, err := e.native.Get("gc-dead"); !errors.Is(err, ocinet.ErrNotFound) {
		t.Errorf("gc-dead after GC: %v, want not found", err)
	}
	if err := e.native.Check(ctx, "gc-live"); err != nil {
		t.Errorf("gc-live after GC: %v", err)
	}
	if got := leases(t, "/var/lib/cni/networks", n.Name); len(got) != 1 {
		t.Errorf("leases after GC: %v, want gc-live's alone", got)
	}
	if err := e.native.Detach(ctx, "gc-live"); err != nil {
		t.Fatal(err)
	}
	if len(fb.ran) > 0 {
		t.Errorf("plugin binaries run: %v, want none (GC included)", fb.ran)
	}
}
