package hook_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hook"
	"github.com/ocinet/ocinet/ocinettest"
)

// These tests run the hook's request handling (parsing, validation, the
// hosts store, GC by namespace) over ocinettest's fake plugins: no root.

func hostsFile(t *testing.T, cfg hook.Config, id string) string {
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
	web, err := hook.Attach(ctx, e.Hook, "web", e.NetNS("web"), hook.Request{Name: "web", Hostname: "www", ExtraHosts: []string{"db.example:192.0.2.7"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hook.Attach(ctx, e.Hook, "db", e.NetNS("db"), hook.Request{Name: "db", DNSServers: []string{"192.0.2.53"}}); err != nil {
		t.Fatal(err)
	}
	webIP := web.Interfaces[0].IPs[0].Addr().String()
	got := hostsFile(t, e.Hook, "db")
	if !strings.Contains(got, webIP) || !strings.Contains(got, "web") || !strings.Contains(got, "www") {
		t.Errorf("db's /etc/hosts does not resolve web (%s):\n%s", webIP, got)
	}
	if got := hostsFile(t, e.Hook, "web"); !strings.Contains(got, "192.0.2.7") {
		t.Errorf("web's /etc/hosts lacks its extra host:\n%s", got)
	}
	store, _ := e.Hook.HostsStore()
	if b, err := os.ReadFile(store.ResolvConfPath("db")); err != nil || !strings.Contains(string(b), "nameserver 192.0.2.53") {
		t.Errorf("db's resolv.conf: %q, %v", b, err)
	}
	if err := hook.Detach(ctx, e.Hook, "web"); err != nil {
		t.Fatal(err)
	}
	if got := hostsFile(t, e.Hook, "db"); strings.Contains(got, webIP) {
		t.Errorf("db's /etc/hosts still has web after it left:\n%s", got)
	}
	if err := hook.Detach(ctx, e.Hook, "db"); err != nil {
		t.Fatal(err)
	}
	e.CheckClean(t)
}

func TestStaticOverFake(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	a, err := hook.Attach(ctx, e.Hook, "web", e.NetNS("web"), hook.Request{Static: []hook.Static{{Network: "bridge", IPs: []string{"10.4.0.99"}, MAC: "02:42:0a:04:00:63"}}})
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
	if err := hook.Detach(ctx, e.Hook, "web"); err != nil {
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
		req  hook.Request
	}{
		{"container id with path", "../x", hook.Request{}},
		{"newline in name", "web", hook.Request{Name: "a\nb"}},
		{"network path", "web", hook.Request{Networks: []string{"../../etc/passwd"}}},
		{"extra host without address", "web", hook.Request{ExtraHosts: []string{"db"}}},
		{"dns server not an address", "web", hook.Request{DNSServers: []string{"resolver.example"}}},
		{"static address not an address", "web", hook.Request{Static: []hook.Static{{Network: "bridge", IPs: []string{"300.1.1.1"}}}}},
		{"static for another network", "web", hook.Request{Static: []hook.Static{{Network: "other", IPs: []string{"10.4.0.9"}}}}},
		{"static outside the subnet", "web", hook.Request{Static: []hook.Static{{Network: "bridge", IPs: []string{"192.0.2.9"}}}}},
		{"multicast MAC", "web", hook.Request{Static: []hook.Static{{Network: "bridge", MAC: "01:00:5e:00:00:01"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := hook.Attach(context.Background(), e.Hook, tc.id, ns, tc.req); !errors.Is(err, hook.ErrInvalid) && !errors.Is(err, ocinet.ErrInvalid) {
				t.Errorf("err = %v, want hook.ErrInvalid or ocinet.ErrInvalid", err)
			}
		})
	}
	if calls := e.CNI.Calls(); len(calls) != 0 {
		t.Errorf("%d plugin calls for refused requests", len(calls))
	}
	e.CheckClean(t)
}

func TestGCByNamespaceOverFake(t *testing.T) {
	e := ocinettest.NewEnv(t)
	ctx := context.Background()
	other := e.Hook
	other.Namespace = "other"
	for _, id := range []string{"live", "dead"} {
		if _, err := hook.Attach(ctx, e.Hook, id, e.NetNS(id), hook.Request{Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hook.Attach(ctx, other, "dead", e.NetNS("other-dead"), hook.Request{Name: "dead"}); err != nil {
		t.Fatal(err)
	}
	rep, err := hook.GC(ctx, e.Hook, func(id string) bool { return id == "live" })
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{e.Hook.AttachmentID("dead")}; !slices.Equal(rep.Released, want) {
		t.Errorf("released = %v, want %v", rep.Released, want)
	}
	if _, err := e.Manager.Get(other.AttachmentID("dead")); err != nil {
		t.Errorf("another namespace's container was collected: %v", err)
	}
	store, _ := e.Hook.HostsStore()
	if _, err := store.Get("dead"); err == nil {
		t.Error("the collected container's hosts record is still there")
	}
	if err := hook.Detach(ctx, e.Hook, "live"); err != nil {
		t.Fatal(err)
	}
	if err := hook.Detach(ctx, other, "dead"); err != nil {
		t.Fatal(err)
	}
	e.CheckClean(t)
}
