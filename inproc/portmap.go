package inproc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"syscall"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// PortMapping is one entry of the portMappings capability, as the portmap
// plugin reads it.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// attachConf is what the portmap and firewall configs have in common: the
// network's name and the previous result.
type attachConf struct {
	types.NetConf
	RuntimeConfig struct {
		PortMaps []PortMapping `json:"portMappings,omitempty"`
	} `json:"runtimeConfig"`
	IngressPolicy    string `json:"ingressPolicy"`
	ValidAttachments []struct {
		ContainerID string `json:"containerID"`
		IfName      string `json:"ifname"`
	} `json:"cni.dev/valid-attachments"`
}

// attachment is the part of the previous result the two plugins use.
type attachment struct {
	bridge string      // the first host interface of the result
	ips    []net.IP    // the container's addresses
	nets   []net.IPNet // their subnets
}

func loadAttachConf(plugin string, stdin []byte) (*attachConf, error) {
	n := &attachConf{}
	if err := json.Unmarshal(stdin, n); err != nil {
		return nil, fmt.Errorf("%s: load config: %v: %w", plugin, err, ErrInvalid)
	}
	if n.Name == "" {
		return nil, fmt.Errorf("%s: config has no network name: %w", plugin, ErrInvalid)
	}
	return n, nil
}

// loadAttachment loads the plugin's config and the previous result.
func loadAttachment(c call) (*attachConf, *attachment, error) {
	n, err := loadAttachConf(c.plugin, c.stdin)
	if err != nil {
		return nil, nil, err
	}
	a, err := prevAttachment(c.plugin, n)
	if err != nil {
		return nil, nil, err
	}
	return n, a, nil
}

// prevAttachment reads the bridge and the container's addresses from the
// previous result.
func prevAttachment(plugin string, n *attachConf) (*attachment, error) {
	if n.RawPrevResult == nil {
		return nil, fmt.Errorf("%s: required prevResult missing: %w", plugin, ErrInvalid)
	}
	if err := version.ParsePrevResult(&n.NetConf); err != nil {
		return nil, fmt.Errorf("%s: prevResult: %v: %w", plugin, err, ErrInvalid)
	}
	res, err := types100.NewResultFromResult(n.PrevResult)
	if err != nil {
		return nil, fmt.Errorf("%s: prevResult: %v: %w", plugin, err, ErrInvalid)
	}
	a := &attachment{}
	for _, i := range res.Interfaces {
		if i.Sandbox == "" && a.bridge == "" {
			a.bridge = i.Name
		}
	}
	for _, ipc := range res.IPs {
		if ipc.Interface != nil && (*ipc.Interface < 0 || *ipc.Interface >= len(res.Interfaces) || res.Interfaces[*ipc.Interface].Sandbox == "") {
			continue // an address on the host
		}
		a.add(ipc.Address)
	}
	if a.bridge != "" {
		if err := validIfName(a.bridge); err != nil {
			return nil, fmt.Errorf("%s: prevResult: host interface: %w", plugin, err)
		}
	}
	return a, nil
}

// add adds one of the container's addresses and its subnet.
func (a *attachment) add(addr net.IPNet) {
	a.ips = append(a.ips, addr.IP)
	ip := addr.IP
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	mask := addr.Mask
	if len(mask) == 16 && len(ip) == 4 {
		mask = mask[12:]
	}
	a.nets = append(a.nets, net.IPNet{IP: ip.Mask(mask), Mask: mask})
}

// ip4 returns the container's first IPv4 address, ip6 its first IPv6 one.
func (a *attachment) ip4() net.IP {
	for _, ip := range a.ips {
		if v4 := ip.To4(); v4 != nil {
			return v4
		}
	}
	return nil
}

func (a *attachment) ip6() net.IP {
	for _, ip := range a.ips {
		if ip.To4() == nil {
			return ip.To16()
		}
	}
	return nil
}

var protocols = map[string]byte{"tcp": unix.IPPROTO_TCP, "udp": unix.IPPROTO_UDP, "sctp": unix.IPPROTO_SCTP}

