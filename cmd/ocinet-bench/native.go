package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/ocinet/ocinet"
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
// sequential ones, with errors, leaks and duplicate addresses, and one
// more Attach+Detach while the 100 are attached against the same with
// none.
func (b *bench) nativeSection() error {
	plug, network, err := b.manager()
	if err != nil {
		return err
	}
	// The Manager as a program gets it: the native datapath of its own
	// (with the preflight check, and no journal sink for chains that run
	// wholly in process), not an executor handed in.
	native, err := ocinet.New(filepath.Join(b.work, "state-inproc"),
		ocinet.WithCNIConfDir(b.confDir),
		ocinet.WithPluginDirs(b.pluginDir),
		ocinet.WithDefaultBridge(benchBridge),
		ocinet.WithRuntimeDir(filepath.Join(b.work, "run-native")),
		ocinet.WithDatapath(ocinet.DatapathNative))
	if err != nil {
		return err
	}
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
	// Both mappings in the same rounds: the 20-port figure is paired with
	// the 1-port one measured beside it, not with one measured earlier on
	// a host whose disk and kernel were in another state.
	mappings := []struct {
		name string
		m    portmap.Mapping
		goal float64
	}{{"1 port", one, 0.1}, {"20 ports", twenty, 0.1}}
	res, err := b.nativePairs(native, plug, one, twenty)
	if err != nil || b.stopped() {
		return err
	}
	for k, c := range mappings {
		a, natA, natD := res[k].total, res[k].att, res[k].det
		b.report.add(
			newRow("native", "Attach+Detach in process, default network, "+c.name, a.nat).againstPaired("through the plugin binaries", a.nat, a.plug).goal(c.goal),
			newRow("native", "Attach in process, "+c.name, natA.nat).againstPaired("through the plugin binaries", natA.nat, natA.plug),
			newRow("native", "Detach in process, "+c.name, natD.nat).againstPaired("through the plugin binaries", natD.nat, natD.plug))
	}
	b.report.add(newRow("native", "Attach+Detach in process, 20 ports", res[1].total.nat).
		againstPaired("1 port, same rounds", res[1].total.nat, res[0].total.nat).goal(1.2))
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

// pairs is one mapping's Attach+Detach totals, attaches and detaches.
type pairs struct{ total, att, det pair }

// nativePairs runs rounds of Attach+Detach with each mapping, through
// native and through plug, all four in turn in every round (the order
// reversed every other round), and returns, per mapping, the totals, the
// attaches and the detaches. Each Attach+Detach removes its namespace
// right after the Detach, as a container's end does, and tells Detach so
// (ocinet.NamespaceEnds: the in-process bridge leaves the veth to the
// namespace's end; the plugin binaries delete it as always).
func (b *bench) nativePairs(native, plug *ocinet.Manager, mappings ...portmap.Mapping) ([]pairs, error) {
	ends := ocinet.NamespaceEnds()
	out := make([]pairs, len(mappings))
	type run struct {
		f   func(int) (time.Duration, error)
		tot *series
	}
	var runs []run
	for k, m := range mappings {
		tag := fmt.Sprint(m.ContainerPorts.End - m.ContainerPorts.Start + 1)
		p := &out[k]
		nat := b.round(native, "n"+tag, m, &p.att.nat, &p.det.nat, ends)
		base := b.round(plug, "p"+tag, m, &p.att.plug, &p.det.plug, ends)
		// One untimed round each: the bridge and the shared chains exist after.
		for _, f := range []func(int) (time.Duration, error){base, nat} {
			if _, err := f(-1); err != nil {
				return nil, err
			}
		}
		runs = append(runs, run{nat, &p.total.nat}, run{base, &p.total.plug})
	}
	for i := 0; i < b.n && !b.stopped(); i++ {
		for j := range runs {
			r := runs[j]
			if i%2 == 1 {
				r = runs[len(runs)-1-j]
			}
			d, err := r.f(i)
			if err != nil {
				return out, err
			}
			*r.tot = append(*r.tot, d)
		}
	}
	for _, p := range out {
		if len(p.total.nat) == 0 || len(p.total.plug) == 0 {
			return out, errors.New("native: no round")
		}
	}
	return out, nil
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
	// Attach+Detach of one more container while the 100 are attached (on a
	// network of 100 containers: 100 leases, port reservations and port map
	// elements beside its own), against the same on the network without
	// them, measured before and after.
	var alone, crowd, att, det series
	pairs := func(tag string, into *series, k int) func() error {
		return func() error {
			f := b.round(native, tag, mapping, &att, &det, ocinet.NamespaceEnds())
			for i := 0; i < k && !b.stopped(); i++ {
				d, err := f(i)
				if err != nil {
					return err
				}
				*into = append(*into, d)
			}
			return nil
		}
	}
	k := max(2, b.n/2)
	if err := pairs("nb0", &alone, k)(); err != nil {
		return err
	}
	con, err := b.attachRound(native, "nc100", n, mapping, true, pairs("nb100", &crowd, 2*k))
	if err != nil {
		return err
	}
	if err := pairs("nb1", &alone, k)(); err != nil {
		return err
	}
	b.report.add(newRow("native", fmt.Sprintf("Attach+Detach in process beside %d attached containers", n), crowd).
		against("the same with none attached (measured before and after)", alone).
		note("what the network's other containers cost each attachment"))
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
