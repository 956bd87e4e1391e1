package ocinet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/containernetworking/cni/libcni"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

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
	// Hostname is given to the plugins as the CNI_ARGS key
	// NERDCTL_CNI_DHCP_HOSTNAME, which DHCP networks that nerdctl made send
	// to the DHCP server (default: none).
	Hostname string
	// NetNS is the path of the container's network namespace.
	NetNS string
	// Networks are the networks to attach, in order: the first becomes
	// eth0, the next eth1 and so on (default: the default network).
	Networks []string
	// PerNetwork holds settings for some of the networks, each naming its
	// network (default: none; every network chooses an address and a MAC).
	PerNetwork []NetworkOptions
	// Ports are the ports to publish. They are published through the first
	// network whose chain has the portmap plugin.
	Ports []portmap.Mapping
	// Labels are recorded with the attachment and returned with it: the
	// caller's own keys, such as the container and namespace the
	// attachment belongs to (default: none). At most 32, keys and values
	// at most 256 bytes each.
	Labels map[string]string
}

// NetworkOptions are the settings of one network of an attachment.
type NetworkOptions struct {
	// Network is the network's name: one of AttachRequest.Networks, or the
	// default network when Networks is empty.
	Network string
	// IPs are static addresses, at most one per family, inside the
	// network's subnets (default: the network's IPAM chooses). One address
	// goes to the plugins as CNI_ARGS IP=; when the network's config
	// declares the "ips" capability (dual-stack networks made by
	// CreateNetwork do), they go through it instead.
	IPs []netip.Addr
	// MAC is the MAC address of the container's interface, given as
	// CNI_ARGS MAC= (default: the plugin chooses). Only bridge and macvlan
	// networks honour it.
	MAC net.HardwareAddr
}

// Attachment is a container's attachment as recorded in the journal.
type Attachment struct {
	ID       string
	Name     string
	Hostname string
	NetNS    string
	// Labels are the request's labels.
	Labels map[string]string
	// Interfaces are the container's interfaces, in the order of the
	// request's networks (eth0 first).
	Interfaces []Interface
	Ports      []portmap.Port
	Created    time.Time
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

// hostnameArg is the CNI_ARGS key that carries the hostname, as nerdctl
// passes it.
const hostnameArg = "NERDCTL_CNI_DHCP_HOSTNAME"

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
	names, opts, err := checkRequest(req, m.checkNS)
	if err != nil {
		return fail(err)
	}

	unlock, err := m.lockContainer(req.ID)
	if err != nil {
		return fail(err)
	}
	defer unlock()

	// Networks are looked up under the GC lock, which RemoveNetwork takes
	// exclusively: none of them can disappear before the journal names it.
	var nets []*Network
	for _, n := range names {
		net, err := m.Network(n)
		if err != nil {
			return fail(err)
		}
		nets = append(nets, net)
	}
	portsNet := -1
	if len(req.Ports) > 0 {
		for i, n := range nets {
			if slices.Contains(n.Plugins, "portmap") {
				portsNet = i
				break
			}
		}
		if portsNet < 0 {
			return fail(fmt.Errorf("publishing ports needs a network with the portmap plugin: %w", ErrInvalid))
		}
	}
	// Every plugin binary must be there before anything is changed.
	for _, n := range append([]*Network{{Name: "ocinet-loopback", Plugins: []string{"loopback"}}}, nets...) {
		for _, p := range n.Plugins {
			if _, err := m.exec.FindInPath(p, m.pluginDirs); err != nil {
				return fail(&PluginNotFoundError{Network: n.Name, Plugin: p, Dirs: m.pluginDirs})
			}
		}
	}
	for i, n := range nets {
		if err := checkStatic(n, opts[i]); err != nil {
			return fail(err)
		}
	}

	old, err := m.readRecord(req.ID)
	if err != nil {
		return fail(err)
	}
	if err := m.checkStaticFree(req.ID, nets, opts); err != nil {
		return fail(err)
	}
	if old != nil {
		m.log.Info("attach: tearing down the previous attachment first", "id", req.ID, "phase", old.Phase)
		if err := m.detachRecord(ctx, old, nil); err != nil {
			return fail(fmt.Errorf("tear down previous attachment: %w", err))
		}
	}

	ports, err := m.ports.Reserve(req.ID, name, req.Ports)
	if err != nil {
		return fail(err)
	}
	crashPoint("attach:reserved")
	rec := &record{
		Version:  journalVersion,
		ID:       req.ID,
		Name:     req.Name,
		Hostname: req.Hostname,
		Labels:   req.Labels,
		Phase:    phaseAdding,
		NetNS:    req.NetNS,
		Created:  time.Now().UTC(),
		Ports:    ports,
	}
	rec.NetNSID = namespaceID(req.NetNS)
	rec.Networks = append(rec.Networks, networkRecord{Name: "ocinet-loopback", IfName: "lo", ConfList: json.RawMessage(loopbackConf)})
	for i, n := range nets {
		nr, err := newNetworkRecord(n, fmt.Sprintf("eth%d", i), req.Hostname, opts[i])
		if err != nil {
			_ = m.ports.Release(req.ID)
			return fail(err)
		}
		if i == portsNet {
			if nr.CapArgs, err = mergeCapArgs(nr.CapArgs, "portMappings", pluginPorts(ports)); err != nil {
				_ = m.ports.Release(req.ID)
				return fail(err)
			}
		}
		rec.Networks = append(rec.Networks, nr)
	}
	if err := m.writeRecord(rec); err != nil {
		_ = m.ports.Release(req.ID)
		return fail(err)
	}
	crashPoint("attach:adding")

	for i := range rec.Networks {
		if err := m.addNetwork(ctx, rec, i); err != nil {
			// Tear down everything tried so far, the failed one included:
			// a plugin may have done part of its work before failing.
			rec.Networks = rec.Networks[:i+1]
			if derr := m.detachRecord(ctx, rec, nil); derr != nil {
				err = errors.Join(err, fmt.Errorf("rollback (the journal keeps the attachment for GC): %w", derr))
			}
			return fail(err)
		}
	}
	crashPoint("attach:added")
	if portsNet >= 0 {
		if err := m.startProxies(rec, portsNet); err != nil {
			if derr := m.detachRecord(ctx, rec, nil); derr != nil {
				err = errors.Join(err, fmt.Errorf("rollback (the journal keeps the attachment for GC): %w", derr))
			}
			return fail(err)
		}
	}
	rec.Phase = phaseAttached
	if err := m.writeRecord(rec); err != nil {
		if derr := m.detachRecord(ctx, rec, nil); derr != nil {
			err = errors.Join(err, fmt.Errorf("rollback (the journal keeps the attachment for GC): %w", derr))
		}
		return fail(err)
	}
	crashPoint("attach:attached")
	return rec.attachment(), nil
}