// portElements turns the mappings into the elements of the port maps, by
// map name. A mapping with an empty host IP is published on every local
// address of each family the container has an address of; 0.0.0.0 and ::
// on every local address of their family.
func portElements(maps []PortMapping, a *attachment, com string) (map[string][]nftables.SetElement, error) {
	out := map[string][]nftables.SetElement{}
	seen := map[string]bool{}
	for i, m := range maps {
		proto, ok := protocols[strings.ToLower(m.Protocol)]
		if m.Protocol == "" {
			proto, ok = unix.IPPROTO_TCP, true
		}
		if !ok {
			return nil, fmt.Errorf("portmap: mapping %d: protocol %q is not tcp, udp or sctp: %w", i, m.Protocol, ErrInvalid)
		}
		if m.HostPort < 1 || m.HostPort > 65535 || m.ContainerPort < 1 || m.ContainerPort > 65535 {
			return nil, fmt.Errorf("portmap: mapping %d: port %d:%d out of range 1-65535: %w", i, m.HostPort, m.ContainerPort, ErrInvalid)
		}
		var host net.IP
		if m.HostIP != "" {
			if host = net.ParseIP(m.HostIP); host == nil {
				return nil, fmt.Errorf("portmap: mapping %d: host IP %q is not an address: %w", i, m.HostIP, ErrInvalid)
			}
		}
		for _, v4 := range []bool{true, false} {
			cont := a.ip6()
			if v4 {
				cont = a.ip4()
			}
			if cont == nil || (host != nil && (host.To4() != nil) != v4) {
				continue
			}
			name := PortMap6
			if v4 {
				name = PortMap4
			}
			key := []byte{proto, 0, 0, 0}
			if host == nil || host.IsUnspecified() {
				name += "-any"
			} else if v4 {
				key = append(key, host.To4()...)
			} else {
				key = append(key, host.To16()...)
			}
			key = pad4(append(key, port(m.HostPort)...))
			if seen[name+string(key)] {
				return nil, fmt.Errorf("portmap: mapping %d: %s port %d on %s is mapped twice: %w", i, m.Protocol, m.HostPort, hostName(host), ErrInvalid)
			}
			seen[name+string(key)] = true
			out[name] = append(out[name], nftables.SetElement{Key: key, Val: pad4(append(append([]byte{}, cont...), port(m.ContainerPort)...)), Comment: com})
		}
	}
	return out, nil
}

func hostName(ip net.IP) string {
	if ip == nil {
		return "every address"
	}
	return ip.String()
}

// portmapAdd publishes the container's ports: one transaction adds every
// mapping as an element of the port maps, and the container's subnets to
// the subnet sets (hairpin). route_localnet is set on the bridge once, so
// that 127.0.0.1 reaches it.
func (e *Exec) portmapAdd(c call) ([]byte, error) {
	n, a, err := loadAttachment(c)
	if err != nil {
		return nil, err
	}
	com := AttachmentComment(n.Name, c.containerID, c.ifc)
	elems, err := portElements(n.RuntimeConfig.PortMaps, a, com)
	if err != nil {
		return nil, err
	}
	key := attachmentKey(c.containerID, c.ifc)
	if part, subnets, made := e.takeEarly(key, "portmap"); made {
		var want []net.IPNet
		if len(elems) > 0 {
			want = a.nets
		}
		if sameElements(part, elems) && reflect.DeepEqual(subnets, want) {
			// The bridge made them (WithChain).
			e.static.saw(key)
			e.stepAt(c, "static")
			e.stepAt(c, "elements")
			return encodeResult(n.PrevResult, n.CNIVersion)
		}
		if err := undoEarly("portmap", part); err != nil {
			return nil, err
		}
	}
	if len(elems) > 0 {
		if err := e.ensureStatic(); err != nil {
			return nil, err
		}
		e.static.saw(key)
		if a.bridge != "" && a.ip4() != nil {
			key := "net/ipv4/conf/" + a.bridge + "/route_localnet"
			if err := writeSysctls([]sysctl{{path: key, value: "1", onlyIfNot: "1", mustSucceed: true}}); err != nil {
				return nil, fmt.Errorf("portmap: %w", err)
			}
		}
		e.stepAt(c, "static")
		if err := addAttachmentElements(a.nets, a.bridge, elems); err != nil {
			if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EEXIST) {
				return nil, fmt.Errorf("portmap: publish ports of container %s: a host port is published for another container: %w", c.containerID, ErrConflict)
			}
			return nil, fmt.Errorf("portmap: publish ports of container %s: %w", c.containerID, err)
		}
		e.stepAt(c, "elements")
	}
	return encodeResult(n.PrevResult, n.CNIVersion)
}

// portSets are the maps portmap writes.
var portSets = []string{PortMap4, PortMapAny4, PortMap6, PortMapAny6}

