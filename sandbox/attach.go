package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/dns"
	"github.com/ocinet/ocinet/hosts"
	"github.com/ocinet/ocinet/internal/host"
	"github.com/ocinet/ocinet/internal/ident"
	"github.com/ocinet/ocinet/netns"
)

// Attach connects a container whose network namespace is at netnsPath: CNI
// ADD through the Manager, then its hosts record, /etc/hosts and
// /etc/resolv.conf. It is the work of every mode: a namespace the program
// created before the container (as containerd's CRI plugin does), a task's
// /proc/<pid>/ns/net while the task is still in the created state, or the
// OCI hook's pin ([AttachPinned]). If any step fails, the earlier ones are
// undone.
//
// In [ModeNone] only the namespace's loopback is set up; in [ModeHost]
// netnsPath must be "" (the container is on the host's network). In both,
// nothing is attached: the Attachment returned has no interfaces, and the
// Manager records none; the hosts record and files are written as in every
// mode, and [Detach] removes the record.
func Attach(ctx context.Context, cfg Config, containerID, netnsPath string, r Request) (*ocinet.Attachment, error) {
	if err := ident.ContainerID(containerID); err != nil {
		return nil, fmt.Errorf("attach: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("attach %s: %w", containerID, err)
	}
	w, err := newWorker(cfg)
	if err != nil {
		return nil, err
	}
	return w.attach(ctx, containerID, netnsPath, r)
}

// Detach undoes [Attach]: the hosts record, then CNI DEL with the recorded
// config. The namespace itself is the caller's to remove. Detaching a
// container that is not attached does nothing.
func Detach(ctx context.Context, cfg Config, containerID string) error {
	return detach(ctx, cfg, containerID)
}

func detach(ctx context.Context, cfg Config, containerID string, opts ...ocinet.DetachOption) error {
	if err := ident.ContainerID(containerID); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	w, err := newWorker(cfg)
	if err != nil {
		return err
	}
	return w.detach(ctx, containerID, opts...)
}

// AttachPinned pins the network namespace of process pid (the container's
// init, in the created state) at [Config.PinPath], so that DEL can still
// run in it after the process is gone, and attaches the pin. A pin left by
// an earlier run of the same container (no poststop after a restart) is
// detached and replaced. If attaching fails, the pin is removed. It is what
// the OCI hook does at createRuntime.
//
// In [ModeNone] and [ModeHost] nothing needs a pin and none is made (a
// stale one is removed); in ModeHost, the process must be on the host's
// network, which a spec made with the request's mode (spec.WithNetworkMode)
// gives.
func AttachPinned(ctx context.Context, cfg Config, containerID string, pid int, r Request) (*ocinet.Attachment, error) {
	if err := ident.ContainerID(containerID); err != nil {
		return nil, fmt.Errorf("attach: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("attach %s: %w", containerID, err)
	}
	if pid <= 0 {
		return nil, fmt.Errorf("attach %s: pid %d: %w", containerID, pid, ErrInvalid)
	}
	w, err := newWorker(cfg)
	if err != nil {
		return nil, err
	}
	pin := w.cfg.PinPath(containerID)
	if r.Mode != ModeNetworks {
		return w.attachPinnedLocal(ctx, containerID, pid, pin, r)
	}
	path, err := netns.Pin(w.cfg.NetNSDir, filepath.Base(pin), pid)
	if errors.Is(err, netns.ErrExists) {
		w.log.Info("replacing a stale pin", "path", pin)
		if derr := w.detach(ctx, containerID); derr != nil {
			return nil, derr
		}
		if rerr := netns.Remove(pin); rerr != nil {
			return nil, rerr
		}
		path, err = netns.Pin(w.cfg.NetNSDir, filepath.Base(pin), pid)
	}
	if err != nil {
		return nil, err
	}
	att, err := w.attach(ctx, containerID, path, r)
	if err != nil {
		_ = netns.Remove(path)
		return nil, err
	}
	return att, nil
}

// DetachPinned undoes [AttachPinned]: [Detach], then the pin is removed.
// It is for a container that has ended (a poststop hook): the pin is the
// namespace's last reference, so the detach tells the Manager that the
// namespace ends ([ocinet.NamespaceEnds]) and the kernel removes the
// container's interfaces with it. When the detach fails, the pin stays with
// the journal's record, so that DEL can still run in the namespace when GC
// tries again.
func DetachPinned(ctx context.Context, cfg Config, containerID string) error {
	if err := detach(ctx, cfg, containerID, ocinet.NamespaceEnds()); err != nil {
		return err
	}
	return netns.Remove(cfg.PinPath(containerID))
}

// worker holds what attaching and detaching need.
type worker struct {
	cfg   Config
	mgr   *ocinet.Manager
	store *hosts.Store
	log   *slog.Logger
}

// newWorker opens the Manager and hosts store of cfg.
func newWorker(cfg Config) (*worker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mgr, err := cfg.Manager()
	if err != nil {
		return nil, err
	}
	store, err := cfg.HostsStore()
	if err != nil {
		return nil, err
	}
	return &worker{cfg: cfg, mgr: mgr, store: store, log: log}, nil
}

func (w *worker) attach(ctx context.Context, containerID, netnsPath string, r Request) (att *ocinet.Attachment, err error) {
	if r.Mode != ModeNetworks {
		return w.attachLocal(ctx, containerID, netnsPath, r)
	}
	id := w.cfg.AttachmentID(containerID)
	// The responders the networks need start while the container is
	// attached (a responder binds its gateway address before the bridge
	// has it); dns.Attach below finds them running. A failed attach
	// releases what nobody else uses.
	nets := r.Networks
	if len(nets) == 0 {
		nets = []string{ocinet.DefaultNetworkName}
	}
	prestarted := make(chan struct{})
	go func() {
		defer close(prestarted)
		dns.Prestart(ctx, w.cfg.StateDir, w.mgr, nets, w.cfg.dnsLinger())
	}()
	defer func() {
		<-prestarted
		if err != nil {
			_ = dns.Release(w.cfg.StateDir)
		}
	}()
	name := r.Name
	if name == "" {
		name = containerID
	}
	att, err = w.mgr.Attach(ctx, ocinet.AttachRequest{
		ID: id, Name: name, Hostname: r.Hostname, NetNS: netnsPath, Networks: r.Networks, Ports: r.Ports,
		PerNetwork: r.perNetwork(),
		Labels:     map[string]string{LabelNamespace: w.cfg.Namespace, LabelContainer: containerID},
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if derr := w.mgr.Detach(ctx, id); derr != nil {
				w.log.Error("rollback detach failed", "err", derr)
			}
		}
	}()
	rec := hosts.Record{ID: containerID, Name: r.Name, Hostname: r.Hostname, ExtraHosts: r.ExtraHosts, Aliases: r.Aliases}
	ipv6 := false
	for _, iface := range att.Interfaces {
		n := hosts.Network{Name: iface.Network}
		for _, p := range iface.IPs {
			n.IPs = append(n.IPs, p.Addr())
			ipv6 = ipv6 || p.Addr().Is6()
		}
		if len(iface.Gateways) > 0 {
			n.Gateway = iface.Gateways[0]
		}
		rec.Networks = append(rec.Networks, n)
	}
	// Which of the container's networks have their peers by DNS only.
	if err := dns.Mark(w.mgr, &rec); err != nil {
		return nil, err
	}
	undoFiles, err := w.prepareFiles(containerID)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			undoFiles()
			_ = dns.Release(w.cfg.StateDir)
		}
	}()
	if err := w.store.Join(rec); err != nil {
		return nil, err
	}
	// The responders of the container's networks (started on the first
	// attach to each); first names the gateway addresses resolv.conf
	// lists first.
	<-prestarted
	first, err := dns.Attach(ctx, w.cfg.StateDir, w.mgr, rec, w.cfg.dnsLinger(), w.log)
	if err != nil {
		return nil, err
	}
	if err := w.store.WriteResolvConf(containerID, hosts.ResolvOptions{IPv6: ipv6, DNS: r.DNS, First: first}); err != nil {
		return nil, err
	}
	w.log.Info("attached", "netns", netnsPath, "interfaces", ifaceSummary(att.Interfaces), "ports", len(att.Ports))
	return att, nil
}

