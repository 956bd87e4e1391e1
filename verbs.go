package ocinet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// Check runs CNI CHECK for every network of the attachment id, with the
// recorded config and arguments: nil when the plugins find the container's
// network as they set it up. It returns an error wrapping ErrNotFound when
// id is not attached, ErrIncomplete when the attachment is half done, and
// ErrPlugin when a plugin reports a difference. Networks whose CNI version
// has no CHECK (before 0.4.0) or that disable it are skipped.
func (m *Manager) Check(ctx context.Context, id string) error {
	rec, unlock, err := m.lockedRecord(id)
	if err != nil {
		return err
	}
	defer unlock()
	switch {
	case rec == nil:
		return fmt.Errorf("check %s: %w", id, ErrNotFound)
	case rec.Phase != phaseAttached:
		return fmt.Errorf("check %s: phase %q: %w", id, rec.Phase, ErrIncomplete)
	}
	if nsID := m.host.NamespaceID(rec.NetNS); nsID == "" || (rec.NetNSID != "" && nsID != rec.NetNSID) {
		return fmt.Errorf("check %s: namespace %s is gone: %w", id, rec.NetNS, ErrIncomplete)
	}
	var errs []error
	for _, nr := range rec.chain() {
		list, err := parsedConfList(nr.ConfList)
		if err == nil {
			var rt *libcni.RuntimeConf
			var cni *libcni.CNIConfig
			if cni, err = m.cniFor(nr.Datapath, nil); err == nil {
				if rt, err = m.runtimeConf(rec, nr, rec.NetNS); err == nil {
					err = cni.CheckNetworkList(ctx, list, rt)
				}
			}
		}
		if err != nil && !errors.Is(err, libcni.ErrorCheckNotSupp) {
			errs = append(errs, fmt.Errorf("network %q: %w", nr.Name, pluginError(err)))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("check %s: %w", id, errors.Join(errs...))
	}
	return nil
}

// Status runs CNI STATUS for the network called name: nil when every plugin
// of its chain is ready to attach containers, or when its CNI version has
// no STATUS (before 1.1.0). It returns an error wrapping ErrNotFound for an
// unknown network (the default network is not made by asking),
// ErrPluginNotFound for a missing plugin, and ErrPlugin for a plugin that
// is not ready.
func (m *Manager) Status(ctx context.Context, name string) error {
	n, err := m.lookup(name)
	if err != nil {
		return err
	}
	if n == nil {
		return fmt.Errorf("status of network %q: %w in %s", name, ErrNotFound, m.confDir)
	}
	for _, p := range n.Plugins {
		if _, err := m.exec.FindInPath(p, m.pluginDirs); err != nil {
			return fmt.Errorf("status: %w", &PluginNotFoundError{Network: n.Name, Plugin: p, Dirs: m.pluginDirs})
		}
	}
	list, err := libcni.ConfListFromBytes(n.Bytes)
	if err != nil {
		return fmt.Errorf("status of network %q: %w", name, err)
	}
	dp, _, err := m.dp.choose(n.Name, n.Bytes)
	if err != nil {
		return fmt.Errorf("status of network %q: %w", name, err)
	}
	cni, err := m.cniFor(dp, nil)
	if err != nil {
		return fmt.Errorf("status of network %q: %w", name, err)
	}
	if err := cni.GetStatusNetworkList(ctx, list); err != nil {
		return fmt.Errorf("status of network %q: %w", name, pluginError(err))
	}
	return nil
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
	a := &Attachment{ID: r.ID, Name: r.Name, Hostname: r.Hostname, NetNS: r.NetNS, Labels: r.Labels, Ports: r.Ports, Created: r.Created, Complete: r.Phase == phaseAttached}
	for _, nr := range r.Networks {
		iface := Interface{Network: nr.Name, Name: nr.IfName, Datapath: nr.Datapath, DatapathReason: nr.DatapathReason}
		if iface.Datapath == "" {
			iface.Datapath = DatapathPlugins
		}
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
