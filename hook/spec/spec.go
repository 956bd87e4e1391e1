package spec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ocinet/ocinet/hook"
	"github.com/ocinet/ocinet/sandbox"
)

// hookPath is the PATH the hook runs with: plugins exec iptables and ip.
const hookPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// SpecTimeout is the hook timeout written into the spec, in seconds. runc
// kills a hook that runs longer; the hook's own deadline is shorter, so it
// can roll back and say why first.
const SpecTimeout = 90

// WithHooks adds a createRuntime and a poststop hook that run binary with
// args followed by the event name ("createRuntime" or "poststop"). binary
// must be an absolute path. Hooks of other programs are kept; a hook with the
// same path is replaced, so applying WithHooks twice gives the same spec.
func WithHooks(binary string, args ...string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if !filepath.IsAbs(binary) {
			return fmt.Errorf("hook binary %q: not an absolute path: %w", binary, hook.ErrInvalid)
		}
		if s.Hooks == nil {
			s.Hooks = &specs.Hooks{}
		}
		timeout := SpecTimeout
		make := func(event string) specs.Hook {
			argv := append(append([]string{binary}, args...), event)
			return specs.Hook{Path: binary, Args: argv, Env: []string{hookPath}, Timeout: &timeout}
		}
		s.Hooks.CreateRuntime = replaceHook(s.Hooks.CreateRuntime, make(hook.EventCreateRuntime))
		s.Hooks.Poststop = replaceHook(s.Hooks.Poststop, make(hook.EventPoststop))
		return nil
	}
}

func replaceHook(hooks []specs.Hook, h specs.Hook) []specs.Hook {
	out := hooks[:0:0]
	replaced := false
	for _, old := range hooks {
		if old.Path == h.Path {
			if !replaced {
				out = append(out, h)
				replaced = true
			}
			continue
		}
		out = append(out, old)
	}
	if !replaced {
		out = append(out, h)
	}
	return out
}

// WithRequest puts r into the spec's annotation, replacing any request that
// was there. It validates r first.
func WithRequest(r sandbox.Request) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		v, err := hook.EncodeRequest(r)
		if err != nil {
			return err
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[hook.Annotation] = v
		return nil
	}
}

// WithEtcFiles creates the container's hosts and resolv.conf files (empty,
// until the hook fills them) and bind-mounts them at /etc/hosts and
// /etc/resolv.conf, replacing any other mount there. The files must exist
// before runc creates the container, because runc makes its mounts before it
// runs any hook. cfg.Namespace must be the namespace in ctx.
func WithEtcFiles(cfg hook.Config) oci.SpecOpts {
	return func(ctx context.Context, _ oci.Client, c *containers.Container, s *oci.Spec) error {
		if ns, ok := namespaces.Namespace(ctx); ok && ns != cfg.Namespace {
			return fmt.Errorf("etc files: config namespace %q differs from the context's %q: %w", cfg.Namespace, ns, hook.ErrInvalid)
		}
		if err := hook.ValidateContainerID(c.ID); err != nil {
			return fmt.Errorf("etc files: container %w", err)
		}
		store, err := cfg.HostsStore()
		if err != nil {
			return err
		}
		if err := store.Prepare(c.ID); err != nil {
			return err
		}
		files := map[string]string{"/etc/hosts": store.HostsPath(c.ID), "/etc/resolv.conf": store.ResolvConfPath(c.ID)}
		s.Mounts = withEtcMounts(s.Mounts, files)
		return nil
	}
}

// withEtcMounts returns mounts with the bind mounts of files (destination
// to source) in place of any other mount at their destinations.
func withEtcMounts(mounts []specs.Mount, files map[string]string) []specs.Mount {
	var out []specs.Mount
	for _, m := range mounts {
		if _, ours := files[filepath.Clean(m.Destination)]; !ours {
			out = append(out, m)
		}
	}
	for _, dst := range []string{"/etc/hosts", "/etc/resolv.conf"} {
		out = append(out, specs.Mount{Destination: dst, Type: "bind", Source: files[dst], Options: []string{"bind", "rprivate", "rw"}})
	}
	return out
}

// WithNetNSPath makes the container join the network namespace at path
// (pre-created mode), replacing any network namespace entry of the spec.
func WithNetNSPath(path string) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		if !filepath.IsAbs(path) {
			return fmt.Errorf("network namespace path %q: not absolute: %w", path, hook.ErrInvalid)
		}
		return oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: path})(ctx, client, c, s)
	}
}

// WithNetworkOf makes the container share the network of container target
// (docker's and nerdctl's --network container:NAME): it joins the network
// namespace at netnsPath (the target's /proc/<pid>/ns/net while its task
// runs, or its pin, cfg.PinPath(target)) and bind-mounts the target's
// /etc/hosts and /etc/resolv.conf, so it resolves what the target resolves
// and follows the target's peers as they come and go. Nothing is attached
// for the container itself, so its spec carries no request: a spec that
// has one is refused, and WithRequest, WithHooks and WithEtcFiles must not
// be applied after. The target must have its files (it was attached, in
// any mode); cfg.Namespace must be the namespace in ctx.
func WithNetworkOf(cfg hook.Config, target, netnsPath string) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		if ns, ok := namespaces.Namespace(ctx); ok && ns != cfg.Namespace {
			return fmt.Errorf("network of %s: config namespace %q differs from the context's %q: %w", target, cfg.Namespace, ns, hook.ErrInvalid)
		}
		if err := hook.ValidateContainerID(target); err != nil {
			return fmt.Errorf("network of a container: %w", err)
		}
		if _, ok := s.Annotations[hook.Annotation]; ok {
			return fmt.Errorf("network of %s: the spec carries a network request of its own (%s): %w", target, hook.Annotation, hook.ErrInvalid)
		}
		store, err := cfg.HostsStore()
		if err != nil {
			return err
		}
		files := map[string]string{"/etc/hosts": store.HostsPath(target), "/etc/resolv.conf": store.ResolvConfPath(target)}
		for _, p := range files {
			if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
				return fmt.Errorf("network of %s: %s: the container has no hosts files of ocinet's (was it attached?): %w", target, p, hook.ErrNotFound)
			}
		}
		if err := WithNetNSPath(netnsPath)(ctx, client, c, s); err != nil {
			return err
		}
		s.Mounts = withEtcMounts(s.Mounts, files)
		return nil
	}
}