// attachPinnedLocal is AttachPinned in the modes without a network of the
// container's own: no pin (a stale one, of an earlier run on networks, is
// detached and removed), the process's namespace checked against the mode.
func (w *worker) attachPinnedLocal(ctx context.Context, containerID string, pid int, pin string, r Request) (*ocinet.Attachment, error) {
	if !netns.Closed(pin) {
		if err := w.detach(ctx, containerID); err != nil {
			return nil, err
		}
		if err := netns.Remove(pin); err != nil {
			return nil, err
		}
	}
	path := "/proc/" + strconv.Itoa(pid) + "/ns/net"
	if r.Mode == ModeHost {
		err := netns.Check(path)
		switch {
		case err == nil:
			return nil, fmt.Errorf("attach %s: network mode host, but process %d has a network namespace of its own: the container's spec must leave the network namespace out (spec.WithNetworkMode): %w", containerID, pid, ErrInvalid)
		case !errors.Is(err, netns.ErrHostNamespace):
			return nil, fmt.Errorf("attach %s: %w", containerID, err)
		}
		path = ""
	}
	return w.attachLocal(ctx, containerID, path, r)
}

// attachLocal is attach in the modes without a network of the container's
// own: the loopback of the namespace at netnsPath set up (ModeNone; in
// ModeHost netnsPath is ""), then the hosts record and files, the hosts
// file starting from the host's in ModeHost.
func (w *worker) attachLocal(ctx context.Context, containerID, netnsPath string, r Request) (att *ocinet.Attachment, err error) {
	id := w.cfg.AttachmentID(containerID)
	switch r.Mode {
	case ModeNone:
		if err := host.LoopbackUp(netnsPath); err != nil {
			return nil, fmt.Errorf("attach %s: network mode none: %w", containerID, err)
		}
	case ModeHost:
		if netnsPath != "" {
			return nil, fmt.Errorf("attach %s: network mode host: namespace %s given, but the container is on the host's network: %w", containerID, netnsPath, ErrInvalid)
		}
	}
	// An earlier attachment of the same container on networks goes: its
	// addresses would otherwise stay in its peers' files.
	if err := w.mgr.Detach(ctx, id); err != nil {
		return nil, err
	}
	var seed []byte
	if r.Mode == ModeHost {
		if seed, err = readHostFile(hosts.DefaultHostHosts); err != nil {
			return nil, fmt.Errorf("attach %s: %w", containerID, err)
		}
	}
	undoFiles, err := w.prepareFiles(containerID)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			undoFiles()
		}
	}()
	if r.Mode == ModeHost {
		if err := w.store.Seed(containerID, seed); err != nil {
			return nil, err
		}
	}
	if err := w.store.Join(hosts.Record{ID: containerID, Name: r.Name, Hostname: r.Hostname, ExtraHosts: r.ExtraHosts}); err != nil {
		return nil, err
	}
	onHost := r.Mode == ModeHost
	if err := w.store.WriteResolvConf(containerID, hosts.ResolvOptions{HostNetwork: onHost, IPv6: onHost, DNS: r.DNS}); err != nil {
		return nil, err
	}
	name := r.Name
	if name == "" {
		name = containerID
	}
	w.log.Info("attached", "mode", string(r.Mode), "netns", netnsPath)
	return &ocinet.Attachment{
		ID: id, Name: name, Hostname: r.Hostname, NetNS: netnsPath, Complete: true, Created: time.Now(),
		Labels: map[string]string{LabelNamespace: w.cfg.Namespace, LabelContainer: containerID},
	}, nil
}

