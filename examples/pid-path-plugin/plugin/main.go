// Command plugin is a CNI plugin, "pid-only", that stands for the plugins
// that accept only /proc/<pid>/ns/net as CNI_NETNS (the contiv plugin is
// one): any other path, such as the /var/run/netns/cni-... that containerd
// passes, fails with "invalid nw name space". Given a /proc path, ADD sets
// lo up inside that namespace, so a caller can see where it acted.
//
// The example beside it (examples/pid-path-plugin) and the tests of
// package netns run it through netns.Hold.
package main

import (
	"encoding/json"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/ocinet/ocinet/netns"
	"golang.org/x/sys/unix"
)

// errInvalidNetNS is the message of the plugin's refusal.
const errInvalidNetNS = "invalid nw name space"

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: add, Del: del, Check: check}, version.All, "pid-only")
}

func procOnly(args *skel.CmdArgs) error {
	if !strings.HasPrefix(args.Netns, "/proc/") {
		return types.NewError(types.ErrInvalidNetNS, errInvalidNetNS, args.Netns)
	}
	return nil
}

func add(args *skel.CmdArgs) error {
	if err := procOnly(args); err != nil {
		return err
	}
	ns, err := netns.Open(args.Netns)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, err.Error(), args.Netns)
	}
	defer ns.Close()
	if err := ns.Do(loUp); err != nil {
		return err
	}
	var nc types.PluginConf
	if err := json.Unmarshal(args.StdinData, &nc); err != nil {
		return types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	return types.PrintResult(&types100.Result{
		CNIVersion: nc.CNIVersion,
		Interfaces: []*types100.Interface{{Name: "lo", Sandbox: args.Netns}},
	}, nc.CNIVersion)
}

func del(args *skel.CmdArgs) error { return nil }

func check(args *skel.CmdArgs) error { return procOnly(args) }

// loUp sets the flag IFF_UP on lo, in the calling thread's namespace.
func loUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
