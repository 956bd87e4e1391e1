package ocinet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ocinet/ocinet/inproc"
)

// Detach runs CNI DEL for every network of the attachment, in reverse order,
// with the config and arguments recorded at ADD time; it continues past a
// failure, releases the ports and removes the record. Detaching an ID that is
// not attached does nothing. If a DEL fails, the record is kept (for GC) and
// all errors are returned joined. Teardown does not stop when ctx is
// cancelled, so a cancelled caller does not leak.
func (m *Manager) Detach(ctx context.Context, id string, opts ...DetachOption) error {
	rec, unlock, err := m.lockedRecord(id)
	if err != nil {
		return err
	}
	defer unlock()
	if rec == nil {
		return nil
	}
	var o detachOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := m.detachRecord(ctx, rec, o); err != nil {
		return fmt.Errorf("detach %s: %w", id, err)
	}
	return nil
}

// DetachOption changes how [Manager.Detach] tears an attachment down.
type DetachOption func(*detachOptions)

type detachOptions struct {
	nsEnds bool
	// release, when set, runs after every DEL succeeded and the ports were
	// released; if it fails, the record is kept (GC's).
	release func() error
}

// NamespaceEnds tells Detach that the caller removes the attachment's
// namespace as soon as Detach returns (the container has ended, as in a
// poststop hook). The native datapath then takes the host end of each veth
// down, which cuts the container off at once, and leaves the pair to the
// kernel, which removes it with the namespace, instead of deleting it
// (a synchronous delete waits about 20 ms on the kernel); addresses are
// released only once the container is cut off. The plugin binaries
// delete as always. A caller that keeps the namespace must not pass it:
// the downed interfaces would stay in it.
func NamespaceEnds() DetachOption { return func(o *detachOptions) { o.nsEnds = true } }

// detachRecord tears rec down. The caller holds the container lock.
func (m *Manager) detachRecord(ctx context.Context, rec *record, o detachOptions) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	rec.Phase = phaseDetaching
	if err := m.appendRecord(rec); err != nil {
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
		if err := m.delNetwork(ctx, rec, &rec.Networks[i], paths[i], o); err != nil {
			errs = append(errs, err)
		}
	}
	if rec.Loopback != nil {
		if err := m.delNetwork(ctx, rec, rec.Loopback, lo, o); err != nil {
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
	if o.release != nil {
		if err := o.release(); err != nil {
			return err
		}
	}
	crashPoint("detach:released")
	return m.removeRecord(rec.ID)
}

// delNetwork runs DEL for the network nr of rec, in the namespace at
// netnsPath ("" for none), with the recorded config and arguments.
func (m *Manager) delNetwork(ctx context.Context, rec *record, nr *networkRecord, netnsPath string, o detachOptions) error {
	var env []string
	if o.nsEnds {
		env = append(env, inproc.EnvNamespaceEnds+"=1")
	}
	list, err := m.delConfList(rec, nr)
	if err == nil {
		var rt *libcni.RuntimeConf
		var cni *libcni.CNIConfig
		if cni, err = m.cniFor(nr.Datapath, nil, env...); err == nil {
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
// which rules to remove after ADD failed or was cut off half way. When the
// cache holds the attachment's result (cachedResult), the conflist goes as
// recorded: the library's prevResult would replace the journal's anyway.
func (m *Manager) delConfList(rec *record, nr *networkRecord) (*libcni.NetworkConfigList, error) {
	list, err := parsedConfList(nr.ConfList)
	if err != nil || len(nr.Result) == 0 || m.cachedResult(list.Name, rec.ID, nr.IfName) {
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

// cachedResult says whether the CNI library's cache holds a result for
// the network, container and interface that its DEL will hand the plugins:
// a file in its version 1 format with a result. (The library reads a file
// it cannot use as no result.)
func (m *Manager) cachedResult(network, id, ifName string) bool {
	b, err := os.ReadFile(filepath.Join(m.cacheDir, "results", network+"-"+id+"-"+ifName))
	if err != nil {
		return false
	}
	var c struct {
		Kind   string          `json:"kind"`
		Result json.RawMessage `json:"result"`
	}
	if json.Unmarshal(b, &c) != nil || c.Kind != libcni.CNICacheV1 {
		return false
	}
	var res map[string]json.RawMessage
	return json.Unmarshal(c.Result, &res) == nil && len(res) > 0
}
