package inproc_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/portmap"
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

// TestConcurrentDetachesTakeTheirElements: 100 containers with a
// published port each on nerdctl's default network (bridge, portmap,
// firewall and tuning in process) detach at once while others attach; the
// table keeps no element of theirs, though elements that expire at once
// come and go in the port map all the while. Each DEL finds its elements
// by their keys: a listing of the map, which the others' transactions and
// the freeing of expired elements change meanwhile, skipped some, and
// they stayed.
func TestConcurrentDetachesTakeTheirElements(t *testing.T) {
	testenv.RequireRoot(t)
	const n = 100
	ctx := context.Background()
	e := newEnv(t)
	net := wideDefault(t, e, "inpdel100", "10.218.")
	paths := make([]string, 2*n)
	for i := range paths {
		paths[i] = newNS(t)
	}
	id := func(round, i int) string { return fmt.Sprintf("del100-%d-%d", round, i) }
	attach := func(round, i int) error {
		p, err := portmap.Parse(fmt.Sprintf("127.0.0.1:%d:80", 18700+(round%2)*n+i))
		if err != nil {
			return err
		}
		_, err = e.native.Attach(ctx, ocinet.AttachRequest{ID: id(round, i), NetNS: paths[(round%2)*n+i], Networks: []string{net.Name}, Ports: []portmap.Mapping{p}})
		return err
	}
	for i := range n {
		if err := attach(0, i); err != nil {
			t.Fatal(err)
		}
	}
	// Meanwhile elements that expire at once come and go in the port map
	// all the time, as the DELs of a busy host make them (on 127.0.0.2,
	// a key no container of the test has).
	c, ports4 := tableSet(t, inproc.PortMap4)
	stop := churn(c, ports4, 0, func(k int) nftables.SetElement {
		port := 20000 + k%20000
		return nftables.SetElement{Key: []byte{6, 0, 0, 0, 127, 0, 0, 2, byte(port >> 8), byte(port), 0, 0},
			Val: []byte{10, 218, 255, 254, 0, 80, 0, 0}, Comment: "ocinet-test-churn"}
	})
	const rounds = 3
	for round := 1; round <= rounds; round++ {
		// Round r-1's containers leave while round r's come.
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if err := e.native.Detach(ctx, id(round-1, i)); err != nil {
					t.Errorf("detach %s: %v", id(round-1, i), err)
				}
			})
			wg.Go(func() {
				if round < rounds {
					if err := attach(round, i); err != nil {
						t.Errorf("attach %s: %v", id(round, i), err)
					}
				}
			})
		}
		wg.Wait()
	}
	stop()
	// Expired elements are freed within a clock tick; a listing of a set
	// that no longer changes holds every element that stays.
	time.Sleep(50 * time.Millisecond)
	var left []string
	for _, l := range elements(t) {
		if strings.Contains(l, "att=del100-") {
			left = append(left, l)
		}
	}
	if len(left) > 0 {
		t.Errorf("%d elements of detached containers left, such as %s", len(left), left[0])
	}
}
