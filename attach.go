package ocinet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ocinet/ocinet/netns"
	"github.com/ocinet/ocinet/portmap"
)

// AttachRequest says what to attach. Its zero value is not valid: ID and
// NetNS are required.
type AttachRequest struct {
	// ID identifies the attachment; it is the CNI container ID. Letters,
	// digits, '.', '_' and '-', at most 128 characters.
	ID string
	// Name is a human name used in error messages and port conflicts
	// (default: ID).
	Name string
	// NetNS is the path of the container's network namespace.
	NetNS string
	// Networks are the networks to attach, in order: the first becomes
	// eth0, the next eth1 and so on (default: the default network).
	Networks []string
	// Ports are the ports to publish. They are published through the first
	// network whose chain has the portmap plugin.
	Ports []portmap.Mapping
}

// Attachment is a container's attachment as recorded in the journal.
type Attachment struct {
	ID         string
	Name       string
	NetNS      string
	Interfaces []Interface
	Ports      []portmap.Port
	// Complete is false while the attachment is being set up or torn down,
	// or was left half-done by a crash; GC finishes it.
	Complete bool
}

// Interface is one network interface of an attached container.
type Interface struct {
	Network  string
	Name     string
	MAC      string
	IPs      []netip.Prefix
	Gateways []netip.Addr
}

// cleanupTimeout bounds teardown that runs on a context detached from a
// cancelled caller.
const cleanupTimeout = 2 * time.Minute

const loopbackConf = `{"cniVersion":"1.0.0","name":"ocinet-loopback","plugins":[{"type":"loopback"}]}`

// Attach runs CNI ADD for every requested network and records the result.
// If anything fails, whatever was set up is torn down before the error
// returns. Attaching an ID that is already attached tears the old attachment
// down first, so running Attach twice is safe.
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
	if err := netns.Check(req.NetNS); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrInvalid, err))
	}
	for _, p := range req.Ports {
		if err := p.Validate(); err != nil {
			return fail(err)
		}
	}
	names := req.Networks
	if len(names) == 0 {
		names = []string{DefaultNetworkName}
	}
	seen := map[string]bool{}
	var nets []*Network
	for _, n := range names {
		if seen[n] {
			return fail(fmt.Errorf("network %q given twice: %w", n, ErrInvalid))
		}
		seen[n] = true
		net, err := m.Network(n)
		if err != nil {
			return fail(err)
		}
		nets = append(nets, net)
	}
	portsNet := -1
	if len(req.Ports) > 0 {
		for i, n := range nets {
			if hasPlugin(n, "portmap") {
				portsNet = i
				break
			}
		}
		if portsNet < 0 {
			return fail(fmt.Errorf("publishing ports needs a network with the portmap plugin: %w", ErrInvalid))
		}
	}
	loop, err := libcni.ConfListFromBytes([]byte(loopbackConf))
	if err != nil {
		return fail(err)
	}
	// Every plugin binary must be there before anything is changed.
	for _, n := range append([]*Network{{Name: loop.Name, Plugins: []string{"loopback"}}}, nets...) {
		for _, p := range n.Plugins {
			if _, err := invoke.FindInPath(p, m.pluginDirs); err != nil {
				return fail(&PluginNotFoundError{Network: n.Name, Plugin: p, Dirs: m.pluginDirs})
			}
		}
	}

	gc, err := m.lock("gc", true)
	if err != nil {
		return fail(err)
	}
	defer gc.Unlock()
	cl, err := m.lock("container-"+req.ID, false)
	if err != nil {
		return fail(err)
	}
	defer cl.Unlock()

	if old, err := m.readRecord(req.ID); err != nil {
		return fail(err)
	} else if old != nil {
		m.log.Info("attach: tearing down the previous attachment first", "id", req.ID, "phase", old.Phase)
		if err := m.detachRecord(ctx, old); err != nil {
			return fail(fmt.Errorf("tear down previous attachment: %w", err))
		}
	}

	ports, err := m.ports.Reserve(req.ID, name, req.Ports)
	if err != nil {
		return fail(err)
	}
	rec := &record{
		Version: journalVersion,
		ID:      req.ID,
		Name:    req.Name,
		Phase:   phaseAdding,
		NetNS:   req.NetNS,
		Created: time.Now().UTC(),
		Ports:   ports,
	}
	rec.Networks = append(rec.Networks, networkRecord{Name: loop.Name, IfName: "lo", ConfList: json.RawMessage(loopbackConf)})
	for i, n := range nets {
		rec.Networks = append(rec.Networks, networkRecord{
			Name:     n.Name,
			IfName:   fmt.Sprintf("eth%d", i),
			ConfList: compactJSON(n.Bytes),
			Args:     [][2]string{{"IgnoreUnknown", "1"}},
			Ports:    i == portsNet,
		})
	}
	if err := m.writeRecord(rec); err != nil {
		_ = m.ports.Release(req.ID)
		return fail(err)
	}

	for i := range rec.Networks {
		nr := &rec.Networks[i]
		res, err := m.addNetwork(ctx, rec, nr)
		if err != nil {
			// Tear down everything tried so far, the failed one included:
			// a plugin may have done part of its work before failing.
			rec.Networks = rec.Networks[:i+1]
			if derr := m.detachRecord(ctx, rec); derr != nil {
				err = errors.Join(err, fmt.Errorf("rollback: %w", derr))
			}
			return fail(err)
		}
		nr.Result = res
	}
	rec.Phase = phaseAttached
	if err := m.writeRecord(rec); err != nil {
		if derr := m.detachRecord(ctx, rec); derr != nil {
			err = errors.Join(err, fmt.Errorf("rollback: %w", derr))
		}
		return fail(err)
	}
	return rec.attachment(), nil
}

