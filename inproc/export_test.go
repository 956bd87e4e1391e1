package inproc

import (
	"github.com/google/nftables"

	"github.com/ocinet/ocinet/netns"
)

// PreflightAt runs Preflight's checks of the tables of the network
// namespace at path.
func PreflightAt(path string) error {
	ns, err := netns.Open(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	if err != nil {
		return err
	}
	return preflight(c)
}

// SetFirewalldPidFile makes Preflight read firewalld's pid file at path
// until the returned function is called.
func SetFirewalldPidFile(path string) func() {
	old := firewalldPidFile
	firewalldPidFile = path
	return func() { firewalldPidFile = old }
}
