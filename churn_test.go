package ocinet_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ocinet/ocinet"
)

// TestChurn attaches 50 containers to one bridge network at once, checks
// that no two got the same address, detaches them all at once, and does it
// again, five rounds. The first round is the network's first use, when the
// plugins create the bridge and the firewall plugin its shared chains (the
// race that makes concurrent first ADDs fail with CHAIN_USER_ADD). No
// operation may fail and nothing may be left (the leak check).
//
// The network is an internal one (bridge and firewall): the default chain's
// portmap and masquerade rules add some thirty iptables runs per container
// and make the test three times slower here without testing anything
// more about concurrency; the other tests cover them.
func TestChurn(t *testing.T) {
	const containers, rounds = 50, 5
	e := newEnv(t)
	ctx := context.Background()
	e.network(ocinet.NetworkConfig{Name: "ocit-churn", Subnet: netip.MustParsePrefix("10.213.50.0/24"), Internal: true})
	spaces := make([]string, containers)
	for i := range spaces {
		spaces[i] = e.ns()
	}
	var attachTotal, detachTotal time.Duration
	for r := 0; r < rounds; r++ {
		addrs := make([]netip.Addr, containers)
		errs := make([]error, containers)
		start := time.Now()
		var wg sync.WaitGroup
		for i := range containers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, err := e.m.Attach(ctx, ocinet.AttachRequest{ID: fmt.Sprintf("churn-%d", i), NetNS: spaces[i], Networks: []string{"ocit-churn"}})
				if err == nil {
					addrs[i] = a.Interfaces[0].IPs[0].Addr()
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		attach := time.Since(start)
		seen := map[netip.Addr]int{}
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: attach churn-%d: %v", r, i, err)
				continue
			}
			if j, dup := seen[addrs[i]]; dup {
				t.Errorf("round %d: churn-%d and churn-%d both got %s", r, j, i, addrs[i])
			}
			seen[addrs[i]] = i
		}
		start = time.Now()
		for i := range containers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = e.m.Detach(ctx, fmt.Sprintf("churn-%d", i))
			}()
		}
		wg.Wait()
		detach := time.Since(start)
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: detach churn-%d: %v", r, i, err)
			}
		}
		if list, err := e.m.List(); err != nil || len(list) != 0 {
			t.Fatalf("round %d: %d records left after detaching all (%v)", r, len(list), err)
		}
		attachTotal += attach
		detachTotal += detach
		t.Logf("round %d: %d attaches in %v (%v each), %d detaches in %v (%v each)", r, containers,
			attach.Round(time.Millisecond), (attach / containers).Round(time.Millisecond),
			containers, detach.Round(time.Millisecond), (detach / containers).Round(time.Millisecond))
		if t.Failed() {
			t.FailNow()
		}
	}
	n := time.Duration(containers * rounds)
	t.Logf("churn: %d containers x %d rounds: attach %v per op, detach %v per op (wall time over concurrent operations), total %v",
		containers, rounds, (attachTotal / n).Round(time.Millisecond), (detachTotal / n).Round(time.Millisecond), (attachTotal + detachTotal).Round(time.Millisecond))
}
