package ocinet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// Detach runs CNI DEL for every network of the attachment, in reverse order,
// with the config and arguments recorded at ADD time; it continues past a
// failure, releases the ports and removes the record. Detaching an ID that is
// not attached does nothing. If a DEL fails, the record is kept (for GC) and
// all errors are returned joined. Teardown does not stop when ctx is
// cancelled, so a cancelled caller does not leak.
func (m *Manager) Detach(ctx context.Context, id string) error {
	rec, unlock, err := m.lockedRecord(id)
	if err != nil {
		return err
	}
	defer unlock()
	if rec == nil {
		return nil
	}
	if err := m.detachRecord(ctx, rec, nil); err != nil {
		return fmt.Errorf("detach %s: %w", id, err)
	}
	return nil
}

// detachRecord tears rec down. The caller holds the container lock. release,
// when set, runs after every DEL succeeded and the ports were released; if
// it fails, the record is kept.
func (m *Manager) detachRecord(ctx context.Context, rec *record, release func() error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	rec.Phase = phaseDetaching
	if err := m.writeRecord(rec); err != nil {
		return err
	}
	crashPoint("detach:detaching")
	if err := stopProxies(rec); err != nil {
		return err
	}
	// Where the container's namespace is gone (or the path now names another
	// namespace), or an interface is missing from it, DEL runs in a
	// placeholder, so that plugins still release addresses and rules.
	ph := m.placeholderPath(rec.ID)
	lo, paths := m.delPaths(rec, ph)
	var errs []error
	for i := len(rec.Networks) - 1; i >= 0; i-- {
		if err := m.delNetwork(ctx, rec, &rec.Networks[i], paths[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if rec.Loopback != nil {
		if err := m.delNetwork(ctx, rec, rec.Loopback, lo); err != nil {
			errs = append(errs, err)
		}
	}
	// The placeholder's name is fixed per attachment, so one left by a
	// crash is found here on the next try.
	if err := m.host.RemoveNamespace(ph); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	crashPoint("detach:deleted")
	if err := m.ports.Release(rec.ID); err != nil {
		return err
	}
	if release != nil {
		if err := release(); err != nil {
			return err
		}
	}
	crashPoint("detach:released")
	return m.removeRecord(rec.ID)
}

// delNetwork runs DEL for the network nr of rec, in the namespace at
// netnsPath ("" for none), with the recorded config and arguments.
func (m *Manager) delNetwork(ctx context.Context, rec *record, nr *networkRecord, netnsPath string) error {
	list, err := delConfList(nr)
	if err == nil {
		var rt *libcni.RuntimeConf
		var cni *libcni.CNIConfig
		if cni, err = m.cniFor(nr.Datapath, nil); err == nil {
			if rt, err = m.runtimeConf(rec, nr, netnsPath); err == nil {
				err = cni.DelNetworkList(ctx, list, rt)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("network %q: %w", nr.Name, pluginError(err))
	}
	return nil
}

// delConfList returns the recorded conflist of nr for DEL. When the journal
// holds a result, every plugin's entry carries it as prevResult, the way
// CNI hands it to DEL. The CNI library sets prevResult itself from its
// cache, which then wins; but that cache is written only when a whole chain
// succeeded, and without a prevResult plugins such as firewall cannot tell
// which rules to remove after ADD failed or was cut off half way.
func delConfList(nr *networkRecord) (*libcni.NetworkConfigList, error) {
	list, err := libcni.ConfListFromBytes(nr.ConfList)
	if err != nil || len(nr.Result) == 0 {
		return list, err
	}
	if ok, _ := version.GreaterThanOrEqualTo(list.CNIVersion, "0.4.0"); !ok {
		return list, nil
	}
	var res types100.Result
	if json.Unmarshal(nr.Result, &res) != nil {
		return list, nil
	}
	prev, err := res.GetAsVersion(list.CNIVersion)
	if err != nil {
		return list, nil
	}
	prevJSON, err := json.Marshal(prev)
	if err != nil {
		return list, nil
	}
	var conf map[string]any
	if json.Unmarshal(nr.ConfList, &conf) != nil {
		return list, nil
	}
	plugins, _ := conf["plugins"].([]any)
	for _, p := range plugins {
		if pm, ok := p.(map[string]any); ok {
			if _, has := pm["prevResult"]; !has {
				pm["prevResult"] = json.RawMessage(prevJSON)
			}
		}
	}
	b, err := json.Marshal(conf)
	if err != nil {
		return list, nil
	}
	if withPrev, err := libcni.ConfListFromBytes(b); err == nil {
		return withPrev, nil
	}
	return list, nil
}
