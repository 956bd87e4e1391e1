package inproc_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/google/nftables"

	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/testenv"
)

// earlyChain is the in-process bridge (its own lease directory; extra
// goes into its config), portmap and firewall.
func earlyChain(t *testing.T, name, bridge, subnet, dataDir, extra string) *libcni.NetworkConfigList {
	t.Helper()
	b := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[
		{"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":true,"hairpinMode":true%s,
		 "ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":%q}]],"routes":[{"dst":"0.0.0.0/0"}]}},
		{"type":"portmap","capabilities":{"portMappings":true}},
		{"type":"firewall","ingressPolicy":"same-bridge"}]}`, name, bridge, extra, dataDir, subnet)
	list, err := libcni.ConfListFromBytes([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// earlyEnv is an env with the early chain number k (network
// "inp-early<k>", bridge "inpearly<k>", subnet 10.216.<72+k>.0/24, its
// own lease directory), removed when the test ends.
func earlyEnv(t *testing.T, k int) (e *env, list *libcni.NetworkConfigList, dataDir string) {
	t.Helper()
	testenv.RequireRoot(t)
	e, dataDir = newEnv(t), t.TempDir()
	list = earlyChain(t, fmt.Sprintf("inp-early%d", k), fmt.Sprintf("inpearly%d", k), fmt.Sprintf("10.216.%d.0/24", 72+k), dataDir, "")
	e.forget(list.Bytes, fmt.Sprintf("inpearly%d", k))
	return e, list, dataDir
}

// portsOf returns the container ports of the elements of the IPv4 port
// maps that carry comment, by host port.
func portsOf(comment string) (map[uint16]uint16, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	table := &nftables.Table{Name: inproc.TableName, Family: inproc.TableFamily}
	out := map[uint16]uint16{}
	for _, name := range []string{inproc.PortMap4, inproc.PortMapAny4} {
		s, err := c.GetSetByName(table, name)
		if err != nil {
			continue
		}
		els, err := c.GetSetElements(s)
		if err != nil {
			return nil, err
		}
		for _, el := range els {
			if el.Comment != comment || len(el.Val) < 6 || len(el.Key) < 6 {
				continue
			}
			// key: protocol, 3 bytes of padding, [address,] port; value:
			// address, port.
			hostPort := binary.BigEndian.Uint16(el.Key[len(el.Key)-4:])
			out[hostPort] = binary.BigEndian.Uint16(el.Val[4:6])
		}
	}
	return out, nil
}

func portMappings(hostPort, containerPort int) map[string]any {
	return map[string]any{"portMappings": []map[string]any{{"hostPort": hostPort, "containerPort": containerPort, "protocol": "tcp"}}}
}

// TestEarlyElements: under WithChain, the bridge adds the portmap and
// firewall elements itself: when portmap's ADD reaches its first step,
// its element is already there, with what its own config and previous
// result give; the attachment has its elements once, and DEL removes
// them. Without WithChain, the element is not there at that step.
func TestEarlyElements(t *testing.T) {
	e, list, _ := earlyEnv(t, 1)
	var mu sync.Mutex
	found := map[string]string{} // container ID -> what the step saw
	x, err := inproc.New(defaultExec(), inproc.WithRuntimeDir(e.lockDir), inproc.WithStepHook(func(s string) {
		if s != "inproc:ADD:portmap:static" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, id := range []string{"early-c1", "early-c2"} {
			ports, err := portsOf(inproc.AttachmentComment("inp-early1", id, "eth0"))
			switch {
			case err != nil:
				found[id] = err.Error()
			case len(ports) > 0:
				found[id] = fmt.Sprint(ports)
			}
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{e.plugins}, e.cacheDir, x)
	for i, chain := range []bool{true, false} {
		id := fmt.Sprintf("early-c%d", i+1)
		rt := &libcni.RuntimeConf{ContainerID: id, NetNS: newNS(t), IfName: "eth0", CapabilityArgs: portMappings(18480+i, 80)}
		ctx := context.Background()
		if chain {
			ctx = inproc.WithChain(ctx, list.Bytes, rt.CapabilityArgs)
		}
		if _, err := cni.AddNetworkList(ctx, list, rt); err != nil {
			t.Fatalf("%s: ADD: %v", id, err)
		}
		com := inproc.AttachmentComment(list.Name, id, "eth0")
		all := attachmentElements(elements(t), list.Name, id)
		if want := fmt.Sprint([]string{inproc.Forward4 + " " + com, inproc.PortMap4 + "-any " + com}); fmt.Sprint(all) != want {
			t.Errorf("%s: elements %v, want %s", id, all, want)
		}
		if err := cni.DelNetworkList(context.Background(), list, rt); err != nil {
			t.Errorf("%s: DEL: %v", id, err)
		}
		if all := attachmentElements(elements(t), list.Name, id); len(all) != 0 {
			t.Errorf("%s: elements after DEL: %v", id, all)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if got, want := found["early-c1"], fmt.Sprint(map[uint16]uint16{18480: 80}); got != want {
		t.Errorf("with the chain, portmap's first step saw its element as %q, want %q (made by the bridge)", got, want)
	}
	if got := found["early-c2"]; got != "" {
		t.Errorf("without the chain, portmap's first step saw %q, want nothing yet", got)
	}
}

// TestEarlyElementsOtherwise: when the chain WithChain names gives other
// mappings than the runtime configuration portmap's ADD gets (here the
// container port), the elements made early are deleted and portmap adds
// its own: the attachment ends up with exactly those.
func TestEarlyElementsOtherwise(t *testing.T) {
	e, list, _ := earlyEnv(t, 2)
	rt := &libcni.RuntimeConf{ContainerID: "early-c3", NetNS: newNS(t), IfName: "eth0", CapabilityArgs: portMappings(18483, 80)}
	ctx := inproc.WithChain(context.Background(), list.Bytes, portMappings(18483, 81))
	if _, err := e.cniFor().AddNetworkList(ctx, list, rt); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	defer func() {
		if err := e.cniFor().DelNetworkList(context.Background(), list, rt); err != nil {
			t.Errorf("DEL: %v", err)
		}
	}()
	ports, err := portsOf(inproc.AttachmentComment(list.Name, "early-c3", "eth0"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(ports), fmt.Sprint(map[uint16]uint16{18483: 80}); got != want {
		t.Errorf("port elements %s, want %s (the runtime's, not the chain's)", got, want)
	}
}

// TestEarlyElementsAbandoned: a bridge ADD that fails after its lease
// (the veth pair refused: an MTU below the kernel's minimum, on a bridge
// that exists already) deletes what it made early before it gives the
// address up: no element of the attachment is left, and no lease.
func TestEarlyElementsAbandoned(t *testing.T) {
	e, good, dataDir := earlyEnv(t, 3)
	first := &libcni.RuntimeConf{ContainerID: "early-c4", NetNS: newNS(t), IfName: "eth0"}
	if _, err := e.cniFor().AddNetworkList(context.Background(), good, first); err != nil {
		t.Fatalf("first ADD: %v", err)
	}
	defer func() {
		if err := e.cniFor().DelNetworkList(context.Background(), good, first); err != nil {
			t.Errorf("first DEL: %v", err)
		}
	}()
	bad := earlyChain(t, "inp-early3", "inpearly3", "10.216.75.0/24", dataDir, `,"mtu":10`)
	rt := &libcni.RuntimeConf{ContainerID: "early-c5", NetNS: newNS(t), IfName: "eth0", CapabilityArgs: portMappings(18484, 80)}
	ctx := inproc.WithChain(context.Background(), bad.Bytes, rt.CapabilityArgs)
	_, err := e.cniFor().AddNetworkList(ctx, bad, rt)
	if err == nil || !strings.Contains(err.Error(), "veth") {
		t.Fatalf("ADD: %v, want the veth pair's error", err)
	}
	// Before any DEL: the ADD's own rollback.
	if all := attachmentElements(elements(t), bad.Name, "early-c5"); len(all) != 0 {
		t.Errorf("elements of the failed ADD: %v", all)
	}
	if l := leases(t, dataDir, bad.Name); len(l) != 1 {
		t.Errorf("leases %v, want the first container's only", l)
	}
	if err := e.cniFor().DelNetworkList(context.Background(), bad, rt); err != nil {
		t.Errorf("DEL after the failed ADD: %v", err)
	}
}
