package inproc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
)

// bridgeList is a conflist of one in-process bridge plugin with its own
// lease directory, as the CNI library gets it.
func bridgeList(t testing.TB, name, bridge, subnet, dataDir string, extra string) *libcni.NetworkConfigList {
	t.Helper()
	b := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[{"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":true,"hairpinMode":true%s,
		"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":%q}]],"routes":[{"dst":"0.0.0.0/0"}]}}]}`, name, bridge, extra, dataDir, subnet)
	list, err := libcni.ConfListFromBytes([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// leases lists the addresses host-local holds in dataDir for network.
func leases(t testing.TB, dataDir, network string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dataDir, network))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != "lock" && !strings.HasPrefix(e.Name(), "last_reserved_ip") {
			out = append(out, e.Name())
		}
	}
	return out
}

// cniFor returns the CNI library over the env's in-process executor.
func (e *env) cniFor() *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir([]string{e.plugins}, e.cacheDir, e.exec)
}

// checkPluginError checks that err is what a plugin binary's error looks
// like to the CNI library (a *types.Error), wraps sentinel, and names what.
func checkPluginError(t *testing.T, err, sentinel error, what string) {
	t.Helper()
	var te *types.Error
	switch {
	case err == nil:
		t.Fatalf("no error, want one wrapping %v", sentinel)
	case !errors.As(err, &te):
		t.Errorf("error %q is not a CNI error (%T)", err, err)
	case !errors.Is(err, sentinel):
		t.Errorf("error %q does not wrap %v", err, sentinel)
	case !strings.Contains(te.Msg, what):
		t.Errorf("error %q does not name %q", te.Msg, what)
	}
}

func TestErrors(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	type tc struct {
		name     string
		prepare  func(t *testing.T, e *env, dataDir, path string) (list *libcni.NetworkConfigList, rt *libcni.RuntimeConf)
		sentinel error
		// what the message must name
		what string
	}
	rt := func(path string) *libcni.RuntimeConf {
		return &libcni.RuntimeConf{ContainerID: "err-c1", NetNS: path, IfName: "eth0"}
	}
	cases := []tc{
		{"interface taken", func(t *testing.T, e *env, dataDir, path string) (*libcni.NetworkConfigList, *libcni.RuntimeConf) {
			inNamespaceVeth(t, path, "eth0", "taken0")
			return bridgeList(t, "inp-err1", "inperr1", "10.216.1.0/24", dataDir, ""), rt(path)
		}, inproc.ErrConflict, "eth0"},
		{"namespace gone", func(t *testing.T, e *env, dataDir, path string) (*libcni.NetworkConfigList, *libcni.RuntimeConf) {
			gonePath := newNS(t)
			if err := netns.Remove(gonePath); err != nil {
				t.Fatal(err)
			}
			return bridgeList(t, "inp-err2", "inperr2", "10.216.2.0/24", dataDir, ""), rt(gonePath)
		}, inproc.ErrNotFound, "namespace /"},
		{"bridge name is a veth", func(t *testing.T, e *env, dataDir, path string) (*libcni.NetworkConfigList, *libcni.RuntimeConf) {
			hostVeth(t, "inperr3", "inperr3p")
			return bridgeList(t, "inp-err3", "inperr3", "10.216.3.0/24", dataDir, ""), rt(path)
		}, inproc.ErrConflict, "inperr3"},
		{"subnet full", func(t *testing.T, e *env, dataDir, path string) (*libcni.NetworkConfigList, *libcni.RuntimeConf) {
			// A /30 has two host addresses: the gateway and one more.
			list := bridgeList(t, "inp-err4", "inperr4", "10.216.4.0/30", dataDir, "")
			e.forget(list.Bytes, "inperr4") // made by the first container
			other := newNS(t)
			first := &libcni.RuntimeConf{ContainerID: "err-first", NetNS: other, IfName: "eth0"}
			if _, err := e.cniFor().AddNetworkList(ctx, list, first); err != nil {
				t.Fatalf("first container: %v", err)
			}
			t.Cleanup(func() {
				if err := e.cniFor().DelNetworkList(ctx, list, first); err != nil {
					t.Errorf("del first container: %v", err)
				}
			})
			return list, rt(path)
		}, inproc.ErrConflict, "10.216.4.0/30"},
		{"lease directory is a symlink", func(t *testing.T, e *env, dataDir, path string) (*libcni.NetworkConfigList, *libcni.RuntimeConf) {
			if err := os.Symlink(t.TempDir(), filepath.Join(dataDir, "inp-err5")); err != nil {
				t.Fatal(err)
			}
			return bridgeList(t, "inp-err5", "inperr5", "10.216.5.0/24", dataDir, ""), rt(path)
		}, inproc.ErrInvalid, filepath.Join("inp-err5")},
		{"hairpin and promiscuous", func(t *testing.T, e *env, dataDir, path string) (*libcni.NetworkConfigList, *libcni.RuntimeConf) {
			return bridgeList(t, "inp-err6", "inperr6", "10.216.6.0/24", dataDir, `,"promiscMode":true`), rt(path)
		}, inproc.ErrInvalid, "hairpin"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			dataDir := t.TempDir()
			path := newNS(t)
			list, rt := c.prepare(t, e, dataDir, path)
			var conf struct {
				Bridge string `json:"bridge"`
			}
			if err := json.Unmarshal(list.Plugins[0].Bytes, &conf); err != nil {
				t.Fatal(err)
			}
			e.forget(list.Bytes, conf.Bridge)
			before := leases(t, dataDir, list.Name)
			_, err := e.cniFor().AddNetworkList(ctx, list, rt)
			checkPluginError(t, err, c.sentinel, c.what)
			// What ADD refused, DEL still takes (as a rollback does).
			if err := e.cniFor().DelNetworkList(ctx, list, rt); err != nil {
				t.Errorf("DEL after the failed ADD: %v", err)
			}
			// Nothing of this container is left: no lease (the leak check
			// sees veths and the table), no link in the namespace.
			if after := leases(t, dataDir, list.Name); len(after) != len(before) {
				t.Errorf("leases before %v, after the failed ADD %v", before, after)
			}
			if _, err := os.Stat(path); err == nil && c.name != "interface taken" {
				if got := namespaceLinks(t, path); got != "lo" {
					t.Errorf("links in the namespace after the failed ADD: %s, want lo only", got)
				}
			}
		})
	}
}

// inNamespaceVeth makes a veth pair inside the namespace at path.
func inNamespaceVeth(t *testing.T, path, name, peer string) {
	t.Helper()
	h := handleIn(t, path)
	defer h.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: peer}); err != nil {
		t.Fatal(err)
	}
}

// hostVeth makes a veth pair in the test's namespace, removed at the end.
func hostVeth(t *testing.T, name, peer string) {
	t.Helper()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: peer}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netlinkDel(name) })
}

func handleIn(t testing.TB, path string) *netlink.Handle {
	t.Helper()
	ns, err := netns.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(vnetns.NsHandle(int(ns.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// namespaceLinks lists the link names in a namespace, sorted.
func namespaceLinks(t testing.TB, path string) string {
	t.Helper()
	h := handleIn(t, path)
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	return sortedLines(names)
}

// TestDelNamespaceGone: DEL after the namespace went releases the lease and
// succeeds, and DEL again does too (the CNI library's cache is gone after
// the first, so the second runs from the config alone).
func TestDelNamespaceGone(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	e := newEnv(t)
	dataDir := t.TempDir()
	list := bridgeList(t, "inp-del", "inpdel0", "10.216.10.0/24", dataDir, "")
	e.forget(list.Bytes, "inpdel0")
	path, err := netns.Create("", "")
	if err != nil {
		t.Fatal(err)
	}
	rt := &libcni.RuntimeConf{ContainerID: "del-c1", NetNS: path, IfName: "eth0"}
	if _, err := e.cniFor().AddNetworkList(ctx, list, rt); err != nil {
		t.Fatal(err)
	}
	if got := leases(t, dataDir, "inp-del"); len(got) != 1 {
		t.Fatalf("leases after ADD: %v, want one", got)
	}
	if err := netns.Remove(path); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := e.cniFor().DelNetworkList(ctx, list, rt); err != nil {
			t.Fatalf("DEL %d with the namespace gone: %v", i+1, err)
		}
		if got := leases(t, dataDir, "inp-del"); len(got) != 0 {
			t.Fatalf("leases after DEL %d: %v, want none", i+1, got)
		}
	}
}

// TestDelTwice: DEL with the namespace there removes the veth pair and the
// lease; DEL again changes nothing and succeeds.
func TestDelTwice(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	e := newEnv(t)
	dataDir := t.TempDir()
	list := bridgeList(t, "inp-del2", "inpdel2", "10.216.11.0/24", dataDir, "")
	e.forget(list.Bytes, "inpdel2")
	path := newNS(t)
	rt := &libcni.RuntimeConf{ContainerID: "del-c2", NetNS: path, IfName: "eth0"}
	if _, err := e.cniFor().AddNetworkList(ctx, list, rt); err != nil {
		t.Fatal(err)
	}
	if got := namespaceLinks(t, path); got != "eth0\nlo" {
		t.Fatalf("links after ADD: %q", got)
	}
	for i := range 2 {
		if err := e.cniFor().DelNetworkList(ctx, list, rt); err != nil {
			t.Fatalf("DEL %d: %v", i+1, err)
		}
		if got := namespaceLinks(t, path); got != "lo" {
			t.Errorf("links after DEL %d: %q, want lo", i+1, got)
		}
		if got := leases(t, dataDir, "inp-del2"); len(got) != 0 {
			t.Errorf("leases after DEL %d: %v", i+1, got)
		}
	}
}
