package spec

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ocinet/ocinet/hook"
	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/portmap"
	"github.com/ocinet/ocinet/sandbox"
)

func apply(t *testing.T, s *oci.Spec, opts ...oci.SpecOpts) {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "test")
	c := &containers.Container{ID: "web"}
	for _, o := range opts {
		if err := o(ctx, nil, c, s); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWithHooksIdempotentAndKeepsOthers(t *testing.T) {
	other := specs.Hook{Path: "/usr/bin/nvidia-hook", Args: []string{"nvidia-hook", "prestart"}}
	s := &oci.Spec{Hooks: &specs.Hooks{CreateRuntime: []specs.Hook{other}, Poststop: []specs.Hook{other}}}
	opt := WithHooks("/usr/local/bin/ocictl", "--namespace=test", "internal", "oci-hook")
	apply(t, s, opt)
	once := *s.Hooks
	once.CreateRuntime = append([]specs.Hook(nil), s.Hooks.CreateRuntime...)
	once.Poststop = append([]specs.Hook(nil), s.Hooks.Poststop...)
	apply(t, s, opt)
	if diff := cmp.Diff(once, *s.Hooks); diff != "" {
		t.Errorf("applying twice changed the hooks (-once +twice):\n%s", diff)
	}
	if len(s.Hooks.CreateRuntime) != 2 || s.Hooks.CreateRuntime[0].Path != other.Path {
		t.Fatalf("createRuntime hooks: %+v", s.Hooks.CreateRuntime)
	}
	h := s.Hooks.CreateRuntime[1]
	want := []string{"/usr/local/bin/ocictl", "--namespace=test", "internal", "oci-hook", "createRuntime"}
	if diff := cmp.Diff(want, h.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if h.Timeout == nil || *h.Timeout != SpecTimeout {
		t.Errorf("timeout: %v", h.Timeout)
	}
	if got := s.Hooks.Poststop[1].Args[len(s.Hooks.Poststop[1].Args)-1]; got != "poststop" {
		t.Errorf("poststop event: %q", got)
	}
}

func TestWithHooksRefusesRelativePath(t *testing.T) {
	s := &oci.Spec{}
	ctx := namespaces.WithNamespace(context.Background(), "test")
	if err := WithHooks("ocictl")(ctx, nil, &containers.Container{ID: "web"}, s); err == nil {
		t.Fatal("relative hook path accepted")
	}
}

func TestWithRequestReplaces(t *testing.T) {
	s := &oci.Spec{Annotations: map[string]string{"other": "kept"}}
	apply(t, s, WithRequest(sandbox.Request{Name: "a"}), WithRequest(sandbox.Request{Name: "b"}))
	r, err := hook.DecodeRequest(s.Annotations[hook.Annotation])
	if err != nil || r.Name != "b" || s.Annotations["other"] != "kept" {
		t.Errorf("annotation %q (err %v), others %v", s.Annotations[hook.Annotation], err, s.Annotations)
	}
	if err := WithRequest(sandbox.Request{Name: "bad name"})(context.Background(), nil, &containers.Container{ID: "web"}, s); err == nil {
		t.Error("invalid request accepted")
	}
}

func TestWithEtcFiles(t *testing.T) {
	cfg := hook.Config{StateDir: t.TempDir(), Namespace: "test"}
	s := &oci.Spec{Mounts: []specs.Mount{{Destination: "/etc/hosts", Source: "/elsewhere"}, {Destination: "/proc", Type: "proc"}}}
	apply(t, s, WithEtcFiles(cfg), WithEtcFiles(cfg))
	var dsts []string
	for _, m := range s.Mounts {
		dsts = append(dsts, m.Destination)
	}
	if diff := cmp.Diff([]string{"/proc", "/etc/hosts", "/etc/resolv.conf"}, dsts); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	// Another namespace in the context is refused.
	ctx := namespaces.WithNamespace(context.Background(), "other")
	if err := WithEtcFiles(cfg)(ctx, nil, &containers.Container{ID: "web"}, s); err == nil {
		t.Error("namespace mismatch accepted")
	}
}

func TestRequestOptionsCompose(t *testing.T) {
	p, err := portmap.Parse("127.0.0.1:8080:80")
	if err != nil {
		t.Fatal(err)
	}
	opts := []oci.SpecOpts{
		WithNetworks("front", "back"),
		WithPorts(p),
		WithName("web"),
		WithHostname("web.local"),
		WithExtraHosts(hosts.ExtraHost{Name: "db", IP: netip.MustParseAddr("10.0.0.5")}),
		WithDNS(hosts.DNS{Servers: []netip.Addr{netip.MustParseAddr("192.0.2.53")}, Search: []string{"example.test"}, Options: []string{"ndots:2"}}),
	}
	want := sandbox.Request{Networks: []string{"front", "back"}, Ports: []portmap.Mapping{p},
		Name: "web", Hostname: "web.local", ExtraHosts: []hosts.ExtraHost{{Name: "db", IP: netip.MustParseAddr("10.0.0.5")}},
		DNS: hosts.DNS{Servers: []netip.Addr{netip.MustParseAddr("192.0.2.53")}, Search: []string{"example.test"}, Options: []string{"ndots:2"}}}
	// Forwards, backwards and applied twice: the same request.
	orders := [][]oci.SpecOpts{opts, reversed(opts), append(append([]oci.SpecOpts{}, opts...), opts...)}
	for i, order := range orders {
		s := &oci.Spec{}
		apply(t, s, order...)
		got, err := RequestOf(s)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b portmap.Mapping) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("order %d (-want +got):\n%s", i, diff)
		}
	}
	// An invalid value is refused and the spec keeps its valid request.
	s := &oci.Spec{}
	apply(t, s, WithName("web"))
	if err := WithName("bad name")(context.Background(), nil, &containers.Container{ID: "web"}, s); err == nil {
		t.Error("invalid name accepted")
	}
	if got, _ := RequestOf(s); got.Name != "web" {
		t.Errorf("request after a refused edit: %+v", got)
	}
	// A spec carrying garbage in the annotation is refused, not overwritten.
	s = &oci.Spec{Annotations: map[string]string{hook.Annotation: "{garbage"}}
	if err := WithName("web")(context.Background(), nil, &containers.Container{ID: "web"}, s); err == nil {
		t.Error("edit over an invalid annotation accepted")
	}
}

