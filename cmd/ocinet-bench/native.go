package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/portmap"
)

// nativeSection: Manager.Attach + Detach of the default network with one
// published port through the in-process datapath (package inproc: bridge,
// host-local and loopback in process; portmap and firewall stay binaries),
// against the same Manager calls through the plugin binaries, interleaved,
// each in a fresh namespace.
func (b *bench) nativeSection() error {
	plug, network, err := b.manager()
	if err != nil {
		return err
	}
	x, err := inproc.New(&invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: io.Discard}, PluginDecoder: version.PluginDecoder{}},
		inproc.WithRuntimeDir(filepath.Join(b.work, "run-inproc")))
	if err != nil {
		return err
	}
	native, err := ocinet.New(filepath.Join(b.work, "state-inproc"),
		ocinet.WithCNIConfDir(b.confDir),
		ocinet.WithPluginDirs(b.pluginDir),
		ocinet.WithDefaultBridge(benchBridge),
		ocinet.WithRuntimeDir(filepath.Join(b.work, "run-native")),
		ocinet.WithExec(x))
	if err != nil {
		return err
	}
	b.clean.add("in-process network state", func() error { return x.RemoveNetwork(context.Background(), network.Bytes) })
	mapping, _, err := localMapping()
	if err != nil {
		return err
	}
	var natA, natD, plugA, plugD series
	round := func(m *ocinet.Manager, tag string, att, det *series) func(int) (time.Duration, error) {
		return func(i int) (time.Duration, error) {
			id := fmt.Sprintf("%s%s-%d", idPrefix, tag, i)
			ns, rm, err := b.newNS(id)
			if err != nil {
				return 0, err
			}
			defer rm()
			b.pend(id, func() error { return m.Detach(context.Background(), id) })
			t0 := time.Now()
			if _, err := m.Attach(b.ctx, ocinet.AttachRequest{ID: id, NetNS: ns, Ports: []portmap.Mapping{mapping}}); err != nil {
				_ = b.undo(id)
				return 0, err
			}
			t1 := time.Now()
			if err := m.Detach(b.ctx, id); err != nil {
				_ = b.undo(id)
				return 0, err
			}
			t2 := time.Now()
			b.unpend(id)
			if i >= 0 {
				*att, *det = append(*att, t1.Sub(t0)), append(*det, t2.Sub(t1))
			}
			return t2.Sub(t0), nil
		}
	}
	nat, base := round(native, "n", &natA, &natD), round(plug, "p", &plugA, &plugD)
	// One untimed round each: the bridge and the shared chains exist after.
	if _, err := base(-1); err != nil {
		return err
	}
	if _, err := nat(-1); err != nil {
		return err
	}
	a, p, err := interleave(b.n, b.stopped, nat, base)
	if len(a) == 0 || len(p) == 0 {
		return err
	}
	b.report.add(
		newRow("native", "Attach+Detach in process, default network, 1 port", a).againstPaired("through the plugin binaries", a, p).goal(0.65),
		newRow("native", "Attach in process", natA).againstPaired("through the plugin binaries", natA, plugA),
		newRow("native", "Detach in process", natD).againstPaired("through the plugin binaries", natD, plugD))
	return err
}
