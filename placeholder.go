package ocinet

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ocinet/ocinet/netns"
)

// placeholderNS makes a namespace that stands in at DEL time for a
// container's namespace that is gone. It holds a link per recorded
// interface, with the recorded addresses.
//
// Why: given no namespace, the bridge plugin releases the address but skips
// its masquerade teardown, and given a namespace without the interface, it
// skips it too, because it learns the addresses to clean up by deleting the
// interface. Every such DEL would leak a NAT chain and a POSTROUTING rule.
// With the placeholder the plugin finds the interface, deletes it, and tears
// its rules down.
//
// It returns "" when the record has no interface to stand in for.
func placeholderNS(rec *record) (string, error) {
	type link struct {
		name  string
		addrs []string
	}
	var links []link
	for _, nr := range rec.Networks {
		if nr.IfName == "lo" || len(nr.Result) == 0 {
			continue
		}
		var res types100.Result
		if err := json.Unmarshal(nr.Result, &res); err != nil {
			continue
		}
		l := link{name: nr.IfName}
		for _, ip := range res.IPs {
			if ip.Interface != nil && *ip.Interface >= 0 && *ip.Interface < len(res.Interfaces) &&
				res.Interfaces[*ip.Interface].Name != nr.IfName {
				continue
			}
			l.addrs = append(l.addrs, ip.Address.String())
		}
		if len(l.addrs) > 0 {
			links = append(links, l)
		}
	}
	if len(links) == 0 {
		return "", nil
	}
	path, err := netns.Create("", "ocinet-del-"+netns.RandomName()[4:])
	if err != nil {
		return "", err
	}
	name := filepath.Base(path)
	for i, l := range links {
		// A veth pair with both ends inside: the dummy link type is not
		// built into every kernel, veth is (containers need it).
		peer := fmt.Sprintf("ph%d", i)
		cmds := [][]string{{"-n", name, "link", "add", l.name, "type", "veth", "peer", "name", peer}}
		for _, a := range l.addrs {
			cmds = append(cmds, []string{"-n", name, "addr", "add", a, "dev", l.name})
		}
		for _, args := range cmds {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				_ = netns.Remove(path)
				return "", fmt.Errorf("placeholder namespace: ip %v: %v: %s", args, err, out)
			}
		}
	}
	return path, nil
}
