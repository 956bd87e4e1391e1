package main

import (
	"context"
	"fmt"
	"time"

	gocni "github.com/containerd/go-cni"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/portmap"
	portmapcni "github.com/ocinet/ocinet/portmap/gocni"
)

// rawCNI is the baseline a user of go-cni writes: the same conflist, given
// as bytes, with the loopback network go-cni offers, and the same port
// mapping and arguments the Manager passes.
type rawCNI struct {
	b    *bench
	cni  gocni.CNI
	opts []gocni.NamespaceOpts
}

func (b *bench) newRawCNI(conflist []byte, ports []portmap.Port) (*rawCNI, error) {
	// go-cni names a network's interface by its position among the
	// networks loaded so far: the conflist comes first to be eth0.
	c, err := gocni.New(gocni.WithPluginDir([]string{b.pluginDir}), gocni.WithConfListBytes(conflist), gocni.WithLoNetwork)
	if err != nil {
		return nil, err
	}
	r := &rawCNI{b: b, cni: c, opts: []gocni.NamespaceOpts{gocni.WithArgs("IgnoreUnknown", "1")}}
	if len(ports) > 0 {
		r.opts = append(r.opts, gocni.WithCapabilityPortMap(portmapcni.PortMappings(ports)))
	}
	return r, nil
}

func (r *rawCNI) setup(ctx context.Context, id, ns string) error {
	r.b.pend(id, func() error { return r.cni.Remove(context.Background(), id, ns, r.opts...) })
	res, err := r.cni.Setup(ctx, id, ns, r.opts...)
	if err != nil {
		return err
	}
	if eth0, ok := res.Interfaces["eth0"]; !ok || len(eth0.IPConfigs) == 0 {
		return fmt.Errorf("go-cni setup %s: no address on eth0", id)
	}
	return nil
}

func (r *rawCNI) remove(ctx context.Context, id, ns string) error {
	if err := r.cni.Remove(ctx, id, ns, r.opts...); err != nil {
		return err
	}
	r.b.unpend(id)
	return nil
}

// attachSection: Manager.Attach + Detach of the default network with one
// published port, against go-cni Setup + Remove of the very same conflist
// bytes and port mapping, each in a fresh namespace.
func (b *bench) attachSection() error {
	m, network, err := b.manager()
	if err != nil {
		return err
	}
	mapping, ports, err := localMapping()
	if err != nil {
		return err
	}
	raw, err := b.newRawCNI(network.Bytes, ports)
	if err != nil {
		return err
	}

	var attach, detach, setup, remove, own series
	var execs []int
	mgr := func(i int) (time.Duration, error) {
		id := fmt.Sprintf("%sm-%d", idPrefix, i)
		ns, rm, err := b.newNS(id)
		if err != nil {
			return 0, err
		}
		defer rm()
		b.exec.take()
		t0 := time.Now()
		a, err := m.Attach(b.ctx, ocinet.AttachRequest{ID: id, NetNS: ns, Ports: []portmap.Mapping{mapping}})
		if err != nil {
			return 0, err
		}
		t1 := time.Now()
		if len(a.Interfaces) != 1 || len(a.Interfaces[0].IPs) == 0 || len(a.Ports) != 1 {
			return 0, fmt.Errorf("attach %s: unexpected attachment %+v", id, a)
		}
		t2 := time.Now()
		if err := m.Detach(b.ctx, id); err != nil {
			return 0, err
		}
		t3 := time.Now()
		plugins, n := b.exec.take()
		if i >= 0 {
			attach, detach = append(attach, t1.Sub(t0)), append(detach, t3.Sub(t2))
			own, execs = append(own, t1.Sub(t0)+t3.Sub(t2)-plugins), append(execs, n)
		}
		return t1.Sub(t0) + t3.Sub(t2), nil
	}
	cni := func(i int) (time.Duration, error) {
		id := fmt.Sprintf("%sg-%d", idPrefix, i)
		ns, rm, err := b.newNS(id)
		if err != nil {
			return 0, err
		}
		// A failed setup is removed while its namespace still exists:
		// without it the bridge plugin leaves its NAT rules behind.
		defer func() {
			_ = b.undo(id)
			rm()
		}()
		t0 := time.Now()
		if err := raw.setup(b.ctx, id, ns); err != nil {
			return 0, err
		}
		t1 := time.Now()
		if err := raw.remove(b.ctx, id, ns); err != nil {
			return 0, err
		}
		t2 := time.Now()
		if i >= 0 {
			setup, remove = append(setup, t1.Sub(t0)), append(remove, t2.Sub(t1))
		}
		return t2.Sub(t0), nil
	}
	// One untimed round: the first ADD makes the bridge and the shared
	// firewall chains.
	if _, err := mgr(-1); err != nil {
		return err
	}
	if _, err := cni(-1); err != nil {
		return err
	}
	a, base, err := interleave(b.n, b.stopped, mgr, cni)
	if len(a) == 0 || len(base) == 0 {
		return err
	}
	b.report.add(
		newRow("attach", "Attach+Detach, default network, 1 port", a).againstPaired("go-cni Setup+Remove", a, base).goal(1.10).
			note("ocinet's own work %.1f ms (total less plugin time, %d plugin runs)", ms(own.median()), execs[0]).
			field("own_work_ms", ms(own.median())).field("plugin_runs", execs[0]),
		newRow("attach", "Attach", attach).againstPaired("go-cni Setup", attach, setup),
		newRow("attach", "Detach", detach).againstPaired("go-cni Remove", detach, remove))
	return err
}
