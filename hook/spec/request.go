package spec

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ocinet/ocinet/hook"
	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/portmap"
	"github.com/ocinet/ocinet/sandbox"
)

// The options below each set one part of the request annotation and keep
// the rest, so they compose in any order with each other and with
// WithRequest (which replaces the whole request: put it first).

// WithNetworks sets the networks to attach, in order (eth0 first).
func WithNetworks(names ...string) oci.SpecOpts {
	return editRequest(func(r *sandbox.Request) { r.Networks = append([]string(nil), names...) })
}

// WithNetworkMode sets the request's network mode and makes the spec agree
// with it: sandbox.ModeHost leaves the network namespace out of the spec
// (the container is on the host's network); the other modes give the
// container a network namespace of its own, as containerd's default spec
// does, unless the spec already names one to join.
func WithNetworkMode(mode sandbox.Mode) oci.SpecOpts {
	edit := editRequest(func(r *sandbox.Request) { r.Mode = mode })
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		if err := edit(ctx, client, c, s); err != nil {
			return err
		}
		if mode == sandbox.ModeHost {
			return oci.WithHostNamespace(specs.NetworkNamespace)(ctx, client, c, s)
		}
		if s.Linux != nil {
			for _, ns := range s.Linux.Namespaces {
				if ns.Type == specs.NetworkNamespace {
					return nil
				}
			}
		}
		return oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace})(ctx, client, c, s)
	}
}

// WithPorts sets the ports to publish.
func WithPorts(ports ...portmap.Mapping) oci.SpecOpts {
	return editRequest(func(r *sandbox.Request) { r.Ports = append([]portmap.Mapping(nil), ports...) })
}

// WithName sets the container's name, which peers resolve.
func WithName(name string) oci.SpecOpts {
	return editRequest(func(r *sandbox.Request) { r.Name = name })
}

// WithHostname sets the host name peers resolve. It does not change the
// spec's own hostname: use oci.WithHostname for that.
func WithHostname(hostname string) oci.SpecOpts {
	return editRequest(func(r *sandbox.Request) { r.Hostname = hostname })
}

// WithExtraHosts sets extra /etc/hosts entries (hosts.ParseExtraHost reads
// "NAME:IP", "NAME=IP" and "NAME:host-gateway").
func WithExtraHosts(entries ...hosts.ExtraHost) oci.SpecOpts {
	return editRequest(func(r *sandbox.Request) { r.ExtraHosts = append([]hosts.ExtraHost(nil), entries...) })
}

// WithDNS sets the DNS servers, search domains and options of the
// container's resolv.conf; an empty list keeps the host's for that part.
func WithDNS(dns hosts.DNS) oci.SpecOpts {
	return editRequest(func(r *sandbox.Request) {
		r.DNS = hosts.DNS{
			Servers: append([]netip.Addr(nil), dns.Servers...),
			Search:  append([]string(nil), dns.Search...),
			Options: append([]string(nil), dns.Options...),
		}
	})
}

// WithStatic fixes the container's addresses (at most one per family) and
// MAC on one network; mac may be nil. Another call for the same network
// replaces it.
func WithStatic(network string, ips []netip.Addr, mac net.HardwareAddr) oci.SpecOpts {
	return editRequest(func(r *sandbox.Request) {
		var kept []sandbox.Static
		for _, s := range r.Static {
			if s.Network != network {
				kept = append(kept, s)
			}
		}
		r.Static = append(kept, sandbox.Static{Network: network, IPs: append([]netip.Addr(nil), ips...), MAC: mac})
	})
}

// editRequest reads the spec's request (an empty one if there is none),
// applies edit, validates the result and writes it back. A spec whose
// annotation is not a valid request is refused rather than overwritten.
func editRequest(edit func(*sandbox.Request)) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		var r sandbox.Request
		if cur, ok := s.Annotations[hook.Annotation]; ok {
			parsed, err := hook.DecodeRequest(cur)
			if err != nil {
				return fmt.Errorf("edit request: the spec's annotation: %w", err)
			}
			r = parsed
		}
		edit(&r)
		return WithRequest(r)(ctx, client, c, s)
	}
}

// RequestOf returns the request a spec carries.
func RequestOf(s *oci.Spec) (sandbox.Request, error) {
	return hook.DecodeRequest(s.Annotations[hook.Annotation])
}
