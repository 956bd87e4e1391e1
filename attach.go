package ocinet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/ocinet/ocinet/inproc"
	"github.com/ocinet/ocinet/portmap"
)

// Attach runs CNI ADD for every requested network and records the result.
// If anything fails, whatever was set up is torn down before the error
// returns. Attaching an ID that is already attached tears the old attachment
// down first, so running Attach twice is safe.
//
// It goes plan → journal → ADD → commit: the request is checked and its
// networks resolved before anything changes (plan.go); the journal record
// is written, in phase adding, before any plugin makes anything of the
// container's that outlives its namespace (the networks' ADDs get going
// meanwhile); each network's ADD records its result; the record is
// committed in phase attached. Any failure after the first write has one
// way back: detachRecord, with what the record holds. The in-process
// loopback's ADD, which only brings lo up, starts first of all, beside the
// plan; a failure before the first write puts lo down again.
func (m *Manager) Attach(ctx context.Context, req AttachRequest) (*Attachment, error) {
	if err := validID(req.ID); err != nil {
		return nil, err
	}
	name := req.Name
	if name == "" {
		name = req.ID
	}
	fail := func(err error) (*Attachment, error) {
		return nil, fmt.Errorf("attach %s: %w", name, err)
	}
	names, opts, err := checkRequest(req, m.host.CheckNS)
	if err != nil {
		return fail(err)
	}

	unlock, err := m.lockContainer(req.ID)
	if err != nil {
		return fail(err)
	}
	defer unlock()

	old, err := m.readRecord(req.ID)
	if err != nil {
		return fail(err)
	}
	var lo *loopbackAdd
	if old == nil {
		// With a previous attachment, whose DEL may take lo down, lo
		// comes up in its turn (addAll).
		lo = m.startLoopback(ctx, req)
	}
	p, err := m.plan(req, names, opts)
	if err != nil {
		lo.abandon(ctx)
		return fail(err)
	}
	if lo != nil && lo.nr.Datapath != p.loopback {
		lo.abandon(ctx) // the host changed between the two choices
		lo = nil
	}
	if old != nil {
		m.log.Info("attach: tearing down the previous attachment first", "id", req.ID, "phase", old.Phase)
		if err := m.detachRecord(ctx, old, detachOptions{}); err != nil {
			return fail(fmt.Errorf("tear down previous attachment: %w", err))
		}
	}

	crashPoint("attach:planned")
	rec, written, err := m.journalAdding(req, p)
	if err != nil {
		lo.abandon(ctx)
		return fail(err)
	}
	if err := m.addAll(ctx, rec, p, lo, written); err != nil {
		if nr := (*noRecordError)(nil); errors.As(err, &nr) {
			return fail(nr.err)
		}
		if derr := m.detachRecord(ctx, rec, detachOptions{}); derr != nil {
			err = errors.Join(err, fmt.Errorf("rollback (the journal keeps the attachment for GC): %w", derr))
		}
		return fail(err)
	}
	crashPoint("attach:attached")
	return rec.attachment(), nil
}

