// Package host is what the Manager does to the host outside the CNI
// plugins: checking namespace paths, listing the prefixes in use (to choose
// subnets), deleting a bridge, listing the links inside a namespace, and the
// placeholder namespace that stands in at DEL for one that is gone. The
// Manager holds a [Host]; [Real] does the work through netlink
// (github.com/vishvananda/netlink with handles opened inside the target
// namespace, so no thread ever switches namespace, and the CNI plugins'
// retrying dump wrappers), and package ocinettest supplies a fake for tests
// without root. Nothing here starts a process.
//
// Errors: nil; errors.Is(err, errdefs.ErrInvalid) and the netns sentinels
// for a bad namespace path; anything else is the kernel's answer.
package host

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ocinet/ocinet/internal/nftfw"
	"github.com/ocinet/ocinet/netns"
)

// Host is the Manager's view of the host.
type Host interface {
	// CheckNS checks that path names a network namespace other than the
	// host's.
	CheckNS(path string) error
	// NamespaceID identifies the namespace at path ("" when there is none),
	// so that DEL never runs in another namespace that took the path since.
	NamespaceID(path string) string
	// LinkNames returns the names of the links inside the namespace at path.
	LinkNames(path string) (map[string]bool, error)
	// Prefixes returns the prefixes in use on the host: its interface
	// addresses and main-table routes, IPv4 and IPv6, except default
	// routes, loopback, link-local and multicast, and those on device skip.
	Prefixes(skip string) ([]Prefix, error)
	// DeleteBridge deletes the bridge called name; a link of that name that
	// is not a bridge, or none, is left alone.
	DeleteBridge(name string) error
	// MakePlaceholder makes a namespace at path holding links, each with
	// its addresses, and returns its path, or "" when it made none.
	MakePlaceholder(path string, links []Link) (string, error)
	// RemoveNamespace removes a namespace made by MakePlaceholder;
	// removing one that is not there does nothing.
	RemoveNamespace(path string) error
	// RemoveLeaseDir removes host-local's lease directory dir when it holds
	// no lease (only its lock and last-reserved files).
	RemoveLeaseDir(dir string) error
	// LinkExists reports whether the host has a link called name (a
	// macvlan or ipvlan network's parent).
	LinkExists(name string) (bool, error)
	// RemoveIsolation removes the firewall plugin's isolation rules that
	// name bridge (package internal/nftfw) and returns how many it
	// removed, and the families whose rules it left because the host uses
	// legacy iptables there.
	RemoveIsolation(bridge string) (removed int, legacy []string, err error)
}

// Prefix is a prefix in use on the host and the device it is on.
type Prefix struct {
	Prefix netip.Prefix
	Dev    string
}

// Link is one link of a placeholder namespace.
type Link struct {
	Name  string
	Addrs []netip.Prefix
}

// Real returns the host itself.
func Real() Host { return real{} }

type real struct{}

func (real) CheckNS(path string) error { return netns.Check(path) }

func (real) NamespaceID(path string) string { return FileID(path) }