// prepareFiles makes the container's hosts and resolv.conf files and
// returns what undoes it on a failure later: files that were there before
// (the hook's bind mounts, made by spec.WithEtcFiles) stay, and only the
// record leaves; files this call made go.
func (w *worker) prepareFiles(containerID string) (undo func(), err error) {
	_, statErr := os.Stat(w.store.HostsPath(containerID))
	made := errors.Is(statErr, os.ErrNotExist)
	if err := w.store.Prepare(containerID); err != nil {
		return nil, err
	}
	return func() {
		if made {
			_ = w.store.Remove(containerID)
		} else {
			_ = w.store.Leave(containerID)
		}
	}, nil
}

// maxHostFile bounds what is read of a host's file for a container.
const maxHostFile = 1 << 20

// readHostFile reads the host's file at path, at most maxHostFile bytes of
// it; a missing file reads as empty.
func readHostFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxHostFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxHostFile {
		return nil, fmt.Errorf("%s: larger than %d bytes: %w", path, maxHostFile, ErrInvalid)
	}
	return b, nil
}

func (w *worker) detach(ctx context.Context, containerID string, opts ...ocinet.DetachOption) error {
	var errs []error
	if err := w.store.Leave(containerID); err != nil {
		errs = append(errs, err)
	}
	if err := dns.Release(w.cfg.StateDir); err != nil {
		errs = append(errs, err)
	}
	if err := w.mgr.Detach(ctx, w.cfg.AttachmentID(containerID), opts...); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("detach %s: %w", containerID, errors.Join(errs...))
	}
	return nil
}

func ifaceSummary(ifs []ocinet.Interface) string {
	var parts []string
	for _, i := range ifs {
		var ips []string
		for _, p := range i.IPs {
			ips = append(ips, p.String())
		}
		parts = append(parts, i.Name+"="+strings.Join(ips, ","))
	}
	return strings.Join(parts, " ")
}
