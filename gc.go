package ocinet

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/containernetworking/cni/libcni"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/ocinet/ocinet/internal/fsutil"
)

// GCOptions are the optional parts of a GC run.
type GCOptions struct {
	// OnRelease, when set, is called for every attachment GC tears down,
	// after its DEL succeeded and its ports were released, before its
	// record is removed: the place to release what the Manager does not
	// own (a pinned namespace, hosts records). If it fails, the record is
	// kept and the next GC tries again.
	OnRelease func(a *Attachment) error
}

// GCReport says what a GC run did. Every list is sorted.
type GCReport struct {
	// Finished are attachments that a crash left half set up or half torn
	// down; they are torn down now.
	Finished []string
	// Released are complete attachments whose container was not live.
	Released []string
	// Ports are owners of port reservations that had no attachment.
	Ports []string
	// Networks are the networks whose plugins got the CNI GC verb.
	Networks []string
}

// GC brings the host back in line with the journal and the journal in line
// with the containers that run. It waits for attachments and detachments in
// progress and keeps new ones waiting until it is done (CNI requires GC to
// be exclusive with ADD and DEL). Then it
//
//   - finishes every attachment left half done by a crash (phase adding or
//     detaching): DEL from the recorded config, whatever the container;
//   - tears down every complete attachment for which live returns false (a
//     nil live keeps every complete attachment);
//   - releases port reservations that belong to no attachment, and removes
//     temporary files a crash left in the journal;
//   - sends the CNI GC verb to the networks in the conf dir whose CNI
//     version has it (1.1.0 and up), naming as valid every attachment that
//     remains and every attachment in the CNI cache that is not ours, so
//     that GC never tears down another runtime's containers.
//
// It continues past failures and returns them joined, with the report of
// what was done.
func (m *Manager) GC(ctx context.Context, live func(id string) bool, opts GCOptions) (*GCReport, error) {
	report := &GCReport{}
	gc, err := m.lock("gc", false)
	if err != nil {
		return report, err
	}
	defer gc.Unlock()
	ids, err := m.journalIDs()
	if err != nil {
		return report, err
	}
	var errs []error
	var kept []*record
	for _, id := range ids {
		rec, err := m.readRecord(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if rec == nil {
			continue
		}
		finish := rec.Phase != phaseAttached
		if !finish && (live == nil || live(id)) {
			kept = append(kept, rec)
			continue
		}
		var release func() error
		if opts.OnRelease != nil {
			a := rec.attachment()
			release = func() error { return opts.OnRelease(a) }
		}
		if err := m.detachRecord(ctx, rec, detachOptions{release: release}); err != nil {
			errs = append(errs, fmt.Errorf("gc %s: %w", id, err))
			continue
		}
		if finish {
			report.Finished = append(report.Finished, id)
		} else {
			report.Released = append(report.Released, id)
		}
	}
	if err := m.gcPorts(report); err != nil {
		errs = append(errs, err)
	}
	fsutil.CleanTemp(filepath.Join(m.root, "attachments"))
	if err := m.gcNetworks(ctx, ids, kept, report); err != nil {
		errs = append(errs, err)
	}
	return report, errors.Join(errs...)
}

// gcPorts releases the port reservations of owners without a record. GC
// holds the lock that every Attach holds from its reservation to its first
// journal write, so no reservation is between the two.
func (m *Manager) gcPorts(report *GCReport) error {
	owners, err := m.ports.Owners()
	if err != nil {
		return err
	}
	var errs []error
	for _, o := range owners {
		if validID(o) == nil {
			if rec, err := m.readRecord(o); err != nil || rec != nil {
				continue // attached, or unreadable: not provably orphaned
			}
		}
		if err := m.ports.Release(o); err != nil {
			errs = append(errs, err)
			continue
		}
		report.Ports = append(report.Ports, o)
	}
	return errors.Join(errs...)
}

// gcNetworks sends the CNI GC verb to every network that supports it.
func (m *Manager) gcNetworks(ctx context.Context, ours []string, kept []*record, report *GCReport) error {
	nets, err := m.Networks()
	if err != nil {
		return err
	}
	var cached []*libcni.NetworkAttachment
	readCache := true
	var errs []error
	for _, n := range nets {
		if ok, _ := version.GreaterThanOrEqualTo(n.CNIVersion, "1.1.0"); !ok {
			continue
		}
		list, err := libcni.ConfListFromBytes(n.Bytes)
		if err != nil || list.DisableGC {
			continue
		}
		if readCache {
			readCache = false
			if cached, err = libcni.NewCNIConfigWithCacheDir(m.pluginDirs, m.cacheDir, m.exec).GetCachedAttachments(""); err != nil {
				cached = nil // no cache: nothing of others' to protect
			}
		}
		var valid []cnitypes.GCAttachment
		for _, rec := range kept {
			for _, nr := range rec.Networks {
				if nr.Name == n.Name {
					valid = append(valid, cnitypes.GCAttachment{ContainerID: rec.ID, IfName: nr.IfName})
				}
			}
		}
		for _, c := range cached {
			if c.Network == n.Name && !slices.Contains(ours, c.ContainerID) {
				valid = append(valid, cnitypes.GCAttachment{ContainerID: c.ContainerID, IfName: c.IfName})
			}
		}
		dp, _, err := m.dp.choose(n.Name, n.Bytes)
		if err != nil {
			dp = DatapathPlugins // GC of a network native cannot run goes to the binaries
		}
		cni, err := m.cniFor(dp, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("gc network %q: %w", n.Name, err))
			continue
		}
		if err := cni.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: valid}); err != nil {
			errs = append(errs, fmt.Errorf("gc network %q: %w", n.Name, pluginError(err)))
			continue
		}
		report.Networks = append(report.Networks, n.Name)
	}
	return errors.Join(errs...)
}
