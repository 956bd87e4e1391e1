package hook

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/ocinet/ocinet/portmap"
)

// The options below each set one part of the request annotation and keep
// the rest, so they compose in any order with each other and with
// WithRequest (which replaces the whole request: put it first).

// WithNetworks sets the networks to attach, in order (eth0 first).
func WithNetworks(names ...string) oci.SpecOpts {
	return editRequest(func(r *Request) { r.Networks = append([]string(nil), names...) })
}

// WithPorts sets the ports to publish.
func WithPorts(ports ...portmap.Mapping) oci.SpecOpts {
	return editRequest(func(r *Request) { r.Ports = append([]portmap.Mapping(nil), ports...) })
}

// WithName sets the container's name, which peers resolve.
func WithName(name string) oci.SpecOpts {
	return editRequest(func(r *Request) { r.Name = name })
}

// WithHostname sets the host name peers resolve. It does not change the
// spec's own hostname: use oci.WithHostname for that.
func WithHostname(hostname string) oci.SpecOpts {
	return editRequest(func(r *Request) { r.Hostname = hostname })
}

// WithExtraHosts sets extra /etc/hosts entries, "NAME:IP" or
// "NAME:host-gateway".
func WithExtraHosts(entries ...string) oci.SpecOpts {
	return editRequest(func(r *Request) { r.ExtraHosts = append([]string(nil), entries...) })
}

// WithDNS sets the DNS servers, search domains and options of the
// container's resolv.conf; an empty list keeps the host's for that part.
func WithDNS(servers, search, options []string) oci.SpecOpts {
	return editRequest(func(r *Request) {
		r.DNSServers = append([]string(nil), servers...)
		r.DNSSearch = append([]string(nil), search...)
		r.DNSOptions = append([]string(nil), options...)
	})
}

// editRequest reads the spec's request (an empty one if there is none),
// applies edit, validates the result and writes it back. A spec whose
// annotation is not a valid request is refused rather than overwritten.
func editRequest(edit func(*Request)) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		r := Request{Version: RequestVersion}
		if cur, ok := s.Annotations[Annotation]; ok {
			parsed, err := ParseRequest(cur)
			if err != nil {
				return fmt.Errorf("edit request: the spec's annotation: %w", err)
			}
			r = parsed
		}
		edit(&r)
		return WithRequest(r)(ctx, client, c, s)
	}
}

// requestOf returns the request in a spec, for tests and tools.
func requestOf(s *oci.Spec) (Request, error) {
	var r Request
	err := json.Unmarshal([]byte(s.Annotations[Annotation]), &r)
	return r, err
}
