package hook

import (
	"context"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
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
	apply(t, s, WithRequest(Request{Name: "a"}), WithRequest(Request{Name: "b"}))
	r, err := ParseRequest(s.Annotations[Annotation])
	if err != nil || r.Name != "b" || s.Annotations["other"] != "kept" {
		t.Errorf("annotation %q (err %v), others %v", s.Annotations[Annotation], err, s.Annotations)
	}
	if err := WithRequest(Request{Name: "bad name"})(context.Background(), nil, &containers.Container{ID: "web"}, s); err == nil {
		t.Error("invalid request accepted")
	}
}

func TestWithEtcFiles(t *testing.T) {
	cfg := Config{StateDir: t.TempDir(), Namespace: "test"}
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