// compactJSON returns b without insignificant white space (b itself if it is
// not valid JSON, which ConfListFromBytes would already have refused).
func compactJSON(b []byte) json.RawMessage {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return json.RawMessage(b)
	}
	return json.RawMessage(out.Bytes())
}

func hasPlugin(n *Network, typ string) bool {
	for _, p := range n.Plugins {
		if p == typ {
			return true
		}
	}
	return false
}

func (m *Manager) runtimeConf(rec *record, nr *networkRecord, netnsPath string) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: rec.ID,
		NetNS:       netnsPath,
		IfName:      nr.IfName,
		Args:        nr.Args,
	}
	if nr.Ports {
		rt.CapabilityArgs = map[string]any{"portMappings": rec.Ports}
	}
	return rt
}

// addNetwork runs ADD for one network and returns its result as CNI 1.0
// JSON. The first attachment to a network after boot runs alone, because
// plugins create shared bridges and firewall chains then and race each
// other doing it.
func (m *Manager) addNetwork(ctx context.Context, rec *record, nr *networkRecord) (json.RawMessage, error) {
	list, err := libcni.ConfListFromBytes(nr.ConfList)
	if err != nil {
		return nil, fmt.Errorf("network %q: %w", nr.Name, err)
	}
	marker := m.warmMarker(nr)
	_, statErr := os.Stat(marker)
	nl, err := m.lock("network-"+nr.Name, statErr == nil)
	if err != nil {
		return nil, err
	}
	defer nl.Unlock()
	res, err := m.cni.AddNetworkList(ctx, list, m.runtimeConf(rec, nr, rec.NetNS))
	if err != nil {
		return nil, fmt.Errorf("network %q: %w", nr.Name, pluginError(err))
	}
	if statErr != nil {
		if err := os.MkdirAll(filepath.Dir(marker), 0o700); err == nil {
			_ = os.WriteFile(marker, nil, 0o600)
		}
	}
	r100, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("network %q: result: %w", nr.Name, err)
	}
	b, err := json.Marshal(r100)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// warmMarker is a file under /run (gone after a reboot, like the bridges
// and chains it stands for) that says a network has had an ADD since boot.
func (m *Manager) warmMarker(nr *networkRecord) string {
	h := sha256.Sum256(append([]byte(m.root+"\x00"), nr.ConfList...))
	return filepath.Join("/run/ocinet/warm", hex.EncodeToString(h[:12]))
}

