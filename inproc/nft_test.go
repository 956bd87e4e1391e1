package inproc_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/containernetworking/cni/libcni"

	"github.com/ocinet/ocinet/internal/testenv"
)

// TestSharedBridgeMasquerade: two networks on one bridge share its
// masquerade chain, each with its subnet's rule; removing one network
// leaves the other's rule, removing both leaves no chain and no jump.
func TestSharedBridgeMasquerade(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	e := newEnv(t)
	dataDir := t.TempDir()
	var lists []*libcni.NetworkConfigList
	for i, subnet := range []string{"10.216.70.0/24", "10.216.71.0/24"} {
		b := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"inp-share%d","plugins":[{"type":"bridge","bridge":"inpshare0","ipMasq":true,
			"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":%q}]]}}]}`, i, dataDir, subnet)
		list, err := libcni.ConfListFromBytes([]byte(b))
		if err != nil {
			t.Fatal(err)
		}
		e.forget(list.Bytes, "inpshare0")
		lists = append(lists, list)
		rt := &libcni.RuntimeConf{ContainerID: fmt.Sprintf("share-%d", i), NetNS: newNS(t), IfName: "eth0"}
		if _, err := e.cniFor().AddNetworkList(ctx, list, rt); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := e.cniFor().DelNetworkList(ctx, list, rt); err != nil {
				t.Errorf("del: %v", err)
			}
		})
	}
	check := func(when string, wantRules, wantJumps int) {
		t.Helper()
		if rules, jumps := masqRules(t, "inpshare0"); rules != wantRules || jumps != wantJumps {
			t.Errorf("%s: %d rules and %d jumps, want %d and %d", when, rules, jumps, wantRules, wantJumps)
		}
	}
	check("both attached", 2, 1)
	if err := e.exec.RemoveNetwork(ctx, lists[0].Bytes); err != nil {
		t.Fatal(err)
	}
	check("first removed", 1, 1)
	if err := e.exec.RemoveNetwork(ctx, lists[1].Bytes); err != nil {
		t.Fatal(err)
	}
	check("both removed", 0, 0)
}
