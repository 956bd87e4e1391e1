package inproc_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/testenv"
)

// manyConf is a network that runs wholly in process: bridge (with
// masquerade) and tuning.
const manyConf = `{"cniVersion":"1.0.0","name":"inp-many","plugins":[
	{"type":"bridge","bridge":"inpmany0","isGateway":true,"ipMasq":true,"hairpinMode":true,
	 "ipam":{"type":"host-local","ranges":[[{"subnet":"10.216.20.0/24","gateway":"10.216.20.1"}]],"routes":[{"dst":"0.0.0.0/0"}]}},
	{"type":"tuning"}]}`

// TestConcurrentFirstAttaches: 50 containers attach at once to a network
// whose bridge does not exist yet, each through a Manager and an Exec of
// its own (as 50 hook processes would, sharing only the host and the lock
// directory). All succeed, with distinct addresses, one bridge with one
// gateway address, and one masquerade rule.
func TestConcurrentFirstAttaches(t *testing.T) {
	testenv.RequireRoot(t)
	const n = 50
	ctx := context.Background()
	e := newEnv(t)
	net := e.writeNetwork("inp-many.conflist", []byte(manyConf))
	if _, err := netlink.LinkByName(net.Bridge); err == nil {
		t.Fatalf("bridge %s exists before the test", net.Bridge)
	}
	managers := make([]*ocinet.Manager, n)
	paths := make([]string, n)
	for i := range n {
		x, err := inproc.New(defaultExec(), inproc.WithRuntimeDir(e.lockDir))
		if err != nil {
			t.Fatal(err)
		}
		managers[i] = e.manager(t.TempDir(), x)
		paths[i] = newNS(t)
	}
	atts := make([]*ocinet.Attachment, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			atts[i], errs[i] = managers[i].Attach(ctx, ocinet.AttachRequest{ID: fmt.Sprintf("many-%d", i), NetNS: paths[i], Networks: []string{net.Name}})
		})
	}
	close(start)
	wg.Wait()
	t.Cleanup(func() {
		for i := range n {
			if errs[i] == nil {
				if err := managers[i].Detach(ctx, fmt.Sprintf("many-%d", i)); err != nil {
					t.Errorf("detach %d: %v", i, err)
				}
			}
		}
	})
	seen := map[string]int{}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("attach %d: %v", i, errs[i])
			continue
		}
		for _, p := range atts[i].Interfaces[0].IPs {
			if j, dup := seen[p.Addr().String()]; dup {
				t.Errorf("containers %d and %d both got %s", j, i, p.Addr())
			}
			seen[p.Addr().String()] = i
		}
	}
	br, err := netlink.LinkByName(net.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := br.(*netlink.Bridge); !ok {
		t.Fatalf("%s is a %s", net.Bridge, br.Type())
	}
	addrs, err := netlink.AddrList(br, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.216.20.1/24" {
		t.Errorf("bridge addresses %v, want 10.216.20.1/24 alone", addrs)
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	ports := 0
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			ports++
		}
	}
	if ports != n {
		t.Errorf("bridge has %d ports, want %d", ports, n)
	}
	if rules, jumps := masqRules(t, net.Bridge); rules != 1 || jumps != 1 {
		t.Errorf("masquerade: %d rules and %d jumps, want one of each", rules, jumps)
	}
}
