package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/ocinet/ocinet"
	"github.com/ocinet/ocinet/hook"
	"github.com/ocinet/ocinet/netns"
	"github.com/ocinet/ocinet/sandbox"
)

// cmdGC is `ocictl gc`: it releases what ocinet holds for the containers of
// the namespace that containerd no longer knows or whose task is not
// running, and prints each container it released something of, one name a
// line. The network goes through the library's GC (sandbox.GC, with the
// recorded config); then, for containers that are not running, the hosts
// record and the pinned namespace that no attachment accounts for, and, for
// containers containerd no longer knows, also their hosts and resolv.conf
// files and their log directory. A stopped container that containerd still
// knows keeps its files until `ocictl rm`. gc must not run while `ocictl
// run` is creating a container: in the precreate mode the container is
// attached before containerd knows it.
func cmdGC(ctx context.Context, g *globals, args []string) error {
	if len(args) != 0 {
		return errors.New("usage: ocictl gc")
	}
	client, ctx, err := connect(ctx, g)
	if err != nil {
		return err
	}
	defer client.Close()
	known, err := containerStates(ctx, client)
	if err != nil {
		return err
	}
	live := func(id string) bool { return known[id] }
	cfg := g.hookConfig
	released := map[string]bool{}
	rep, gcErr := sandbox.GC(ctx, cfg, live)
	if rep != nil {
		for _, a := range append(slices.Clone(rep.Released), rep.Finished...) {
			if id, ok := strings.CutPrefix(a, cfg.Namespace+"-"); ok {
				released[id] = true
			}
		}
	}
	ids, err := leftoverIDs(g)
	if err != nil {
		return errors.Join(gcErr, err)
	}
	var errs []error
	for _, id := range ids {
		running, ok := known[id]
		if running {
			continue
		}
		did, err := releaseLeftovers(ctx, g, id, !ok)
		if err != nil {
			errs = append(errs, fmt.Errorf("gc %s: %w", id, err))
		}
		if did {
			released[id] = true
		}
	}
	names := make([]string, 0, len(released))
	for id := range released {
		names = append(names, id)
	}
	slices.Sort(names)
	for _, id := range names {
		fmt.Println(id)
	}
	return errors.Join(append([]error{gcErr}, errs...)...)
}

// containerStates returns, for every container of the namespace, whether
// its task may be using its network: running, paused, being created or in
// a state containerd cannot tell (its shim does not answer). Containers
// without a task are listed as false.
func containerStates(ctx context.Context, client *containerd.Client) (map[string]bool, error) {
	list, err := client.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make(map[string]bool, len(list))
	for _, c := range list {
		out[c.ID()] = false
		t, err := c.Task(ctx, nil)
		if err != nil {
			continue // no task
		}
		st, err := t.Status(ctx)
		out[c.ID()] = err != nil || st.Status != containerd.Stopped
	}
	return out, nil
}

// leftoverIDs returns, sorted, the containers that ocinet holds anything
// of besides the journal: hosts records and files, pinned namespaces and
// log directories.
func leftoverIDs(g *globals) ([]string, error) {
	cfg := g.hookConfig
	store, err := cfg.HostsStore()
	if err != nil {
		return nil, err
	}
	ids, err := store.IDs()
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Dir(cfg.ContainerDir("x"))) // the namespace's log directories
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, e := range ents {
		if e.IsDir() && hook.ValidateContainerID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	pins, err := netns.List(cfg.NetNSDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	prefix := strings.TrimSuffix(filepath.Base(cfg.PinPath("x")), "x") // "ocinet-<namespace>-"
	for _, p := range pins {
		if id, ok := strings.CutPrefix(filepath.Base(p), prefix); ok && hook.ValidateContainerID(id) == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// releaseLeftovers releases what ocinet holds of a container that does not
// run: its attachment, if the journal still has one (CNI DEL with the
// recorded config), its hosts record and its pinned namespace, and, when
// files is set, its hosts and resolv.conf files and its log directory. It
// reports whether there was anything to release.
func releaseLeftovers(ctx context.Context, g *globals, id string, files bool) (bool, error) {
	cfg := g.hookConfig
	store, err := cfg.HostsStore()
	if err != nil {
		return false, err
	}
	mgr, err := cfg.Manager()
	if err != nil {
		return false, err
	}
	found := false
	var errs []error
	if _, err := mgr.Get(cfg.AttachmentID(id)); err == nil {
		found = true
		errs = append(errs, sandbox.Detach(ctx, cfg, id))
	} else if !errors.Is(err, ocinet.ErrNotFound) {
		errs = append(errs, err)
	}
	if _, err := store.Get(id); err == nil {
		found = true
		errs = append(errs, store.Leave(id))
	}
	pin := cfg.PinPath(id)
	if _, err := os.Lstat(pin); err == nil {
		found = true
		errs = append(errs, netns.Remove(pin))
	}
	if files {
		for _, p := range []string{filepath.Dir(store.HostsPath(id)), cfg.ContainerDir(id)} {
			if _, err := os.Lstat(p); err == nil {
				found = true
			}
		}
		errs = append(errs, store.Remove(id), os.RemoveAll(cfg.ContainerDir(id)))
	}
	return found, errors.Join(errs...)
}
