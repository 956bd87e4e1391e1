package ocinet_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/internal/leakcheck"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
	"github.com/ocinet/ocinet/ocinettest"
	"github.com/ocinet/ocinet/portmap"
)

// setup returns a Manager on a fresh state root and conf dir with the real
// plugins, and a fresh namespace; a leak check runs when the test ends.
func setup(t *testing.T) (*ocinet.Manager, string, string) {
	t.Helper()
	e := newEnv(t)
	return e.m, e.confDir, e.ns()
}

func TestAttachDetach(t *testing.T) {
	m, _, ns := setup(t)
	ctx := context.Background()
	p, err := portmap.Parse("127.0.0.1:28080:80")
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.Attach(ctx, ocinet.AttachRequest{ID: "test-web", Name: "web", NetNS: ns, Ports: []portmap.Mapping{p}})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Interfaces) != 1 || a.Interfaces[0].Name != "eth0" || a.Interfaces[0].Network != "bridge" || len(a.Interfaces[0].IPs) != 1 {
		t.Fatalf("attachment: %+v", a)
	}
	ip := a.Interfaces[0].IPs[0]
	if got := addrsIn(t, ns); !strings.Contains(got, "eth0") || !strings.Contains(got, ip.String()) || !strings.Contains(got, "127.0.0.1/8") {
		t.Errorf("addresses in the namespace do not show eth0 %s and lo:\n%s", ip, got)
	}
	if len(a.Ports) != 1 || a.Ports[0].HostPort != 28080 {
		t.Errorf("ports: %+v", a.Ports)
	}
	got, err := m.Get("test-web")
	if err != nil || !got.Complete || got.Interfaces[0].IPs[0] != ip {
		t.Errorf("Get = %+v, %v", got, err)
	}
	list, err := m.List()
	if err != nil || len(list) != 1 || list[0].ID != "test-web" {
		t.Errorf("List = %+v, %v", list, err)
	}
	if err := m.Detach(ctx, "test-web"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get("test-web"); !errors.Is(err, ocinet.ErrNotFound) {
		t.Errorf("Get after Detach: err = %v, want ErrNotFound", err)
	}
	if got := addrsIn(t, ns); strings.Contains(got, "eth0") {
		t.Errorf("eth0 still in the namespace after Detach:\n%s", got)
	}
	// Detaching again does nothing.
	if err := m.Detach(ctx, "test-web"); err != nil {
		t.Errorf("second Detach: %v", err)
	}
}

func TestAttachTwiceReplaces(t *testing.T) {
	m, _, ns := setup(t)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if _, err := m.Attach(ctx, ocinet.AttachRequest{ID: "twice", NetNS: ns}); err != nil {
			t.Fatalf("attach %d: %v", i, err)
		}
	}
	if got := addrsIn(t, ns); strings.Count(got, ": eth0 ") != 1 {
		t.Errorf("eth0 addresses after two attaches:\n%s", got)
	}
	if err := m.Detach(ctx, "twice"); err != nil {
		t.Fatal(err)
	}
}

