package ocinet

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"path/filepath"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ocinet/ocinet/internal/host"
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
func (m *Manager) placeholderNS(rec *record, path string, stand map[int]bool) (string, error) {
	var links []host.Link
	for i, nr := range rec.Networks {
		if !stand[i] || len(nr.Result) == 0 {
			continue
		}
		var res types100.Result
		if err := json.Unmarshal(nr.Result, &res); err != nil {
			continue
		}
		l := host.Link{Name: nr.IfName}
		for _, ip := range res.IPs {
			if ip.Interface != nil && *ip.Interface >= 0 && *ip.Interface < len(res.Interfaces) &&
				res.Interfaces[*ip.Interface].Name != nr.IfName {
				continue
			}
			if p, err := netip.ParsePrefix(ip.Address.String()); err == nil {
				l.Addrs = append(l.Addrs, p)
			}
		}
		if len(l.Addrs) > 0 {
			links = append(links, l)
		}
	}
	return m.host.MakePlaceholder(path, links)
}

// delPaths returns the namespace path each network's DEL runs with: the
// container's namespace where it is still there and still holds the
// network's interface; otherwise a placeholder made at ph (see
// placeholderNS), or "" when there is nothing to stand in for or the
// placeholder cannot be made. lo is the loopback network's: the
// container's namespace while it is there, else "" (nothing to undo).
func (m *Manager) delPaths(rec *record, ph string) (lo string, paths []string) {
	paths = make([]string, len(rec.Networks))
	stand := map[int]bool{}
	if m.host.CheckNS(rec.NetNS) == nil && (rec.NetNSID == "" || m.host.NamespaceID(rec.NetNS) == rec.NetNSID) {
		lo = rec.NetNS
		names, err := m.host.LinkNames(rec.NetNS)
		for i, nr := range rec.Networks {
			paths[i] = rec.NetNS
			if err == nil && !names[nr.IfName] {
				stand[i] = true
			}
		}
	} else {
		for i := range rec.Networks {
			stand[i] = true
		}
	}
	if len(stand) == 0 {
		return lo, paths
	}
	p, err := m.placeholderNS(rec, ph, stand)
	if err != nil {
		m.log.Warn("detach: no placeholder namespace; running DEL without one", "id", rec.ID, "err", err)
	}
	for i := range stand {
		paths[i] = p
	}
	return lo, paths
}
