package hook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/dns"
	"github.com/ocinet/ocinet/hosts"
)

// Attach connects a container whose network namespace is at netnsPath: CNI
// ADD through the Manager, then its hosts record, /etc/hosts and
// /etc/resolv.conf. It is what the hook does at createRuntime after pinning
// the namespace, and what a program does itself in the other two modes: a
// namespace it created before the container (as containerd's CRI plugin
// does), or a task's /proc/<pid>/ns/net while the task is still in the
// created state. If any step fails, the earlier ones are undone.
func Attach(ctx context.Context, cfg Config, containerID, netnsPath string, r Request) (*ocinet.Attachment, error) {
	if err := validContainerID(containerID); err != nil {
		return nil, fmt.Errorf("attach: container %w", err)
	}
	r.Version = RequestVersion
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	req, err := parseRequest(string(b))
	if err != nil {
		return nil, err
	}
	w, err := newWorker(cfg.withDefaults(), nil, nil)
	if err != nil {
		return nil, err
	}
	return w.attach(ctx, containerID, netnsPath, req)
}

// Detach undoes [Attach]: the hosts record, then CNI DEL with the recorded
// config. The namespace itself is the caller's to remove. Detaching a
// container that is not attached does nothing.
func Detach(ctx context.Context, cfg Config, containerID string) error {
	if err := validContainerID(containerID); err != nil {
		return fmt.Errorf("detach: container %w", err)
	}
	w, err := newWorker(cfg.withDefaults(), nil, nil)
	if err != nil {
		return err
	}
	return w.detach(ctx, containerID)
}

// worker holds what attaching and detaching need.
type worker struct {
	cfg   Config
	mgr   *ocinet.Manager
	store *hosts.Store
	log   *slog.Logger
}

// newWorker opens the Manager and hosts store of cfg (with defaults
// applied). log and pluginStderr may be nil.
func newWorker(cfg Config, log *slog.Logger, pluginStderr io.Writer) (*worker, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []ocinet.Option{ocinet.WithLogger(log)}
	if pluginStderr != nil {
		opts = append(opts, ocinet.WithPluginStderr(pluginStderr))
	}
	mgr, err := cfg.Manager(opts...)
	if err != nil {
		return nil, err
	}
	store, err := cfg.HostsStore()
	if err != nil {
		return nil, err
	}
	return &worker{cfg: cfg, mgr: mgr, store: store, log: log}, nil
}

func (w *worker) attach(ctx context.Context, containerID, netnsPath string, req request) (att *ocinet.Attachment, err error) {
	id := w.cfg.AttachmentID(containerID)
	name := req.Name
	if name == "" {
		name = containerID
	}
	att, err = w.mgr.Attach(ctx, ocinet.AttachRequest{
		ID: id, Name: name, Hostname: req.Hostname, NetNS: netnsPath, Networks: req.Networks, Ports: req.Ports,
		PerNetwork: req.perNetwork,
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
	rec := hosts.Record{ID: containerID, Name: req.Name, Hostname: req.Hostname, ExtraHosts: req.extraHosts, Aliases: req.Aliases}
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
	if err := dns.Mark(w.mgr, &rec); err != nil {
		return nil, err
	}
	if err := w.store.Prepare(containerID); err != nil {
		return nil, err
	}
	if err := w.store.Join(rec); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = w.store.Leave(containerID)
			_ = dns.Release(w.cfg.StateDir)
		}
	}()
	first, err := dns.Attach(ctx, w.cfg.StateDir, w.mgr, rec, w.log)
	if err != nil {
		return nil, err
	}
	if err := w.store.WriteResolvConf(containerID, hosts.ResolvOptions{IPv6: ipv6, DNS: req.dns, First: first}); err != nil {
		return nil, err
	}
	w.log.Info("attached", "netns", netnsPath, "interfaces", ifaceSummary(att.Interfaces), "ports", len(att.Ports))
	return att, nil
}

func (w *worker) detach(ctx context.Context, containerID string) error {
	var errs []error
	if err := w.store.Leave(containerID); err != nil {
		errs = append(errs, err)
	}
	if err := dns.Release(w.cfg.StateDir); err != nil {
		errs = append(errs, err)
	}
	if err := w.mgr.Detach(ctx, w.cfg.AttachmentID(containerID)); err != nil {
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
