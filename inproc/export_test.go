package inproc

import (
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/allocator"
)

// IPAMConfigForTest and LeaseForTest give the package's external tests the
// in-process host-local (the lease test runs it in child processes).
func IPAMConfigForTest(stdin []byte) (*allocator.IPAMConfig, error) { return ipamConfig(stdin, "") }

func LeaseForTest(conf *allocator.IPAMConfig, id, ifName string) ([]*types100.IPConfig, error) {
	return lease(conf, id, ifName)
}