// FileID identifies the file at path by its device and inode, or returns ""
// when there is none.
func FileID(path string) string {
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

// handleAt opens a netlink handle inside the namespace at path.
func handleAt(path string) (netlinksafe.Handle, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return netlinksafe.Handle{}, fmt.Errorf("open namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	h, err := netlinksafe.NewHandleAt(vnetns.NsHandle(fd))
	if err != nil {
		return netlinksafe.Handle{}, fmt.Errorf("netlink in namespace %s: %w", path, err)
	}
	return h, nil
}

func (real) LinkNames(path string) (map[string]bool, error) {
	h, err := handleAt(path)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links in %s: %w", path, err)
	}
	names := make(map[string]bool, len(links))
	for _, l := range links {
		names[l.Attrs().Name] = true
	}
	return names, nil
}

// usable reports whether p counts as a prefix in use.
func usable(p netip.Prefix) bool {
	a := p.Addr()
	return p.IsValid() && p.Bits() > 0 && !a.IsLoopback() && !a.IsLinkLocalUnicast() && !a.IsMulticast() && !a.IsUnspecified()
}

func (real) Prefixes(skip string) ([]Prefix, error) {
	links, err := netlinksafe.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list host links: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	var out []Prefix
	addrs, err := netlinksafe.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list host addresses: %w", err)
	}
	for _, a := range addrs {
		dev := names[a.LinkIndex]
		p, ok := prefixOf(a.IPNet.IP, a.IPNet.Mask)
		if dev == skip || !ok || !usable(p) {
			continue
		}
		out = append(out, Prefix{Prefix: p.Masked(), Dev: dev})
	}
	routes, err := netlinksafe.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list host routes: %w", err)
	}
	for _, r := range routes {
		dev := names[r.LinkIndex]
		if r.Dst == nil || dev == skip {
			continue
		}
		p, ok := prefixOf(r.Dst.IP, r.Dst.Mask)
		if !ok || !usable(p) {
			continue
		}
		out = append(out, Prefix{Prefix: p.Masked(), Dev: dev})
	}
	return out, nil
}

func prefixOf(ip []byte, mask []byte) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, bits := 0, 0
	for _, b := range mask {
		for i := 7; i >= 0; i-- {
			bits++
			if b&(1<<i) != 0 {
				ones++
			}
		}
	}
	if bits == 128 && a.Is4() {
		ones -= 96
	}
	return netip.PrefixFrom(a, ones), true
}

func (real) DeleteBridge(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if l.Type() != "bridge" {
		return nil
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("delete bridge %s: %w", name, err)
	}
	return nil
}

func (r real) MakePlaceholder(path string, links []Link) (string, error) {
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
	if err := fillPlaceholder(path, links); err != nil {
		_ = netns.Remove(path)
		return "", fmt.Errorf("placeholder namespace: %w", err)
	}
	return path, nil
}

func fillPlaceholder(path string, links []Link) error {
	h, err := handleAt(path)
	if err != nil {
		return err
	}
	defer h.Close()
	for i, l := range links {
		// A veth pair with both ends inside: the dummy link type is not
		// built into every kernel, veth is (containers need it).
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: l.Name}, PeerName: fmt.Sprintf("ph%d", i)}
		if err := h.LinkAdd(veth); err != nil {
			return fmt.Errorf("add link %s: %w", l.Name, err)
		}
		link, err := h.LinkByName(l.Name)
		if err != nil {
			return err
		}
		for _, p := range l.Addrs {
			addr := &netlink.Addr{IPNet: netipNet(p)}
			if p.Addr().Is6() {
				addr.Flags = unix.IFA_F_NODAD // usable at once, no duplicate detection wait
			}
			if err := h.AddrAdd(link, addr); err != nil {
				return fmt.Errorf("add address %s to %s: %w", p, l.Name, err)
			}
		}
	}
	return nil
}

func (real) RemoveNamespace(path string) error { return netns.Remove(path) }

func (real) LinkExists(name string) (bool, error) {
	_, err := netlink.LinkByName(name)
	if err == nil {
		return true, nil
	}
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return false, nil
	}
	return false, fmt.Errorf("link %s: %w", name, err)
}

func (real) RemoveIsolation(bridge string) (int, []string, error) {
	rep, err := nftfw.RemoveBridge(bridge)
	if err != nil {
		return 0, nil, err
	}
	return len(rep.Removed), rep.Legacy, nil
}

func (real) RemoveLeaseDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range ents {
		if e.Name() != "lock" && !strings.HasPrefix(e.Name(), "last_reserved_ip.") {
			return nil // a lease: not ours to drop
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove lease directory: %w", err)
	}
	return nil
}

// LoopbackUp sets the loopback interface up inside the namespace at path,
// which must be a network namespace other than the host's. It is all a
// container with no network of its own gets (--network none).
func LoopbackUp(path string) error {
	if err := netns.Check(path); err != nil {
		return err
	}
	h, err := handleAt(path)
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback in %s: %w", path, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set loopback up in %s: %w", path, err)
	}
	return nil
}