func reversed(in []oci.SpecOpts) []oci.SpecOpts {
	out := make([]oci.SpecOpts, len(in))
	for i, o := range in {
		out[len(in)-1-i] = o
	}
	return out
}

// netNS returns the spec's network namespace entries.
func netNS(s *oci.Spec) []specs.LinuxNamespace {
	var out []specs.LinuxNamespace
	if s.Linux != nil {
		for _, ns := range s.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace {
				out = append(out, ns)
			}
		}
	}
	return out
}

// TestWithNetworkMode: host mode takes the network namespace out of the
// spec and keeps the other namespaces; none gives the container one of its
// own, keeps one it joins; the mode travels in the request; a mode with a
// conflicting request is refused.
func TestWithNetworkMode(t *testing.T) {
	s := &oci.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}}}}
	apply(t, s, WithName("web"), WithNetworkMode(sandbox.ModeHost))
	if ns := netNS(s); len(ns) != 0 || len(s.Linux.Namespaces) != 1 {
		t.Errorf("host mode: namespaces %+v", s.Linux.Namespaces)
	}
	if r, err := RequestOf(s); err != nil || r.Mode != sandbox.ModeHost || r.Name != "web" {
		t.Errorf("host mode: request %+v, %v", r, err)
	}
	apply(t, s, WithNetworkMode(sandbox.ModeNone))
	if ns := netNS(s); len(ns) != 1 || ns[0].Path != "" {
		t.Errorf("none mode after host: network namespaces %+v", ns)
	}
	joined := &oci.Spec{}
	apply(t, joined, WithNetNSPath("/var/run/netns/web"), WithNetworkMode(sandbox.ModeNone))
	if ns := netNS(joined); len(ns) != 1 || ns[0].Path != "/var/run/netns/web" {
		t.Errorf("none mode over a joined namespace: %+v", ns)
	}
	withPorts := &oci.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace}}}}
	p, _ := portmap.Parse("8080:80")
	apply(t, withPorts, WithPorts(p))
	if err := WithNetworkMode(sandbox.ModeHost)(context.Background(), nil, &containers.Container{ID: "web"}, withPorts); err == nil {
		t.Error("host mode with published ports accepted")
	}
	if ns := netNS(withPorts); len(ns) != 1 {
		t.Errorf("a refused mode changed the namespaces: %+v", ns)
	}
}

// TestWithNetworkOf: the joiner gets the target's namespace and its very
// hosts and resolv.conf files; a target without files, a bad target ID and
// a spec with a request of its own are refused without a change.
func TestWithNetworkOf(t *testing.T) {
	cfg := hook.Config{StateDir: t.TempDir(), Namespace: "test"}
	store, err := cfg.HostsStore()
	if err != nil {
		t.Fatal(err)
	}
	s := &oci.Spec{Mounts: []specs.Mount{{Destination: "/etc/resolv.conf", Source: "/elsewhere"}}}
	ctx := namespaces.WithNamespace(context.Background(), "test")
	if err := WithNetworkOf(cfg, "target", "/proc/42/ns/net")(ctx, nil, &containers.Container{ID: "side"}, s); !errors.Is(err, hook.ErrNotFound) {
		t.Errorf("target without files: err = %v, want ErrNotFound", err)
	}
	if err := store.Prepare("target"); err != nil {
		t.Fatal(err)
	}
	apply(t, s, WithNetworkOf(cfg, "target", "/proc/42/ns/net"))
	if ns := netNS(s); len(ns) != 1 || ns[0].Path != "/proc/42/ns/net" {
		t.Errorf("network namespaces: %+v", ns)
	}
	want := map[string]string{"/etc/hosts": store.HostsPath("target"), "/etc/resolv.conf": store.ResolvConfPath("target")}
	got := map[string]string{}
	for _, m := range s.Mounts {
		got[m.Destination] = m.Source
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		name, target string
		spec         *oci.Spec
	}{
		{"bad target", "../x", &oci.Spec{}},
		{"request of its own", "target", &oci.Spec{Annotations: map[string]string{hook.Annotation: `{"version":1}`}}},
	} {
		if err := WithNetworkOf(cfg, tc.target, "/proc/42/ns/net")(ctx, nil, &containers.Container{ID: "side"}, tc.spec); !errors.Is(err, hook.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tc.name, err)
		}
		if tc.spec.Linux != nil || len(tc.spec.Mounts) != 0 {
			t.Errorf("%s: the spec changed: %+v", tc.name, tc.spec)
		}
	}
}