// checkRequest validates what can be checked without looking at the host's
// networks (checkNS checks the namespace path): it returns the network names
// and each one's options.
func checkRequest(req AttachRequest, checkNS func(string) error) ([]string, []NetworkOptions, error) {
	if err := validLabels(req.Labels); err != nil {
		return nil, nil, err
	}
	if req.Hostname != "" {
		if err := validHostname(req.Hostname); err != nil {
			return nil, nil, err
		}
	}
	if err := checkNS(req.NetNS); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", err, ErrInvalid)
	}
	for _, p := range req.Ports {
		if err := p.Validate(); err != nil {
			return nil, nil, err
		}
		// On IPv6 loopback a proxy relays (see proxy.go): tcp only.
		if p.HostIP.Is6() && p.HostIP.IsLoopback() && p.Protocol != "" && p.Protocol != "tcp" {
			return nil, nil, fmt.Errorf("publish %s: on IPv6 loopback only tcp can be published: %w", p, ErrInvalid)
		}
	}
	names := req.Networks
	if len(names) == 0 {
		names = []string{DefaultNetworkName}
	}
	opts := make([]NetworkOptions, len(names))
	for i, n := range names {
		if err := validNetworkName(n); err != nil {
			return nil, nil, err
		}
		if slices.Index(names, n) != i {
			return nil, nil, fmt.Errorf("network %q given twice: %w", n, ErrInvalid)
		}
	}
	given := map[string]bool{}
	for _, o := range req.PerNetwork {
		i := slices.Index(names, o.Network)
		if i < 0 {
			return nil, nil, fmt.Errorf("settings for network %q, which is not among the networks to attach: %w", o.Network, ErrInvalid)
		}
		if given[o.Network] {
			return nil, nil, fmt.Errorf("settings for network %q given twice: %w", o.Network, ErrInvalid)
		}
		given[o.Network] = true
		if err := checkOptions(o); err != nil {
			return nil, nil, err
		}
		opts[i] = o
	}
	return names, opts, nil
}

func checkOptions(o NetworkOptions) error {
	v4, v6 := 0, 0
	for _, a := range o.IPs {
		switch {
		case !a.IsValid() || a.Zone() != "":
			return fmt.Errorf("network %q: static address %q: %w", o.Network, a, ErrInvalid)
		case a.Is4() || a.Is4In6():
			v4++
		default:
			v6++
		}
		if a.Is4In6() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.IsLinkLocalUnicast() {
			return fmt.Errorf("network %q: static address %s: not a unicast host address: %w", o.Network, a, ErrInvalid)
		}
	}
	if v4 > 1 || v6 > 1 {
		return fmt.Errorf("network %q: at most one static address per family: %w", o.Network, ErrInvalid)
	}
	if o.MAC != nil {
		if len(o.MAC) != 6 || o.MAC[0]&1 != 0 || bytes.Equal(o.MAC, make([]byte, 6)) {
			return fmt.Errorf("network %q: MAC %s: not a unicast Ethernet address: %w", o.Network, o.MAC, ErrInvalid)
		}
	}
	return nil
}