// TestDetachNamespaceGone: the container's namespace is gone before DEL
// (the process died and nothing pinned it); DEL still releases the address
// and the firewall rules (the leak check).
func TestDetachNamespaceGone(t *testing.T) {
	m, _, _ := setup(t)
	ctx := context.Background()
	ns, err := netns.Create("", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(ctx, ocinet.AttachRequest{ID: "gone", NetNS: ns}); err != nil {
		_ = netns.Remove(ns)
		t.Fatal(err)
	}
	if err := netns.Remove(ns); err != nil {
		t.Fatal(err)
	}
	if err := m.Detach(ctx, "gone"); err != nil {
		t.Fatalf("Detach with the namespace gone: %v", err)
	}
}

// TestAttachFailureRollsBack: the third plugin of the chain fails; what the
// first two did is undone and nothing is recorded.
func TestAttachFailureRollsBack(t *testing.T) {
	m, confDir, ns := setup(t)
	broken := `{"cniVersion":"1.0.0","name":"broken","plugins":[
		{"type":"bridge","bridge":"` + testBridge + `","isGateway":true,"ipMasq":true,
		 "ipam":{"type":"host-local","ranges":[[{"subnet":"10.99.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}},
		{"type":"portmap","capabilities":{"portMappings":true}},
		{"type":"tuning","sysctl":{"net.ipv4.conf.eth0.no_such_knob":"1"}}]}`
	if err := os.WriteFile(filepath.Join(confDir, "broken.conflist"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	p, _ := portmap.Parse("127.0.0.1:28081:80")
	_, err := m.Attach(context.Background(), ocinet.AttachRequest{ID: "broken", NetNS: ns, Networks: []string{"broken"}, Ports: []portmap.Mapping{p}})
	if !errors.Is(err, ocinet.ErrPlugin) {
		t.Fatalf("Attach: err = %v, want ErrPlugin", err)
	}
	if !strings.Contains(err.Error(), `network "broken"`) {
		t.Errorf("error does not name the network: %v", err)
	}
	if got := addrsIn(t, ns); strings.Contains(got, "eth0") {
		t.Errorf("eth0 left in the namespace:\n%s", got)
	}
	if owners, _ := m.Ports().Owners(); len(owners) != 0 {
		t.Errorf("port reservations left: %v", owners)
	}
}

func TestAttachRefusesBadInput(t *testing.T) {
	m, _, ns := setup(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		req  ocinet.AttachRequest
		want error
	}{
		{"bad id", ocinet.AttachRequest{ID: "../x", NetNS: ns}, ocinet.ErrInvalid},
		{"host namespace", ocinet.AttachRequest{ID: "host", NetNS: "/proc/self/ns/net"}, ocinet.ErrInvalid},
		{"missing namespace", ocinet.AttachRequest{ID: "missing", NetNS: "/var/run/netns/ocinet-no-such"}, ocinet.ErrInvalid},
		{"not a namespace", ocinet.AttachRequest{ID: "file", NetNS: "/etc/hostname"}, ocinet.ErrInvalid},
		{"unknown network", ocinet.AttachRequest{ID: "nonet", NetNS: ns, Networks: []string{"nosuch"}}, ocinet.ErrNotFound},
		{"bad network name", ocinet.AttachRequest{ID: "badnet", NetNS: ns, Networks: []string{"../etc"}}, ocinet.ErrInvalid},
		{"network twice", ocinet.AttachRequest{ID: "dup", NetNS: ns, Networks: []string{"bridge", "bridge"}}, ocinet.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.Attach(ctx, tc.req); !errors.Is(err, tc.want) {
				t.Errorf("Attach: err = %v, want %v", err, tc.want)
			}
		})
	}
	if list, _ := m.List(); len(list) != 0 {
		t.Errorf("records after refused attaches: %+v", list)
	}
}

func TestMissingPlugin(t *testing.T) {
	testenv.RequirePlugins(t)
	state := t.TempDir()
	ocinettest.CheckLeaks(t, leakcheck.Config{StateDirs: []string{state}})
	empty := t.TempDir()
	// Through the binaries: in process, the default chain needs none.
	m, err := ocinet.New(state, ocinet.WithCNIConfDir(t.TempDir()), ocinet.WithPluginDirs(empty), ocinet.WithDefaultBridge(testBridge),
		ocinet.WithDatapath(ocinet.DatapathPlugins))
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Attach(context.Background(), ocinet.AttachRequest{ID: "x", NetNS: newNS(t)})
	var pe *ocinet.PluginNotFoundError
	if !errors.Is(err, ocinet.ErrPluginNotFound) || !errors.As(err, &pe) || !strings.Contains(err.Error(), empty) {
		t.Fatalf("Attach: err = %v, want a PluginNotFoundError naming %s", err, empty)
	}
}

// TestLoopback6Proxy: a port published on [::1] is served by a proxy
// process (the kernel does not forward from IPv6 loopback); Detach ends it.
func TestLoopback6Proxy(t *testing.T) {
	m, _, ns := setup(t)
	if c, err := net.Listen("tcp", "[::1]:0"); err != nil {
		testenv.Skip(t, "no IPv6 on loopback: "+err.Error())
	} else {
		c.Close()
	}
	ctx := context.Background()
	p, err := portmap.Parse("[::1]:28096:80")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(ctx, ocinet.AttachRequest{ID: "proxy6", NetNS: ns, Ports: []portmap.Mapping{p}}); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", "[::1]:28096", 2*time.Second)
	if err != nil {
		t.Errorf("nothing listens on [::1]:28096: %v", err)
	} else {
		c.Close()
	}
	if err := m.Detach(ctx, "proxy6"); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", "[::1]:28096", time.Second); err == nil {
		c.Close()
		t.Error("the proxy still listens after Detach")
	}
}
