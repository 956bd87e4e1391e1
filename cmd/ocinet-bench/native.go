package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/internal/leakcheck"
	"github.com/ocinet/ocinet/portmap"
)

// nativeSection: Manager.Attach + Detach of the default network with one
// published port, and with 20 (one -p range), through the in-process
// datapath (package inproc: bridge, host-local, loopback, portmap,
// firewall and tuning all in process), against the same Manager calls
// through the plugin binaries, interleaved, each in a fresh namespace
// removed right after the Detach (which is told so); then the Detach with
// the namespace kept, against the Detach told that it ends;
// then 100 attaches at once through the in-process datapath against
// sequential ones, with errors, leaks and duplicate addresses.
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
	one, _, err := localMapping()
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	twenty, err := portmap.Parse(fmt.Sprintf("127.0.0.1:%d-%d:8000-8019", port, port+19))
	if err != nil {
		return err
	}
	var oneTotal series
	for _, c := range []struct {
		name string
		m    portmap.Mapping
		goal float64
	}{{"1 port", one, 0.1}, {"20 ports", twenty, 0.1}} {
		a, natA, natD, err := b.nativePair(native, plug, c.m)
		if err != nil || b.stopped() {
			return err
		}
		b.report.add(
			newRow("native", "Attach+Detach in process, default network, "+c.name, a.nat).againstPaired("through the plugin binaries", a.nat, a.plug).goal(c.goal),
			newRow("native", "Attach in process, "+c.name, natA.nat).againstPaired("through the plugin binaries", natA.nat, natA.plug),
			newRow("native", "Detach in process, "+c.name, natD.nat).againstPaired("through the plugin binaries", natD.nat, natD.plug))
		if oneTotal == nil {
			oneTotal = a.nat
		} else {
			b.report.add(newRow("native", "Attach+Detach in process, 20 ports", a.nat).against("1 port", oneTotal).goal(1.2))
		}
	}
	kept, ends, err := b.nativeKept(native, one)
	if err != nil || b.stopped() {
		return err
	}
	b.report.add(newRow("native", "Detach in process, namespace kept (veth deleted)", kept).
		againstPaired("namespace ends (NamespaceEnds, veth left to it)", kept, ends))
	return b.nativeConcurrent(native, network)
}

// pair is the timings of one operation in process and through the
// binaries.
type pair struct{ nat, plug series }

// nativePair runs interleaved Attach+Detach rounds with the mapping
// through native and plug and returns the totals, the attaches and the
// detaches. Each round removes its namespace right after the Detach, as a
// container's end does, and tells Detach so (ocinet.NamespaceEnds: the
// in-process bridge leaves the veth to the namespace's end; the plugin
// binaries delete it as always).
func (b *bench) nativePair(native, plug *ocinet.Manager, mapping portmap.Mapping) (total, att, det pair, err error) {
	tag := fmt.Sprint(mapping.ContainerPorts.End - mapping.ContainerPorts.Start + 1)
	ends := ocinet.NamespaceEnds()
	nat, base := b.round(native, "n"+tag, mapping, &att.nat, &det.nat, ends), b.round(plug, "p"+tag, mapping, &att.plug, &det.plug, ends)
	// One untimed round each: the bridge and the shared chains exist after.
	if _, err := base(-1); err != nil {
		return total, att, det, err
	}
	if _, err := nat(-1); err != nil {
		return total, att, det, err
	}
	total.nat, total.plug, err = interleave(b.n, b.stopped, nat, base)
	if len(total.nat) == 0 || len(total.plug) == 0 {
		return total, att, det, fmt.Errorf("native: no round: %w", err)
	}
	return total, att, det, err
}

// nativeKept runs interleaved in-process Attach+Detach rounds with the
// mapping, with the namespace kept (Detach deletes the veth) and with the
// namespace ending (NamespaceEnds), and returns the detaches of each.
func (b *bench) nativeKept(native *ocinet.Manager, mapping portmap.Mapping) (kept, ends series, err error) {
	var a1, a2 series
	k, e := b.round(native, "nk", mapping, &a1, &kept), b.round(native, "ne", mapping, &a2, &ends, ocinet.NamespaceEnds())
	_, _, err = interleave(b.n, b.stopped, k, e)
	return kept, ends, err
}

// round returns one measured Attach+Detach of the mapping through m, in a
// fresh namespace removed at the end, adding the times to att and det
// (but not for round -1, the warm-up).
func (b *bench) round(m *ocinet.Manager, tag string, mapping portmap.Mapping, att, det *series, opts ...ocinet.DetachOption) func(int) (time.Duration, error) {
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
		if err := m.Detach(b.ctx, id, opts...); err != nil {
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

// nativeConcurrent: 100 attaches at once through the in-process datapath
// against 100 times the sequential attach, as the concurrent section
// does for the binaries.
func (b *bench) nativeConcurrent(native *ocinet.Manager, network *ocinet.Network) error {
	mapping, err := portmap.Parse("127.0.0.1::80")
	if err != nil {
		return err
	}
	lc := leakcheck.Config{NetNSDir: b.netnsDir, StateDirs: []string{b.stateDir, filepath.Join(b.work, "state-inproc")}}
	before, err := leakcheck.Take(lc)
	if err != nil {
		return err
	}
	const n = 100
	seq, err := b.attachRound(native, "ns100", max(2, b.n/4), mapping, false)
	if err != nil {
		return err
	}
	con, err := b.attachRound(native, "nc100", n, mapping, true)
	if err != nil {
		return err
	}
	left, err := leakcheck.Settled(before, lc)
	if err != nil {
		return err
	}
	leaks := ours(left, network)
	wall := newRow("native", fmt.Sprintf("%d at once in process: Attach wall", n), series{con.attachWall}).
		against(fmt.Sprintf("%d x sequential Attach in process", n), series{time.Duration(n) * seq.attach.median()}).
		note("errors %d, leaks %d, duplicate addresses %d; goal: wall <= 1 s", con.errors, len(leaks), con.duplicates).
		field("errors", con.errors).field("leaks", leaks).field("duplicate_ips", con.duplicates).field("wall_ms", ms(con.attachWall))
	if con.errors > 0 || len(leaks) > 0 || con.duplicates > 0 || con.attachWall > time.Second {
		f := false
		wall.Met = &f
	} else {
		t := true
		wall.Met = &t
	}
	b.report.add(wall)
	if len(con.firstErrs) > 0 {
		b.report.notef("native, %d at once: errors: %s", n, strings.Join(con.firstErrs, "; "))
	}
	if len(leaks) > 0 {
		b.report.notef("native, %d at once: left behind: %s", n, strings.Join(leaks, "; "))
	}
	return nil
}
