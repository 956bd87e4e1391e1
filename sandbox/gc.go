package sandbox

import (
	"context"
	"errors"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/dns"
	"github.com/ocinet/ocinet/internal/ident"
	"github.com/ocinet/ocinet/netns"
)

// Labels recorded with every attachment this package makes, so that GC
// knows whose attachment it is without parsing the attachment ID.
const (
	LabelNamespace = "io.ocinet.namespace"
	LabelContainer = "io.ocinet.container"
)

// GC runs the Manager's GC for the containers of w.cfg.Namespace: it finishes
// attachments a crash left half done, tears down those whose container
// live says is gone (a nil live keeps them all), and releases what the hook
// owns for each: the hosts record and the pinned namespace. Attachments of
// other namespaces, and ones made by other callers, count as live. The
// hosts records of containers on no network of their own (ModeNone,
// ModeHost), which have no attachment, go too when live says their
// container is gone.
func GC(ctx context.Context, cfg Config, live func(containerID string) bool) (*ocinet.GCReport, error) {
	w, err := newWorker(cfg)
	if err != nil {
		return nil, err
	}
	list, err := w.mgr.List()
	if err != nil {
		return nil, err
	}
	owner := map[string]string{} // attachment ID -> container ID, ours only
	for _, a := range list {
		if a.Labels[LabelNamespace] == w.cfg.Namespace && ident.ContainerID(a.Labels[LabelContainer]) == nil {
			owner[a.ID] = a.Labels[LabelContainer]
		}
	}
	liveID := func(id string) bool {
		c, ours := owner[id]
		return !ours || live == nil || live(c)
	}
	release := func(a *ocinet.Attachment) error {
		if a.Labels[LabelNamespace] != w.cfg.Namespace {
			return nil
		}
		c := a.Labels[LabelContainer]
		if ident.ContainerID(c) != nil {
			return nil
		}
		return errors.Join(w.store.Leave(c), netns.Remove(w.cfg.PinPath(c)))
	}
	rep, err := w.mgr.GC(ctx, liveID, ocinet.GCOptions{OnRelease: release})
	if err == nil && live != nil {
		err = w.releaseLocal(live)
	}
	return rep, errors.Join(err, dns.StopUnused(w.cfg.StateDir))
}

// releaseLocal removes the hosts records on no network (those of
// containers in ModeNone and ModeHost) whose container is not live.
func (w *worker) releaseLocal(live func(containerID string) bool) error {
	recs, err := w.store.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range recs {
		if len(r.Networks) == 0 && !live(r.ID) {
			errs = append(errs, w.store.Leave(r.ID))
		}
	}
	return errors.Join(errs...)
}
