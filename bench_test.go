package ocinet_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/containernetworking/cni/libcni"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/internal/leakcheck"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/netns"
	"github.com/ocinet/ocinet/ocinettest"
)

// BenchmarkAttachDetach measures one Attach and one Detach on the default
// network (bridge, portmap, firewall) against the baseline a program would
// otherwise write: the CNI library's AddNetworkList and DelNetworkList for
// the same loopback and bridge conflists, with no journal, no locks and no
// placeholder check. Compare the two ns/op figures of one run:
//
//	go test -run '^$' -bench AttachDetach -benchtime 30x .
func BenchmarkAttachDetach(b *testing.B) {
	plugins := testenv.RequirePlugins(b)
	state, confDir, runtimeDir := b.TempDir(), b.TempDir(), b.TempDir()
	ocinettest.CheckLeaks(b, leakcheck.Config{StateDirs: []string{state}, IgnoreBridges: []string{testBridge}})
	testenv.RemoveLinkAtEnd(b, testBridge)
	m, err := ocinet.New(state, managerOptions(confDir, runtimeDir, []string{plugins})...)
	if err != nil {
		b.Fatal(err)
	}
	n, err := m.Network(ocinet.DefaultNetworkName)
	if err != nil {
		b.Fatal(err)
	}
	path, err := netns.Create("", "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = netns.Remove(path) })
	ctx := context.Background()
	// Warm the network up once, so that neither side pays for the bridge.
	if _, err := m.Attach(ctx, ocinet.AttachRequest{ID: "bench-warm", NetNS: path}); err != nil {
		b.Fatal(err)
	}
	if err := m.Detach(ctx, "bench-warm"); err != nil {
		b.Fatal(err)
	}

	b.Run("libcni", func(b *testing.B) {
		cni := libcni.NewCNIConfigWithCacheDir([]string{plugins}, ocinet.DefaultCNICacheDir, nil)
		lo, err := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.0.0","name":"bench-loopback","plugins":[{"type":"loopback"}]}`))
		if err != nil {
			b.Fatal(err)
		}
		list, err := libcni.ConfListFromBytes(n.Bytes)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; b.Loop(); i++ {
			id := fmt.Sprintf("bench-raw-%d", i)
			rts := []*libcni.RuntimeConf{
				{ContainerID: id, NetNS: path, IfName: "lo"},
				{ContainerID: id, NetNS: path, IfName: "eth0", Args: [][2]string{{"IgnoreUnknown", "1"}}},
			}
			for j, l := range []*libcni.NetworkConfigList{lo, list} {
				if _, err := cni.AddNetworkList(ctx, l, rts[j]); err != nil {
					b.Fatal(err)
				}
			}
			for j, l := range []*libcni.NetworkConfigList{list, lo} {
				if err := cni.DelNetworkList(ctx, l, rts[1-j]); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("ocinet", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			id := fmt.Sprintf("bench-%d", i)
			if _, err := m.Attach(ctx, ocinet.AttachRequest{ID: id, NetNS: path}); err != nil {
				b.Fatal(err)
			}
			if err := m.Detach(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
}
