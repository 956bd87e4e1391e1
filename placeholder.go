package ocinet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ocinet/ocinet/netns"
)

// placeholderPath is where the placeholder namespace of attachment id is
// made: a name fixed per state root and attachment, so that one left by a
// crash is found and reused.
func (m *Manager) placeholderPath(id string) string {
	h := sha256.Sum256([]byte(m.root + "\x00" + id))
	return filepath.Join(netns.DefaultDir, "ocinet-del-"+hex.EncodeToString(h[:8]))
}

// placeholderNS makes, at path, a namespace that stands in at DEL time for
// a container's namespace that is gone. It holds a link per recorded
// interface, with the recorded addresses.
//
// Why: given no namespace, the bridge plugin releases the address but skips
// its masquerade teardown, and given a namespace without the interface, it
// skips it too, because it learns the addresses to clean up by deleting the
// interface. Every such DEL would leak a NAT chain and a POSTROUTING rule.
// With the placeholder the plugin finds the interface, deletes it, and tears
// its rules down.
//
// It stands in for the networks i of rec for which stand[i] holds, and
// returns "" when none of them has an address to stand in for.
func (m *Manager) placeholderNS(ctx context.Context, rec *record, path string, stand map[int]bool) (string, error) {
	type link struct {
		name  string
		addrs []string
	}
	var links []link
	for i, nr := range rec.Networks {
		if !stand[i] || nr.IfName == "lo" || len(nr.Result) == 0 {
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
	if err := netns.Remove(path); err != nil {
		return "", err
	}
	path, err := netns.Create(filepath.Dir(path), filepath.Base(path))
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
			args := []string{"-n", name, "addr", "add", a, "dev", l.name}
			if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is6() {
				args = append(args, "nodad") // usable at once, no duplicate detection wait
			}
			cmds = append(cmds, args)
		}
		for _, args := range cmds {
			if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
				_ = netns.Remove(path)
				return "", fmt.Errorf("placeholder namespace: ip %v: %v: %s", args, err, out)
			}
		}
	}
	return path, nil
}

// delPaths returns the namespace path each network's DEL runs with: the
// container's namespace where it is still there and still holds the
// network's interface; otherwise a placeholder made at ph (see
// placeholderNS), or "" when there is nothing to stand in for or the
// placeholder cannot be made.
func (m *Manager) delPaths(ctx context.Context, rec *record, ph string) []string {
	paths := make([]string, len(rec.Networks))
	stand := map[int]bool{}
	if m.checkNS(rec.NetNS) == nil && (rec.NetNSID == "" || namespaceID(rec.NetNS) == rec.NetNSID) {
		names, err := linkNames(rec.NetNS)
		for i, nr := range rec.Networks {
			paths[i] = rec.NetNS
			if err == nil && nr.IfName != "lo" && !names[nr.IfName] {
				stand[i] = true
			}
		}
	} else {
		for i := range rec.Networks {
			stand[i] = true
		}
	}
	if len(stand) == 0 || !m.realNS {
		return paths // with namespaces that are not real: "" where one is gone
	}
	p, err := m.placeholderNS(ctx, rec, ph, stand)
	if err != nil {
		m.log.Warn("detach: no placeholder namespace; running DEL without one", "id", rec.ID, "err", err)
	}
	for i := range stand {
		paths[i] = p
	}
	return paths
}

// namespaceID identifies the namespace at path by the device and inode of
// its nsfs file, or returns "" when path holds none.
func namespaceID(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%d:%d", uint64(st.Dev), uint64(st.Ino))
}