// checkStatic checks a network's static settings against its config.
func checkStatic(n *Network, o NetworkOptions) error {
	if len(o.IPs) > 1 && !n.caps["ips"] {
		return fmt.Errorf("network %q: two static addresses need the \"ips\" capability, which its config does not declare: %w", n.Name, ErrInvalid)
	}
	for _, a := range o.IPs {
		if len(n.Subnets) == 0 {
			continue // an IPAM we cannot read: the plugin decides
		}
		in := false
		for _, s := range n.Subnets {
			in = in || s.Contains(a)
		}
		if !in {
			return fmt.Errorf("network %q: static address %s is outside its subnets %v: %w", n.Name, a, n.Subnets, ErrInvalid)
		}
		if slices.Contains(n.Gateways, a) {
			return fmt.Errorf("network %q: static address %s is the gateway: %w", n.Name, a, ErrInvalid)
		}
	}
	if o.MAC != nil && (len(n.Plugins) == 0 || (n.Plugins[0] != "bridge" && n.Plugins[0] != "macvlan")) {
		return fmt.Errorf("network %q: a static MAC needs a bridge or macvlan network: %w", n.Name, ErrInvalid)
	}
	return nil
}

// checkStaticFree refuses static addresses that another recorded
// attachment holds on the same network.
func (m *Manager) checkStaticFree(id string, nets []*Network, opts []NetworkOptions) error {
	want := map[string][]netip.Addr{}
	for i, n := range nets {
		if len(opts[i].IPs) > 0 {
			want[n.Name] = opts[i].IPs
		}
	}
	if len(want) == 0 {
		return nil
	}
	others, err := m.List()
	if err != nil {
		return err
	}
	for _, a := range others {
		if a.ID == id {
			continue
		}
		for _, iface := range a.Interfaces {
			for _, p := range iface.IPs {
				if slices.Contains(want[iface.Network], p.Addr()) {
					owner := a.Name
					if owner == "" {
						owner = a.ID
					}
					return fmt.Errorf("network %q: static address %s is in use by %s: %w", iface.Network, p.Addr(), owner, ErrConflict)
				}
			}
		}
	}
	return nil
}

// newNetworkRecord prepares the journal entry of one network: its exact
// config and the CNI_ARGS and capability arguments its ADD and DEL get.
func newNetworkRecord(n *Network, ifName, hostname string, o NetworkOptions) (networkRecord, error) {
	nr := networkRecord{Name: n.Name, IfName: ifName, ConfList: compactJSON(n.Bytes)}
	nr.Args = [][2]string{{"IgnoreUnknown", "1"}}
	if len(o.IPs) > 0 {
		if n.caps["ips"] {
			var ips []string
			for _, a := range o.IPs {
				ips = append(ips, a.String())
			}
			var err error
			if nr.CapArgs, err = mergeCapArgs(nr.CapArgs, "ips", ips); err != nil {
				return nr, err
			}
		} else {
			nr.Args = append(nr.Args, [2]string{"IP", o.IPs[0].String()})
		}
	}
	if o.MAC != nil {
		nr.Args = append(nr.Args, [2]string{"MAC", o.MAC.String()})
	}
	if hostname != "" {
		nr.Args = append(nr.Args, [2]string{hostnameArg, hostname})
	}
	return nr, nil
}

// mergeCapArgs adds key=value to the capability arguments caps (JSON).
func mergeCapArgs(caps json.RawMessage, key string, value any) (json.RawMessage, error) {
	m := map[string]any{}
	if len(caps) > 0 {
		if err := json.Unmarshal(caps, &m); err != nil {
			return nil, err
		}
	}
	m[key] = value
	return json.Marshal(m)
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

// addNetwork runs ADD for network i of rec and stores its result (as CNI
// 1.0 JSON) in rec. The first attachment to a network after boot runs
// alone, because plugins create shared bridges and firewall chains then and
// race each other doing it.
func (m *Manager) addNetwork(ctx context.Context, rec *record, i int) error {
	nr := &rec.Networks[i]
	list, err := libcni.ConfListFromBytes(nr.ConfList)
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
			if err := m.writeRecord(rec); err != nil {
				m.log.Warn("attach: could not record an intermediate result", "id", rec.ID, "err", err)
			}
		}
	}
	res, err := m.cni.AddNetworkList(withResultSink(ctx, sink), list, rt)
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
	paths := m.delPaths(ctx, rec, ph)
	var errs []error
	for i := len(rec.Networks) - 1; i >= 0; i-- {
		nr := &rec.Networks[i]
		list, err := delConfList(nr)
		if err == nil {
			var rt *libcni.RuntimeConf
			if rt, err = m.runtimeConf(rec, nr, paths[i]); err == nil {
				err = m.cni.DelNetworkList(ctx, list, rt)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("network %q: %w", nr.Name, pluginError(err)))
		}
	}
	// The placeholder's name is fixed per attachment, so one left by a
	// crash is found here on the next try.
	if m.realNS {
		if err := netns.Remove(ph); err != nil {
			errs = append(errs, err)
		}
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
