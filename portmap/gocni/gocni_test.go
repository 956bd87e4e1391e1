package gocni

import (
	"net/netip"
	"testing"

	gocni "github.com/containerd/go-cni"
	"github.com/google/go-cmp/cmp"

	"github.com/ocinet/ocinet/portmap"
)

func TestPortMappings(t *testing.T) {
	ports := []portmap.Port{
		{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
		{HostIP: netip.MustParseAddr("::1"), HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
		{HostPort: 8443, ContainerPort: 443, Protocol: "tcp"},
	}
	want := []gocni.PortMapping{
		{HostPort: 8080, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"},
		{HostPort: 5353, ContainerPort: 53, Protocol: "udp", HostIP: "::1"},
		{HostPort: 8443, ContainerPort: 443, Protocol: "tcp"},
	}
	if diff := cmp.Diff(want, PortMappings(ports)); diff != "" {
		t.Errorf("PortMappings (-want +got):\n%s", diff)
	}
	if PortMappings(nil) != nil {
		t.Error("PortMappings(nil) is not nil")
	}
	// A range expands to one mapping per port.
	m, err := portmap.Parse("127.0.0.1:8000-8001:80-81/udp")
	if err != nil {
		t.Fatal(err)
	}
	expanded, err := m.Expand()
	if err != nil {
		t.Fatal(err)
	}
	got := PortMappings(expanded)
	if len(got) != 2 || got[1].HostPort != 8001 || got[1].ContainerPort != 81 || got[1].Protocol != "udp" {
		t.Errorf("expanded range: %+v", got)
	}
}
