// Package gocni converts published ports to the types of
// github.com/containerd/go-cni, for programs that run go-cni themselves. It
// is apart from package portmap so that programs that do not use go-cni (the
// hook binary among them) do not link it.
package gocni

import (
	gocni "github.com/containerd/go-cni"

	"github.com/ocinet/ocinet/portmap"
)

// PortMappings converts ports, in order, to go-cni's PortMapping for
// gocni.WithCapabilityPortMap. HostIP is "" for the zero address, which
// publishes on every address.
func PortMappings(ports []portmap.Port) []gocni.PortMapping {
	if ports == nil {
		return nil
	}
	out := make([]gocni.PortMapping, len(ports))
	for i, p := range ports {
		out[i] = gocni.PortMapping{
			HostPort:      int32(p.HostPort),
			ContainerPort: int32(p.ContainerPort),
			Protocol:      p.Protocol,
		}
		if p.HostIP.IsValid() {
			out[i].HostIP = p.HostIP.String()
		}
	}
	return out
}
