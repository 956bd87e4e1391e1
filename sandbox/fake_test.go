package sandbox_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hook"
	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/ocinettest"
	"github.com/ocinet/ocinet/portmap"
	"github.com/ocinet/ocinet/sandbox"
)

// These tests run the hook's request handling (parsing, validation, the
// hosts store, GC by namespace) over ocinettest's fake plugins: no root.

func hostsFile(t *testing.T, cfg sandbox.Config, id string) string {
	t.Helper()
	store, err := cfg.HostsStore()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(store.HostsPath(id))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPeersResolveOverFake(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	web, err := sandbox.Attach(ctx, e.Sandbox, "web", e.NetNS("web"), sandbox.Request{Name: "web", Hostname: "www", ExtraHosts: []hosts.ExtraHost{{Name: "db.example", IP: netip.MustParseAddr("192.0.2.7")}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sandbox.Attach(ctx, e.Sandbox, "db", e.NetNS("db"), sandbox.Request{Name: "db", DNS: hosts.DNS{Servers: []netip.Addr{netip.MustParseAddr("192.0.2.53")}}}); err != nil {
		t.Fatal(err)
	}
	webIP := web.Interfaces[0].IPs[0].Addr().String()
	got := hostsFile(t, e.Sandbox, "db")
	if !strings.Contains(got, webIP) || !strings.Contains(got, "web") || !strings.Contains(got, "www") {
		t.Errorf("db's /etc/hosts does not resolve web (%s):\n%s", webIP, got)
	}
	if got := hostsFile(t, e.Sandbox, "web"); !strings.Contains(got, "192.0.2.7") {
		t.Errorf("web's /etc/hosts lacks its extra host:\n%s", got)
	}
	store, _ := e.Sandbox.HostsStore()
	if b, err := os.ReadFile(store.ResolvConfPath("db")); err != nil || !strings.Contains(string(b), "nameserver 192.0.2.53") {
		t.Errorf("db's resolv.conf: %q, %v", b, err)
	}
	if err := sandbox.Detach(ctx, e.Sandbox, "web"); err != nil {
		t.Fatal(err)
	}
	if got := hostsFile(t, e.Sandbox, "db"); strings.Contains(got, webIP) {
		t.Errorf("db's /etc/hosts still has web after it left:\n%s", got)
	}
	if err := sandbox.Detach(ctx, e.Sandbox, "db"); err != nil {
		t.Fatal(err)
	}
	e.CheckClean(t)
}

func TestStaticOverFake(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	a, err := sandbox.Attach(ctx, e.Sandbox, "web", e.NetNS("web"), sandbox.Request{Static: []sandbox.Static{{Network: "bridge", IPs: []netip.Addr{netip.MustParseAddr("10.4.0.99")}, MAC: mustMAC("02:42:0a:04:00:63")}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Interfaces[0].IPs[0].Addr(); got != netip.MustParseAddr("10.4.0.99") {
		t.Errorf("address = %s, want 10.4.0.99", got)
	}
	for _, c := range e.CNI.CallsOf("ADD") {
		if c.Plugin == "bridge" && (c.Arg("IP") != "10.4.0.99" || c.Arg("MAC") != "02:42:0a:04:00:63") {
			t.Errorf("bridge ADD got CNI_ARGS %v", c.Args)
		}
	}
	if a.Interfaces[0].MAC != "02:42:0a:04:00:63" {
		t.Errorf("MAC = %q", a.Interfaces[0].MAC)
	}
	if err := sandbox.Detach(ctx, e.Sandbox, "web"); err != nil {
		t.Fatal(err)
	}
	e.CheckClean(t)
}

// Bad requests are refused before any plugin runs or any record is made.
func TestRequestRefusedOverFake(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ns := e.NetNS("web")
	for _, tc := range []struct {
		name string
		id   string
		req  sandbox.Request
	}{
		{"container id with path", "../x", sandbox.Request{}},
		{"newline in name", "web", sandbox.Request{Name: "a\nb"}},
		{"network path", "web", sandbox.Request{Networks: []string{"../../etc/passwd"}}},
		{"extra host without address", "web", sandbox.Request{ExtraHosts: []hosts.ExtraHost{{Name: "db"}}}},
		{"dns server not an address", "web", sandbox.Request{DNS: hosts.DNS{Servers: []netip.Addr{{}}}}},
		{"static address not an address", "web", sandbox.Request{Static: []sandbox.Static{{Network: "bridge", IPs: []netip.Addr{{}}}}}},
		{"static for another network", "web", sandbox.Request{Static: []sandbox.Static{{Network: "other", IPs: []netip.Addr{netip.MustParseAddr("10.4.0.9")}}}}},
		{"static outside the subnet", "web", sandbox.Request{Static: []sandbox.Static{{Network: "bridge", IPs: []netip.Addr{netip.MustParseAddr("192.0.2.9")}}}}},
		{"unknown mode", "web", sandbox.Request{Mode: "bridge"}},
		{"mode none with ports", "web", sandbox.Request{Mode: sandbox.ModeNone, Ports: []portmap.Mapping{{ContainerPorts: portmap.PortRange{Start: 80, End: 80}, Protocol: "tcp"}}}},
		{"mode host with networks", "web", sandbox.Request{Mode: sandbox.ModeHost, Networks: []string{"bridge"}}},
		{"mode host with a namespace", "web", sandbox.Request{Mode: sandbox.ModeHost}},
		{"multicast MAC", "web", sandbox.Request{Static: []sandbox.Static{{Network: "bridge", MAC: mustMAC("01:00:5e:00:00:01")}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := sandbox.Attach(context.Background(), e.Sandbox, tc.id, ns, tc.req); !errors.Is(err, sandbox.ErrInvalid) || !errors.Is(err, ocinet.ErrInvalid) || !errors.Is(err, hook.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid (shared by sandbox, ocinet and hook)", err)
			}
		})
	}
	if calls := e.CNI.Calls(); len(calls) != 0 {
		t.Errorf("%d plugin calls for refused requests", len(calls))
	}
	e.CheckClean(t)
}

// TestHostModeOverFake: a container on the host's network gets a hosts
// record on no network and no attachment; GC removes the record once its
// container is gone, and keeps a live one's.
func TestHostModeOverFake(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	for _, id := range []string{"live", "dead"} {
		att, err := sandbox.Attach(ctx, e.Sandbox, id, "", sandbox.Request{Mode: sandbox.ModeHost, Name: id})
		if err != nil {
			t.Fatal(err)
		}
		if len(att.Interfaces) != 0 || att.ID != e.Sandbox.AttachmentID(id) {
			t.Errorf("attachment in host mode: %+v", att)
		}
		if _, err := e.Manager.Get(e.Sandbox.AttachmentID(id)); !errors.Is(err, ocinet.ErrNotFound) {
			t.Errorf("the Manager records %s: %v", id, err)
		}
	}
	if calls := e.CNI.Calls(); len(calls) != 0 {
		t.Errorf("%d plugin calls in host mode", len(calls))
	}
	if _, err := sandbox.GC(ctx, e.Sandbox, func(id string) bool { return id == "live" }); err != nil {
		t.Fatal(err)
	}
	store, _ := e.Sandbox.HostsStore()
	if _, err := store.Get("dead"); !errors.Is(err, hosts.ErrNotFound) {
		t.Errorf("the gone container's hosts record: %v, want ErrNotFound", err)
	}
	if _, err := store.Get("live"); err != nil {
		t.Errorf("the live container's hosts record: %v", err)
	}
	if err := sandbox.Detach(ctx, e.Sandbox, "live"); err != nil {
		t.Fatal(err)
	}
	e.CheckClean(t)
}

func TestGCByNamespaceOverFake(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	other := e.Sandbox
	other.Namespace = "other"
	for _, id := range []string{"live", "dead"} {
		if _, err := sandbox.Attach(ctx, e.Sandbox, id, e.NetNS(id), sandbox.Request{Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sandbox.Attach(ctx, other, "dead", e.NetNS("other-dead"), sandbox.Request{Name: "dead"}); err != nil {
		t.Fatal(err)
	}
	rep, err := sandbox.GC(ctx, e.Sandbox, func(id string) bool { return id == "live" })
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{e.Sandbox.AttachmentID("dead")}; !slices.Equal(rep.Released, want) {
		t.Errorf("released = %v, want %v", rep.Released, want)
	}
	if _, err := e.Manager.Get(other.AttachmentID("dead")); err != nil {
		t.Errorf("another namespace's container was collected: %v", err)
	}
	store, _ := e.Sandbox.HostsStore()
	if _, err := store.Get("dead"); err == nil {
		t.Error("the collected container's hosts record is still there")
	}
	if err := sandbox.Detach(ctx, e.Sandbox, "live"); err != nil {
		t.Fatal(err)
	}
	if err := sandbox.Detach(ctx, other, "dead"); err != nil {
		t.Fatal(err)
	}
	e.CheckClean(t)
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}