// pluginError wraps an error from the CNI library so that errors.Is(err,
// ErrPlugin) holds for plugin failures.
func pluginError(err error) error {
	var ce *cnitypes.Error
	if errors.As(err, &ce) {
		return fmt.Errorf("%w: %w", ErrPlugin, err)
	}
	return err
}

// Detach runs CNI DEL for every network of the attachment, in reverse order,
// with the config and arguments recorded at ADD time; it continues past a
// failure, releases the ports and removes the record. Detaching an ID that is
// not attached does nothing. If a DEL fails, the record is kept (for GC) and
// all errors are returned joined. Teardown does not stop when ctx is
// cancelled, so a cancelled caller does not leak.
func (m *Manager) Detach(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	gc, err := m.lock("gc", true)
	if err != nil {
		return err
	}
	defer gc.Unlock()
	cl, err := m.lock("container-"+id, false)
	if err != nil {
		return err
	}
	defer cl.Unlock()
	rec, err := m.readRecord(id)
	if err != nil || rec == nil {
		return err
	}
	if err := m.detachRecord(ctx, rec); err != nil {
		return fmt.Errorf("detach %s: %w", id, err)
	}
	return nil
}

// detachRecord tears rec down. The caller holds the container lock.
func (m *Manager) detachRecord(ctx context.Context, rec *record) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	rec.Phase = phaseDetaching
	if err := m.writeRecord(rec); err != nil {
		return err
	}
	// When the container's namespace is gone, DEL runs in a placeholder
	// (see placeholderNS), or with no namespace at all if even that cannot
	// be made, so that plugins still release addresses and rules.
	path := rec.NetNS
	if netns.Check(path) != nil {
		ph, err := placeholderNS(rec)
		if err != nil {
			m.log.Warn("detach: no placeholder namespace; running DEL without one", "id", rec.ID, "err", err)
		}
		path = ph
		if ph != "" {
			defer func() { _ = netns.Remove(ph) }()
		}
	}
	var errs []error
	for i := len(rec.Networks) - 1; i >= 0; i-- {
		nr := &rec.Networks[i]
		list, err := libcni.ConfListFromBytes(nr.ConfList)
		if err == nil {
			err = m.cni.DelNetworkList(ctx, list, m.runtimeConf(rec, nr, path))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("network %q: %w", nr.Name, pluginError(err)))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := m.ports.Release(rec.ID); err != nil {
		return err
	}
	return m.removeRecord(rec.ID)
}

// Get returns the recorded attachment of id, or an error wrapping
// ErrNotFound.
func (m *Manager) Get(id string) (*Attachment, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	rec, err := m.readRecord(id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("attachment %s: %w", id, ErrNotFound)
	}
	return rec.attachment(), nil
}

// List returns every recorded attachment, sorted by ID.
func (m *Manager) List() ([]*Attachment, error) {
	ids, err := m.journalIDs()
	if err != nil {
		return nil, err
	}
	var out []*Attachment
	for _, id := range ids {
		rec, err := m.readRecord(id)
		if err != nil {
			return nil, err
		}
		if rec != nil {
			out = append(out, rec.attachment())
		}
	}
	return out, nil
}

func (r *record) attachment() *Attachment {
	a := &Attachment{ID: r.ID, Name: r.Name, NetNS: r.NetNS, Ports: r.Ports, Complete: r.Phase == phaseAttached}
	for _, nr := range r.Networks {
		if nr.IfName == "lo" {
			continue
		}
		iface := Interface{Network: nr.Name, Name: nr.IfName}
		var res types100.Result
		if len(nr.Result) > 0 && json.Unmarshal(nr.Result, &res) == nil {
			for _, i := range res.Interfaces {
				if i.Name == nr.IfName && i.Sandbox != "" {
					iface.MAC = i.Mac
				}
			}
			for _, ip := range res.IPs {
				if p, err := netip.ParsePrefix(ip.Address.String()); err == nil {
					iface.IPs = append(iface.IPs, p)
				}
				if g, ok := netip.AddrFromSlice(ip.Gateway); ok {
					iface.Gateways = append(iface.Gateways, g.Unmap())
				}
			}
		}
		a.Interfaces = append(a.Interfaces, iface)
	}
	return a
}