// attachCheck reports the first element of the attachment that is
// missing; want computes them from the config and the previous result.
func (e *Exec) attachCheck(c call, want func(*attachConf, *attachment, string) (map[string][]nftables.SetElement, error)) error {
	n, a, err := loadAttachment(c)
	if err != nil {
		return err
	}
	elems, err := want(n, a, AttachmentComment(n.Name, c.containerID, c.ifc))
	if err != nil {
		return err
	}
	return checkElements(c.plugin, elems)
}

// attachGC removes the network's elements of the plugin's sets whose
// attachment is not among the valid ones (the GC verb).
func (e *Exec) attachGC(c call, names []string) error {
	n, err := loadAttachConf(c.plugin, c.stdin)
	if err != nil {
		return err
	}
	valid := map[string]bool{}
	for _, v := range n.ValidAttachments {
		valid[v.ContainerID+"/"+v.IfName] = true
	}
	return deleteElements(c.plugin, names, func(com string) bool {
		network, id, ifName, ok := attachmentOf(com)
		return ok && network == n.Name && !valid[id+"/"+ifName]
	})
}

func portmapWant(n *attachConf, a *attachment, com string) (map[string][]nftables.SetElement, error) {
	return portElements(n.RuntimeConfig.PortMaps, a, com)
}

// checkElements reports the first wanted element that is not in its set
// with the same value. Each is looked up by its key (see lookupElements),
// but in the interval sets (the subnets), which are listed.
func checkElements(plugin string, want map[string][]nftables.SetElement) error {
	conn, err := newConn()
	if err != nil {
		return fmt.Errorf("%s: nftables: %w", plugin, err)
	}
	defer closeConn(conn)
	for _, name := range StaticSets {
		if len(want[name]) == 0 {
			continue
		}
		have := map[string]string{}
		if sets[name].Interval {
			if got, err := conn.GetSetElements(sets[name]); err == nil {
				for _, el := range got {
					have[string(el.Key)] = string(el.Val)
				}
			}
		} else {
			got, err := lookupElements(sets[name], keysOf(want[name]))
			if err != nil {
				return fmt.Errorf("%s: %w", plugin, err)
			}
			for k, el := range got {
				have[k] = string(el.Val)
			}
		}
		for _, w := range want[name] {
			if v, ok := have[string(w.Key)]; !ok || v != string(w.Val) {
				return fmt.Errorf("%s: element %x of set %s in table inet %s (%s) is missing: %w", plugin, w.Key, name, TableName, w.Comment, ErrNotFound)
			}
		}
	}
	return nil
}

// deleteElements deletes, in one transaction, the elements of the named
// sets whose comment match accepts. A set that is gone has no elements.
// An element removed between the listing and the delete (a GC, or a
// concurrent DEL of the same attachment) fails the transaction: it is
// listed again once.
func deleteElements(plugin string, names []string, match func(comment string) bool) error {
	conn, err := newConn()
	if err != nil {
		return fmt.Errorf("%s: nftables: %w", plugin, err)
	}
	defer closeConn(conn)
	for try := 0; ; try++ {
		changed := false
		for _, name := range names {
			got, err := conn.GetSetElements(sets[name])
			if err != nil {
				continue // no table or no set: nothing to delete
			}
			del := matching(sets[name], got, match)
			if len(del) > 0 {
				if err := conn.SetDeleteElements(sets[name], del); err != nil {
					return fmt.Errorf("%s: %w", plugin, err)
				}
				changed = true
			}
		}
		if !changed {
			return nil
		}
		err = conn.Flush()
		if err == nil {
			return nil
		}
		if try > 0 || !isNotExist(err) {
			return fmt.Errorf("%s: delete elements: %w", plugin, err)
		}
	}
}

// matching returns the elements whose comment match accepts; in an
// interval set, with the end element of each (the next one by key, which
// carries no comment).
func matching(set *nftables.Set, got []nftables.SetElement, match func(string) bool) []nftables.SetElement {
	if set.Interval {
		slices.SortFunc(got, func(a, b nftables.SetElement) int { return bytes.Compare(a.Key, b.Key) })
	}
	var del []nftables.SetElement
	for i, el := range got {
		if el.IntervalEnd || !match(el.Comment) {
			continue
		}
		del = append(del, nftables.SetElement{Key: el.Key})
		if set.Interval && i+1 < len(got) && got[i+1].IntervalEnd {
			del = append(del, nftables.SetElement{Key: got[i+1].Key, IntervalEnd: true})
		}
	}
	return del
}
