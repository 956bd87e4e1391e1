package ocinettest_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/internal/testenv"
	"github.com/ocinet/ocinet/ocinettest"
)

// BenchmarkAttachDetach measures one Attach and Detach over the fake
// plugins ("fake") against the same over the real ones ("real", root
// only), in the same process: what a unit test gains by the kit.
func BenchmarkAttachDetach(b *testing.B) {
	run := func(b *testing.B, m *ocinet.Manager, ns string) {
		ctx := context.Background()
		for b.Loop() {
			if _, err := m.Attach(ctx, ocinet.AttachRequest{ID: "bench", NetNS: ns}); err != nil {
				b.Fatal(err)
			}
			if err := m.Detach(ctx, "bench"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("fake", func(b *testing.B) {
		e := ocinettest.NewEnv(b)
		run(b, e.Manager, e.NetNS("bench"))
	})
	b.Run("real", func(b *testing.B) {
		plugins := testenv.RequirePlugins(b)
		const bridge = "ocikit0"
		state := b.TempDir()
		ocinettest.CheckLeaks(b, ocinettest.LeakConfig{StateDirs: []string{state}, IgnoreBridges: []string{bridge}})
		testenv.RemoveLinkAtEnd(b, bridge)
		m, err := ocinet.New(state, ocinet.WithCNIConfDir(b.TempDir()), ocinet.WithPluginDirs(plugins),
			ocinet.WithRuntimeDir(b.TempDir()), ocinet.WithDefaultBridge(bridge),
			ocinet.WithDefaultSubnet(netip.MustParsePrefix("10.214.0.0/24")))
		if err != nil {
			b.Fatal(err)
		}
		run(b, m, ocinettest.NetNS(b))
	})
}