// journalAdding reserves the plan's ports and starts writing the
// attachment's first record, in phase adding, durably: once written returns
// nil, a crash leaves a record that GC finishes. The write runs while the
// loopback comes up and the networks' ADDs get going (addAll's gate keeps
// them from making anything until it is done). If the write fails, written
// releases the ports again and returns the error.
func (m *Manager) journalAdding(req AttachRequest, p *attachPlan) (rec *record, written func() error, err error) {
	ports, err := m.ports.Reserve(req.ID, p.name, req.Ports)
	if err != nil {
		return nil, nil, err
	}
	crashPoint("attach:reserved")
	rec = &record{
		Version:  journalVersion,
		ID:       req.ID,
		Name:     req.Name,
		Hostname: req.Hostname,
		Labels:   req.Labels,
		Phase:    phaseAdding,
		NetNS:    req.NetNS,
		NetNSID:  m.host.NamespaceID(req.NetNS),
		Created:  time.Now().UTC(),
		Ports:    ports,
		Loopback: &networkRecord{Name: loopbackNetwork, IfName: "lo", ConfList: json.RawMessage(LoopbackConfList), Datapath: p.loopback},
		Networks: p.records,
	}
	if p.portsNet >= 0 {
		nr := &rec.Networks[p.portsNet]
		nr.CapArgs, err = mergeCapArgs(nr.CapArgs, "portMappings", portmap.PluginPorts(ports))
	}
	var b []byte
	if err == nil {
		b, err = json.Marshal(rec) // now: ADD changes rec while the write runs
	}
	release := func(err error) error {
		if rerr := m.ports.Release(req.ID); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return err
	}
	if err != nil {
		return nil, nil, release(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.writeRecordJSON(req.ID, b) }()
	written = func() error {
		if err := <-done; err != nil {
			return release(err)
		}
		return nil
	}
	return rec, written, nil
}

// noRecordError is an Attach's failure to write its first record: the
// journal has nothing to roll back.
type noRecordError struct{ err error }

func (e *noRecordError) Error() string { return e.err.Error() }
func (e *noRecordError) Unwrap() error { return e.err }

// addAll runs ADD for the loopback network (unless early has, or is
// running, it) and for each of rec's networks in turn while the first
// record is written, then starts the IPv6 loopback proxies and commits
// the record. The networks' ADDs run under a gate
// (inproc.WithGate): they make nothing of the container's until the first
// record is on disk (written) and the loopback is up, so that a crash
// leaves nothing a record does not name and no plugin binary runs on
// after one. Until then they read their configs and namespaces, and the
// in-process bridge sees to what the network shares (the bridge, its
// masquerade rules), as a network's first use does. The loopback's ADD
// does not wait (it leaves nothing that outlives the namespace). On
// failure, rec holds every network that was tried (the failed one
// included: a plugin may have done part of its work), for the caller's
// rollback; a *noRecordError needs none: nothing passed the gate.
func (m *Manager) addAll(ctx context.Context, rec *record, p *attachPlan, early *loopbackAdd, written func() error) error {
	// lo's ADD works on a copy of its record, so that a sink's journal
	// write of rec (on another network's ADD) does not read it meanwhile.
	// In process it is a few netlink requests, started with the plan
	// (early); a binary runs beside the networks' ADDs.
	lo := *rec.Loopback
	loDone := make(chan error, 1)
	switch {
	case early != nil:
		loDone = early.done
	case lo.Datapath == DatapathNative:
		loDone <- m.addNetwork(ctx, rec, &lo)
	default:
		go func() { loDone <- m.addNetwork(ctx, rec, &lo) }()
	}
	var loErr error
	// The gate is passed on this goroutine (the ADDs run on it), once.
	gate := sync.OnceValue(func() error {
		loErr = <-loDone
		if early != nil {
			lo.Result = early.nr.Result
		}
		rec.Loopback.Result = lo.Result
		if err := written(); err != nil {
			if loErr == nil {
				// lo is up in the container's namespace: put it back down.
				_ = m.delNetwork(ctx, rec, rec.Loopback, rec.NetNS, detachOptions{})
			}
			return &noRecordError{errors.Join(err, loErr)}
		}
		crashPoint("attach:adding")
		return loErr
	})
	gctx := inproc.WithGate(ctx, gate)
	tried, netErr := 0, error(nil)
	for i := range rec.Networks {
		tried = i + 1
		if netErr = m.addNetwork(gctx, rec, &rec.Networks[i]); netErr != nil {
			break
		}
	}
	if err := gate(); err != nil {
		if nr := (*noRecordError)(nil); errors.As(err, &nr) {
			return nr
		}
		rec.Networks = rec.Networks[:tried] // lo failed: they did nothing
		return err
	}
	if netErr != nil {
		rec.Networks = rec.Networks[:tried]
		return netErr
	}
	crashPoint("attach:added")
	if p.portsNet >= 0 {
		if err := m.startProxies(rec, rec.Networks[p.portsNet].Name); err != nil {
			return err
		}
	}
	rec.Phase = phaseAttached
	return m.appendRecord(rec)
}

func (m *Manager) runtimeConf(rec *record, nr *networkRecord, netnsPath string) (*libcni.RuntimeConf, error) {
	rt := &libcni.RuntimeConf{
		ContainerID: rec.ID,
		NetNS:       netnsPath,
		IfName:      nr.IfName,
		Args:        nr.Args,
	}
	if len(nr.CapArgs) > 0 {
		if err := json.Unmarshal(nr.CapArgs, &rt.CapabilityArgs); err != nil {
			return nil, fmt.Errorf("network %q: recorded capability arguments: %w", nr.Name, err)
		}
	}
	return rt, nil
}

// addNetwork runs ADD for the network nr of rec and stores its result (as
// CNI 1.0 JSON) in nr. The first attachment to a network after boot runs
// alone, because plugins create shared bridges and firewall chains then and
// race each other doing it.
func (m *Manager) addNetwork(ctx context.Context, rec *record, nr *networkRecord) error {
	if nr.Name == loopbackNetwork && nr.IfName == "lo" && nr.Datapath == DatapathNative {
		return m.addLoopback(ctx, rec, nr)
	}
	list, err := parsedConfList(nr.ConfList)
	if err != nil {
		return fmt.Errorf("network %q: %w", nr.Name, err)
	}
	rt, err := m.runtimeConf(rec, nr, rec.NetNS)
	if err != nil {
		return err
	}
	marker := m.warmMarker(nr.ConfList)
	_, statErr := os.Stat(marker)
	nl, err := m.lock("network-"+nr.Name, statErr == nil)
	if err != nil {
		return err
	}
	if statErr != nil {
		// Another attachment may have warmed the network while this one
		// waited: then the rest go on side by side.
		if _, statErr = os.Stat(marker); statErr == nil {
			nl.Unlock()
			if nl, err = m.lock("network-"+nr.Name, true); err != nil {
				return err
			}
		}
	}
	defer nl.Unlock()
	// Record the addresses as soon as a plugin reports them, so that a
	// crash in the middle of the chain leaves them known to DEL.
	sink := func(conf, out []byte) {
		if len(nr.Result) > 0 {
			return
		}
		if b := resultJSON(conf, out); b != nil {
			nr.Result = b
			if err := m.appendRecord(rec); err != nil {
				m.log.Warn("attach: could not record an intermediate result", "id", rec.ID, "err", err)
			}
		}
	}
	switch {
	case nr.Name == loopbackNetwork && nr.IfName == "lo":
		sink = nil // 127.0.0.1 is no lease: nothing for DEL to learn early
	case nr.Datapath == DatapathNative && m.dp.claimsOf(nr.ConfList).all == nil:
		// The whole chain runs in process, whose DEL finds what an ADD
		// made by the container's ID and interface (the lease, the
		// set elements, the veth), not by the result: one journal
		// write fewer.
		sink = nil
	}
	cni, err := m.cniFor(nr.Datapath, sink)
	if err != nil {
		return fmt.Errorf("network %q: %w", nr.Name, err)
	}
	// In process, the bridge adds the elements of the chain's portmap and
	// firewall beside its veth pair (inproc.WithChain), and configures the
	// container's interface while their ADDs run (inproc.WithUnfinished).
	actx, unfinished := inproc.WithUnfinished(inproc.WithChain(ctx, nr.ConfList, rt.CapabilityArgs))
	res, err := cni.AddNetworkList(actx, list, rt)
	if uerr := unfinished.Wait(); uerr != nil && !errors.Is(err, uerr) {
		err = errors.Join(err, uerr)
	}
	if err != nil {
		return fmt.Errorf("network %q: %w", nr.Name, pluginError(err))
	}
	if statErr != nil {
		if err := os.MkdirAll(filepath.Dir(marker), 0o700); err == nil {
			_ = os.WriteFile(marker, nil, 0o600)
		}
	}
	r100, err := types100.NewResultFromResult(res)
	if err != nil {
		return fmt.Errorf("network %q: result: %w", nr.Name, err)
	}
	b, err := json.Marshal(r100)
	if err != nil {
		return err
	}
	nr.Result = b
	return nil
}

// loopbackAdd is the in-process loopback's ADD, started as an Attach
// begins (startLoopback): it changes nothing but lo's state in the
// container's namespace, which ends with it, so it need not wait for the
// plan or the journal.
type loopbackAdd struct {
	m      *Manager
	id, ns string
	done   chan error
	nr     networkRecord // Result is set once done has a value
}

// startLoopback starts the loopback network's ADD for req when it runs in
// process; otherwise it returns nil and addAll runs it.
func (m *Manager) startLoopback(ctx context.Context, req AttachRequest) *loopbackAdd {
	dp, _, err := m.findPlugins(&Network{Name: loopbackNetwork, Bytes: []byte(LoopbackConfList), Plugins: []string{"loopback"}})
	if err != nil || dp != DatapathNative {
		return nil // the plan says why, or the binary runs later
	}
	a := &loopbackAdd{m: m, id: req.ID, ns: req.NetNS, done: make(chan error, 1),
		nr: networkRecord{Name: loopbackNetwork, IfName: "lo", ConfList: json.RawMessage(LoopbackConfList), Datapath: dp}}
	go func() { a.done <- m.addLoopback(ctx, &record{ID: a.id, NetNS: a.ns}, &a.nr) }()
	return a
}

// abandon waits for a's ADD and puts lo down again if it came up: the
// attach failed before it had a record. A nil a does nothing.
func (a *loopbackAdd) abandon(ctx context.Context) {
	if a == nil {
		return
	}
	if err := <-a.done; err == nil {
		_ = a.m.delNetwork(ctx, &record{ID: a.id, NetNS: a.ns}, &a.nr, a.ns, detachOptions{})
	}
}

// loopbackPluginConf is the loopback plugin's config in LoopbackConfList,
// as the CNI library hands it to the plugin.
const loopbackPluginConf = `{"cniVersion":"1.0.0","name":"` + loopbackNetwork + `","type":"loopback"}`

// addLoopback runs the in-process loopback's ADD through the CNI
// library's invoke package but not its chain runner: lo is this package's
// own network and shares nothing with another attachment's (no network
// lock, no warm marker), and no cache entry is written for it (its DEL and
// CHECK need none, and GC looks in the cache for other runtimes' only).
// That is a file made and removed per container fewer.
func (m *Manager) addLoopback(ctx context.Context, rec *record, nr *networkRecord) error {
	x, err := m.dp.exec(DatapathNative)
	if err != nil {
		return fmt.Errorf("network %q: %w", nr.Name, err)
	}
	path, err := x.FindInPath("loopback", m.pluginDirs)
	if err != nil {
		return fmt.Errorf("network %q: %w", nr.Name, err)
	}
	args := &invoke.Args{Command: "ADD", ContainerID: rec.ID, NetNS: rec.NetNS, IfName: nr.IfName, Path: strings.Join(m.pluginDirs, string(os.PathListSeparator))}
	res, err := invoke.ExecPluginWithResult(ctx, path, []byte(loopbackPluginConf), args, &pluginExec{Exec: x})
	if err != nil {
		return fmt.Errorf("network %q: %w", nr.Name, pluginError(err))
	}
	r100, err := types100.NewResultFromResult(res)
	if err != nil {
		return fmt.Errorf("network %q: result: %w", nr.Name, err)
	}
	if nr.Result, err = json.Marshal(r100); err != nil {
		return err
	}
	return nil
}

// resultJSON converts a plugin's ADD output to CNI 1.0 JSON, or returns nil
// when it names no address.
func resultJSON(conf, out []byte) json.RawMessage {
	ver, err := (&version.ConfigDecoder{}).Decode(conf)
	if err != nil {
		return nil
	}
	res, err := version.NewResult(ver, out)
	if err != nil {
		return nil
	}
	r100, err := types100.NewResultFromResult(res)
	if err != nil || len(r100.IPs) == 0 {
		return nil
	}
	b, err := json.Marshal(r100)
	if err != nil {
		return nil
	}
	return b
}

// warmMarker is a file under the runtime dir (gone after a reboot, like the
// bridges and chains it stands for) that says a network has had an ADD
// since boot. It is named by the conflist alone, not the state root: the
// bridge and chains are the host's, whichever Manager made them, and one
// marker per network config keeps the directory from growing with every
// throwaway state root.
func (m *Manager) warmMarker(conf []byte) string {
	h := sha256.Sum256(conf)
	return filepath.Join(m.runtimeDir, "warm", hex.EncodeToString(h[:12]))
}

// pluginError wraps an error from the CNI library so that errors.Is(err,
// ErrPlugin) holds for plugin failures.
func pluginError(err error) error {
	var ce *cnitypes.Error
	if errors.As(err, &ce) {
		return fmt.Errorf("%w: %w", err, ErrPlugin)
	}
	return err
}
